// Every `schedule` command through the real CLI (tsx client/cli.ts) on the rig's dev server, a schedule's run of a
// trigger check, and the push webhook's signature checks over real HTTP.
import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTriggerWebhook } from '../../client/webhook';
import type { TriggerInput, TriggerResult } from '../../workflows/messages';
import { connectRig, type RigInfo } from '../rig/release-harness';

const repo = path.resolve(__dirname, '../..');
const rig = inject('rig') as RigInfo;
// A task queue no worker serves: a schedule's run shows up as a started trigger workflow, and nothing builds.
const taskQueue = `e2e-schedules-${randomUUID().slice(0, 8)}`;
const name = `nightly-${randomUUID().slice(0, 6)}`;
let conn: Awaited<ReturnType<typeof connectRig>>;

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(repo, 'node_modules/.bin/tsx'), [path.join(repo, 'client/cli.ts'), ...args], {
      cwd: repo,
      env: { ...process.env, TEMPORAL_ADDRESS: rig.temporalAddress, BOOTC_RELEASE_TASK_QUEUE: taskQueue },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const json = async (...args: string[]) => {
  const r = await cli(...args, '--json');
  expect(r.stderr, r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
};

beforeAll(async () => {
  conn = await connectRig(rig, taskQueue);
});
afterAll(async () => {
  await conn?.client.schedule.getHandle(`bootc-release-${name}`).delete().catch(() => undefined);
  await conn?.close();
});

describe('schedule commands', () => {
  it('create, list, describe, pause with a note, unpause, trigger a run, and delete', async () => {
    const created = await json('schedule', 'create', name, '--definition', 'copr-builder', '--cron', '0 3 * * *', '--only-if-changed');
    expect(created).toMatchObject({ name, scheduleId: `bootc-release-${name}`, definition: 'copr-builder', mode: 'source-change', spec: 'cron 0 3 * * *', paused: false });
    expect(Date.parse(created.nextRuns[0])).toBeGreaterThan(Date.now());

    const listed = await json('schedule', 'list');
    expect(listed.map((s: { name: string }) => s.name)).toContain(name);
    const plain = await cli('schedule', 'list');
    expect(plain.stdout).toMatch(new RegExp(`${name}\\s+copr-builder\\s+cron 0 3 \\* \\* \\*\\s+if the source changed\\s+active`));

    await json('schedule', 'pause', name, '--note', 'release freeze until Monday');
    expect(await json('schedule', 'describe', name)).toMatchObject({ paused: true, note: 'release freeze until Monday' });
    await json('schedule', 'unpause', name);
    expect(await json('schedule', 'describe', name)).toMatchObject({ paused: false });

    // A run now: the schedule starts one trigger check of the definition.
    await json('schedule', 'trigger', name);
    let runs: { workflowId: string }[] = [];
    for (let i = 0; i < 100 && runs.length === 0; i++) {
      runs = (await json('schedule', 'describe', name)).recentRuns;
      if (!runs.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(runs).toHaveLength(1);
    const started = await conn.client.workflow.getHandle(runs[0]!.workflowId).describe();
    expect(started.type).toBe('releaseTrigger');
    await conn.client.workflow.getHandle(runs[0]!.workflowId).terminate('test done');

    await json('schedule', 'delete', name);
    expect((await json('schedule', 'list')).map((s: { name: string }) => s.name)).not.toContain(name);
    const gone = await cli('schedule', 'describe', name);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(new RegExp(`no schedule ${name}`));
  });

  it('refuses with exit 2, creating nothing, a schedule with both or neither of --cron and --every, two modes, or a too short interval', async () => {
    for (const args of [
      ['--cron', '0 3 * * *', '--every', '1d'],
      [],
      ['--every', '1d', '--only-if-changed', '--rebuild-after', '14d'],
      ['--every', '5s'],
    ]) {
      const r = await cli('schedule', 'create', 'bad', '--definition', 'copr-builder', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/--cron|--every|--only-if-changed/);
    }
  });
});

describe('the push webhook', () => {
  it('runs a source-change check only for a request that proves the shared secret', async () => {
    const secret = 'webhook-s3cret';
    const checks: TriggerInput[] = [];
    const hook = await startTriggerWebhook({
      host: '127.0.0.1',
      port: 0,
      secret,
      check: async (input): Promise<TriggerResult> => {
        checks.push(input);
        return { definition: input.definition, mode: 'source-change', started: `${input.definition}-src-0123456789abcdef`, reason: 'source changed' };
      },
      log: () => undefined,
    });
    try {
      const body = JSON.stringify({ ref: 'refs/heads/main', after: 'abc' });
      const post = (headers: Record<string, string>, definition = 'copr-builder') =>
        fetch(`${hook.address}/trigger/${definition}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      const signed = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
      const forged = `sha256=${createHmac('sha256', 'guess').update(body).digest('hex')}`;

      expect((await post({})).status).toBe(401);
      expect((await post({ 'x-hub-signature-256': forged })).status).toBe(401);
      expect((await post({ 'x-gitlab-token': 'guess' })).status).toBe(401);
      expect(checks).toEqual([]);

      const github = await post({ 'x-hub-signature-256': signed });
      expect(github.status).toBe(201);
      expect(await github.json()).toMatchObject({ started: 'copr-builder-src-0123456789abcdef' });
      expect((await post({ 'x-gitlab-token': secret })).status).toBe(201);
      expect((await post({ 'x-gitlab-token': secret }, 'Not_A_Name')).status).toBe(400);
      expect(checks).toEqual([
        { definition: 'copr-builder', mode: 'source-change', by: 'webhook' },
        { definition: 'copr-builder', mode: 'source-change', by: 'webhook' },
      ]);
    } finally {
      await hook.close();
    }
  });
});
