// The activation hook as a real process tree: cancelling the activity kills the hook's whole process group, and an
// attempt that dies while its hook runs (its worker SIGKILLed) is followed by one that waits for that hook instead
// of starting a second copy. Each hook start appends a line to a file: the count is the proof.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, inject, it } from 'vitest';
import { createActivities } from '../../activities';
import type { Candidate } from '../../activities/types';
import { createActivationDrivers } from '../../activities/activation';
import { readNumber, type HookActivation } from '../../activities/activation/hook';
import { parsePlan } from '../../config/load';
import { createActivityDeps } from '../../worker/wiring';
import { waitUntil } from '../rig/release-harness';

const rig = inject('rig');
const root = path.resolve(__dirname, '../..');

const candidate: Candidate = {
  arch: 's390x',
  target: 'ibm',
  kind: 'ibmcloud',
  region: 'us-east',
  imageId: 'r014-new',
  name: 'copr-builder-s390x-20261126_120000',
  type: 'qcow2',
  size: 10,
  sha256: 'ab',
};

function input(releaseId: string, command: string[], timeout?: string) {
  const plan = parsePlan({
    releaseId,
    stamp: '20261126_120000',
    arches: ['s390x'],
    definition: {
      name: 'copr-builder',
      source: { image: 'quay.io/x/y:1' },
      architectures: { s390x: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['qcow2'], targets: ['ibm'] } },
      targets: { ibm: { kind: 'ibmcloud', regions: ['us-east'], cosBucket: 'copr-images', resourceGroup: 'rg' } },
      approval: { approvers: ['a'] },
      channels: { staging: { activation: [{ kind: 'command', command, ...(timeout ? { timeout } : {}) }] } },
    },
  });
  return { plan, channel: 'staging', candidates: [candidate], approvedBy: 'a' };
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The activities as a worker with this state directory wires them. */
const activitiesOn = (stateDir: string, tuning = {}) =>
  createActivities(
    createActivityDeps({ definitionsDir: stateDir, stagingDir: stateDir, stateDir, stagingQueue: 'q@w' }, { state: async () => 'open' as const, idsStartingWith: async () => [] }, {
      activation: { pollMs: 100, killGraceMs: 2000, ...tuning },
    }),
  );

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).length : 0);

describe('activation hook', () => {
  it('is killed with its whole process group when the activity is cancelled', async () => {
    const dir = mkdtempSync(path.join(rig.dir, 'hook-cancel-'));
    const stateDir = path.join(dir, 'state');
    const f = (n: string) => path.join(dir, n);
    // The hook starts a child of its own, as ansible-playbook would, and waits for it.
    const hook = ['sh', '-c', `echo $$ > ${f('hook.pid')}; sleep 300 & echo $! > ${f('child.pid')}; wait`];
    const { activate } = activitiesOn(stateDir);
    const env = new MockActivityEnvironment();
    const running = env.run(activate, input('hook-cancel', hook));
    await waitUntil('the hook to start its child', () => existsSync(f('child.pid')) && readFileSync(f('child.pid'), 'utf8').trim() !== '', 30_000);
    const pids = ['hook.pid', 'child.pid'].map((n) => Number(readFileSync(f(n), 'utf8')));
    expect(pids.every(alive)).toBe(true);

    env.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    await waitUntil('the hook and its child to be gone', () => !pids.some(alive), 10_000);
  });

  it('is not started again by a retry while the first copy still runs after its worker died', async () => {
    const dir = mkdtempSync(path.join(rig.dir, 'hook-retry-'));
    const stateDir = path.join(dir, 'state');
    const starts = path.join(dir, 'starts');
    const proceed = path.join(dir, 'proceed');
    const hook = ['sh', '-c', `echo start >> ${starts}; while [ ! -e ${proceed} ]; do sleep 0.1; done`];
    const args = { input: input('hook-retry', hook), stateDir };

    // First attempt: a worker process that dies (SIGKILL, its whole process group) while the hook runs.
    const script = path.join(dir, `attempt-${randomBytes(3).toString('hex')}.ts`);
    writeFileSync(
      script,
      `import { createActivities } from '${path.join(root, 'activities')}';\n` +
        `import { createActivityDeps } from '${path.join(root, 'worker/wiring')}';\n` +
        `const { input, stateDir } = JSON.parse(process.env.ATTEMPT_ARGS!);\n` +
        `const settings = { definitionsDir: stateDir, stagingDir: stateDir, stateDir, stagingQueue: 'q@w' };\n` +
        `const deps = createActivityDeps(settings, { state: async () => 'open' as const, idsStartingWith: async () => [] }, { activation: { pollMs: 100 } });\n` +
        `createActivities(deps).activate(input).then(() => process.exit(0), () => process.exit(1));\n`,
    );
    const worker = spawn(path.join(root, 'node_modules/.bin/tsx'), [script], {
      cwd: root,
      env: { ...process.env, ATTEMPT_ARGS: JSON.stringify(args) },
      stdio: 'ignore',
      detached: true,
    });
    const exited = new Promise((r) => worker.once('exit', r));
    await waitUntil('the first attempt to start the hook', () => lines(starts) === 1, 60_000);
    process.kill(-worker.pid!, 'SIGKILL');
    await exited;

    // The retry, on a worker with the same state directory, while the first copy still runs.
    const { activate } = activitiesOn(stateDir);
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    let done = false;
    const retry = env.run(activate, args.input).finally(() => (done = true));
    await waitUntil('the retry to wait on the running hook, or start a second one', () => beats.length >= 3 || lines(starts) > 1, 30_000);
    expect(done).toBe(false);
    expect(lines(starts)).toBe(1);

    writeFileSync(proceed, '');
    await retry;
    expect(lines(starts)).toBe(1);
    // And once it has finished, a later attempt does not run it again either.
    await activitiesOn(stateDir).activate(args.input);
    expect(lines(starts)).toBe(1);
  });

  it('gets the release\'s images, the map before, and what the steps before it replaced on stdin, and none of the worker\'s environment', async () => {
    const dir = mkdtempSync(path.join(rig.dir, 'hook-input-'));
    const map = path.join(dir, 'copr.yaml');
    writeFileSync(map, 'copr_builder_images:\n  ibm: { s390x: r014-old }\n  aws: { x86_64: ami-keep }\n');
    const hook = ['sh', '-c', `cat > ${path.join(dir, 'stdin.json')}; env > ${path.join(dir, 'env.txt')}`];
    const i = input('hook-input', hook);
    i.plan.definition.channels.staging!.activation.unshift({ kind: 'image-map-file', path: map, key: 'copr_builder_images' });
    process.env.BOOTC_RELEASE_TEST_WORKER_SECRET = 'not-for-hooks';
    try {
      await new MockActivityEnvironment().run(activitiesOn(path.join(dir, 'state')).activate, i);
    } finally {
      delete process.env.BOOTC_RELEASE_TEST_WORKER_SECRET;
    }
    expect(JSON.parse(readFileSync(path.join(dir, 'stdin.json'), 'utf8'))).toMatchObject({
      releaseId: 'hook-input',
      channel: 'staging',
      imageMap: { ibm: { s390x: 'r014-new' } },
      previousImageMap: { ibm: { s390x: 'r014-old' } },
      replaced: [{ target: map, entries: [{ path: ['ibm', 's390x'], previous: 'r014-old', value: 'r014-new' }] }],
    });
    const env = readFileSync(path.join(dir, 'env.txt'), 'utf8');
    expect(env).toMatch(/^BOOTC_RELEASE_ID=hook-input$/m);
    expect(env).not.toMatch(/not-for-hooks/);
  });

  it('gets no previous map when no image map step comes before it (it is not guessed)', async () => {
    const dir = mkdtempSync(path.join(rig.dir, 'hook-alone-'));
    const stdin = path.join(dir, 'stdin.json');
    await new MockActivityEnvironment().run(activitiesOn(path.join(dir, 'state')).activate, input('hook-alone', ['sh', '-c', `cat > ${stdin}`]));
    const got = JSON.parse(readFileSync(stdin, 'utf8'));
    expect(got).toEqual({ releaseId: 'hook-alone', channel: 'staging', approvedBy: 'a', imageMap: { ibm: { s390x: 'r014-new' } }, replaced: [] });
  });

  it('is killed when it runs past its timeout, and the activation fails naming the field', async () => {
    const dir = mkdtempSync(path.join(rig.dir, 'hook-timeout-'));
    const pidFile = path.join(dir, 'hook.pid');
    const hook = ['sh', '-c', `echo $$ > ${pidFile}; sleep 300`];
    const { activate } = activitiesOn(path.join(dir, 'state'));
    await expect(new MockActivityEnvironment().run(activate, input('hook-timeout', hook, '2s'))).rejects.toThrow(
      /channels\.staging\.activation\.0: sh ran longer than its timeout and was killed.*raise channels\.staging\.activation\.0\.timeout/,
    );
    expect(alive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
  });
});

describe('activation hook state files', () => {
  it('reads a file the shell has truncated but not yet written as no number, never as 0 (which once killed a running hook as overdue)', async () => {
    const dir = mkdtempSync(path.join(rig.dir, 'hook-state-'));
    writeFileSync(path.join(dir, 'started'), '');
    expect(await readNumber(path.join(dir, 'started'))).toBeUndefined();
    writeFileSync(path.join(dir, 'started'), '1764446400\n');
    expect(await readNumber(path.join(dir, 'started'))).toBe(1764446400);
    expect(await readNumber(path.join(dir, 'missing'))).toBeUndefined();
  });
});

describe('activation hook: preflight check', () => {
  const driver = createActivationDrivers({ stateDir: rig.dir }).command;
  const check = (command: string[], passEnv: string[] = []) => {
    const { plan } = input('hook-check', command);
    const hook = { ...(plan.definition.channels.staging!.activation[0] as HookActivation), passEnv };
    return driver.check(hook, { plan, where: 'channels.staging.activation.0' });
  };

  it('finds the executable by path or on the hook\'s PATH', async () => {
    expect(await check(['sh', '-c', 'true'])).toEqual({ ok: true, messages: [expect.stringMatching(/\/sh is executable\.$/), 'Hook conditions met.'] });
    expect((await check(['/bin/true'])).ok).toBe(true);
  });

  it('fails for an executable that is missing, not executable, or a relative path, naming the field', async () => {
    const dir = mkdtempSync(path.join(rig.dir, 'hook-check-'));
    const missing = path.join(dir, 'copr-recycle-builders');
    expect(await check([missing, '--instance', 'dev'])).toEqual({
      ok: false,
      messages: [`${missing} does not exist on the worker or is not executable; install it or fix channels.staging.activation.0.command`],
    });
    writeFileSync(missing, '#!/bin/sh\n');
    expect((await check([missing])).ok).toBe(false); // not executable (0644)
    expect((await check([dir])).ok).toBe(false); // a directory
    expect((await check(['no-such-hook-command'])).messages[0]).toMatch(
      /^no-such-hook-command is not an executable on the hook's PATH \(.*\); install it or give its absolute path in channels\.staging\.activation\.0\.command$/,
    );
    expect((await check(['./hooks/recycle'])).messages[0]).toMatch(/relative path.*absolute path in channels\.staging\.activation\.0\.command/);
  });
});
