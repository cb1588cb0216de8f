// The real `bootc-release` CLI (tsx client/cli.ts) as a script and as a person see it: piped, it prints plain text
// with no escape codes (NO_COLOR or not); with --json, JSON on stdout and errors as JSON on stderr; on a terminal
// (a pseudo-terminal from util-linux `script`), tables and colour, colour off when NO_COLOR is set.
// Commands that talk to Temporal use the rig's dev server and a worker of this file's own task queue.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { msToTs } from '@temporalio/common/lib/time';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectRig, startInProcessWorker, waitUntil, workerDirs, type RigInfo } from '../rig/release-harness';

const repo = path.resolve(__dirname, '../..');
const TSX = path.join(repo, 'node_modules/.bin/tsx');
const CLI = path.join(repo, 'client/cli.ts');
const ANSI = /\x1b\[/;
const BOX = /[┌┐└┘│─]/;

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-cli-output');
const taskQueue = `e2e-cli-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The caller's colour settings are dropped so that each test states its own. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const { NO_COLOR: _n, FORCE_COLOR: _f, TERM: _t, ...rest } = process.env;
  return { ...rest, TERM: 'xterm-256color', TEMPORAL_ADDRESS: rig.temporalAddress, BOOTC_RELEASE_TASK_QUEUE: taskQueue, ...extra };
}

function run(command: string, args: string[], extra: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repo, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** stdout and stderr are pipes: what a script or `| less` gets. */
const piped = (args: string[], extra: Record<string, string> = {}) => run(TSX, [CLI, ...args], extra);

const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
/** Under a pseudo-terminal: stdout and stderr are one TTY, as in a person's shell; `script -e` returns the CLI's exit code. */
const onTerminal = (args: string[], extra: Record<string, string> = {}) =>
  run('script', ['-qec', [TSX, CLI, ...args].map(quote).join(' '), '/dev/null'], extra);

const good = path.join(repo, 'examples/demo.yaml');
const bad = path.join(base, 'bad.yaml');

beforeAll(async () => {
  writeFileSync(bad, 'name: half-written\nsource: { image: quay.io/example/builder:latest }\n');
  worker = await startInProcessWorker(rig, { taskQueue, dirs });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
});

describe('validate, without a server', () => {
  it('piped: plain text and no escape codes, with or without NO_COLOR', async () => {
    for (const extra of [{}, { NO_COLOR: '1' }] as Record<string, string>[]) {
      const r = await piped(['validate', good], extra);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${good}: valid (demo: x86_64, aarch64)\n`);
      expect(r.stdout + r.stderr).not.toMatch(ANSI);
    }
  });

  it('--json: the result as JSON; an invalid file gives exit 2 and its problems as JSON on stderr', async () => {
    const ok = await piped(['validate', good, '--json']);
    expect(JSON.parse(ok.stdout)).toEqual({ valid: true, name: 'demo', architectures: ['x86_64', 'aarch64'] });
    const r = await piped(['validate', bad, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const err = JSON.parse(r.stderr);
    expect(err.problems).toEqual(expect.arrayContaining([`${bad}: architectures: required`, `${bad}: approval: required`]));
  });

  it('piped errors: one plain line per problem on stderr, exit 2, nothing on stdout', async () => {
    const r = await piped(['validate', bad]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toContain(`${bad}: approval: required`);
    expect(r.stderr).not.toMatch(ANSI);
  });

  it('an unknown option is bad input too: exit 2, and JSON when --json was asked for', async () => {
    const text = await piped(['validate', good, '--colour']);
    expect(text.code).toBe(2);
    expect(text.stderr).toContain("unknown option '--colour'");
    const json = await piped(['validate', good, '--colour', '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr)).toEqual({ error: "unknown option '--colour'" });
  });

  it('on a terminal: colour, unless NO_COLOR is set (any non-empty value)', async () => {
    const coloured = await onTerminal(['validate', good]);
    expect(coloured.code).toBe(0);
    expect(coloured.stdout).toContain('\x1b[32mvalid\x1b[39m');
    for (const value of ['1', 'false']) {
      const plain = await onTerminal(['validate', good], { NO_COLOR: value });
      expect(plain.stdout).toContain(`${good}: valid (demo`);
      expect(plain.stdout).not.toMatch(ANSI);
    }
    const failed = await onTerminal(['validate', bad]);
    expect(failed.code).toBe(2);
    expect(failed.stdout).toContain(`\x1b[31m${bad}: approval: required\x1b[39m`);
  });
});

describe('commands that talk to Temporal', () => {
  // A release of a definition the worker does not know fails at once, with a status that names why.
  const releaseId = `cli-out-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    const started = await piped(['release', 'start', '--name', 'no-such', '--id', releaseId, '--json']);
    expect(started.code, started.stderr).toBe(0);
    expect(JSON.parse(started.stdout)).toEqual({ releaseId });
    await conn.client.workflow.getHandle(releaseId).result().catch(() => undefined);
    await waitUntil('the release to be listed', async () => (await conn.releases.list()).some((r) => r.releaseId === releaseId));
  });

  it('release list filters by stage and definition with the query the Web UI takes', async () => {
    const rows = JSON.parse((await piped(['release', 'list', '--stage', 'failed', '--name', 'no-such', '--json'])).stdout);
    expect(rows.map((r: { releaseId: string }) => r.releaseId)).toContain(releaseId);
    expect(rows.every((r: { stage: string; name: string }) => r.stage === 'failed' && r.name === 'no-such')).toBe(true);
    expect(JSON.parse((await piped(['release', 'list', '--stage', 'activated', '--name', 'no-such', '--json'])).stdout)).toEqual([]);
    const query = await piped(['release', 'list', '--stage', 'awaiting-approval', '--query']);
    expect(query.stdout.trim()).toBe("WorkflowType = 'imageRelease' AND BootcReleaseStage = 'awaiting-approval'");
    const bad = await piped(['release', 'list', '--stage', "x' OR 1=1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--stage: .* is not a stage or definition name/);
  });

  it('release status and list: JSON with --json, plain columns piped, tables on a terminal', async () => {
    const json = JSON.parse((await piped(['release', 'status', releaseId, '--json'])).stdout);
    expect(json).toMatchObject({ releaseId, stage: 'failed', error: expect.stringMatching(/unknown release definition "no-such"/) });
    const list = JSON.parse((await piped(['release', 'list', '--json'])).stdout);
    expect(list).toEqual(expect.arrayContaining([expect.objectContaining({ releaseId, status: 'FAILED' })]));

    for (const extra of [{}, { NO_COLOR: '1' }] as Record<string, string>[]) {
      const status = await piped(['release', 'status', releaseId], extra);
      expect(status.stdout).toContain(`release ${releaseId}: failed`);
      const rows = await piped(['release', 'list'], extra);
      expect(rows.stdout.split('\n')[0]).toMatch(/^release\s+name\s+stage\s+workflow\s+started$/);
      // The name is the definition asked for, set at start, even though it never resolved.
      expect(rows.stdout).toMatch(new RegExp(`^${releaseId}\\s+no-such\\s+failed\\s+FAILED\\s`, 'm'));
      for (const r of [status, rows]) {
        expect(r.stdout).not.toMatch(ANSI);
        expect(r.stdout).not.toMatch(BOX);
      }
    }

    // --watch redraws a terminal in place; piped, it must not send the clear-screen codes along.
    const watched = await piped(['release', 'status', releaseId, '--watch']);
    expect(watched.stdout).toContain(`release ${releaseId}: failed`);
    expect(watched.stdout).not.toMatch(ANSI);

    const coloured = await onTerminal(['release', 'list']);
    expect(coloured.stdout).toMatch(BOX);
    expect(coloured.stdout).toContain('\x1b[31mFAILED\x1b[39m');
    const noColour = await onTerminal(['release', 'status', releaseId], { NO_COLOR: '1' });
    expect(noColour.stdout).toContain(`release ${releaseId}: failed`);
    expect(noColour.stdout).not.toMatch(ANSI);
  });

  it('approve, reject and retry of a release that has ended: an error on stderr, JSON with --json, stdout empty', async () => {
    for (const args of [
      ['release', 'approve', releaseId, '--by', 'copr-admin'],
      ['release', 'reject', releaseId, '--by', 'copr-admin'],
      ['release', 'retry', releaseId, '--target', 'local'],
    ]) {
      const text = await piped(args);
      expect(text.code, args.join(' ')).toBe(2);
      expect(text.stdout).toBe('');
      expect(text.stderr).toBe(
        `release ${releaseId} has ended, so it cannot take this; \`bootc-release release status ${releaseId}\` shows how it ended\n`,
      );
      expect(text.stderr).not.toMatch(ANSI);
      const json = await piped([...args, '--json']);
      expect(json.code).toBe(text.code);
      expect(json.stdout).toBe('');
      expect(JSON.parse(json.stderr).error).toContain(releaseId);
    }
  });

  it('an unknown release id is bad input: exit 2, naming the id and the namespace', async () => {
    const unknown = `cli-out-nobody-${randomUUID().slice(0, 8)}`;
    const text = await piped(['release', 'status', unknown]);
    expect(text.code).toBe(2);
    expect(text.stderr).toBe(`release ${unknown} is not known in namespace default; \`bootc-release release list\` shows recent releases\n`);
    const json = await piped(['release', 'cancel', unknown, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr).error).toContain(`release ${unknown} is not known`);
  });

  it('release cancel, janitor run and janitor schedule take --json too', async () => {
    const running = `cli-out-cancel-${randomUUID().slice(0, 8)}`;
    await conn.client.workflow.start('imageRelease', { workflowId: running, taskQueue: 'nobody-listens', args: [{ definition: 'x' }] });
    const cancel = await piped(['release', 'cancel', running, '--json']);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(JSON.parse(cancel.stdout)).toEqual({ releaseId: running, cancelRequested: true });
    await conn.client.workflow.getHandle(running).terminate('test done');

    const janitor = await piped(['janitor', 'run', '--dry-run', '--json']);
    expect(janitor.code, janitor.stderr).toBe(0);
    expect(JSON.parse(janitor.stdout)).toEqual({ deleted: [], failed: [], kept: [], dryRun: true });
    const janitorText = await piped(['janitor', 'run', '--dry-run']);
    expect(janitorText.stdout).toBe('would delete 0, failed 0, kept 0\n');

    // The janitor's schedule id is one per namespace: a namespace of this file's own keeps it from
    // test/e2e/janitor.test.ts, which creates and checks the same schedule in `default`.
    const namespace = `cli-output-${randomUUID().slice(0, 8)}`;
    await conn.client.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    await waitUntil(`namespace ${namespace} to be served`, () =>
      conn.client.workflowService.listSchedules({ namespace }).then(
        () => true,
        () => false,
      ),
    );
    const schedule = await piped(['janitor', 'schedule', '--every', '5h', '--ttl', '3d', '--json'], { TEMPORAL_NAMESPACE: namespace });
    expect(schedule.code, schedule.stderr).toBe(0);
    expect(JSON.parse(schedule.stdout)).toEqual({ scheduleId: 'bootc-release-janitor', every: '5h', ttl: '3d' });
  });
});
