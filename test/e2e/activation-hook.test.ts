// The activation hook inside whole releases on the real Temporal server, with workers as their own processes: a
// release cancelled while its hook runs kills the hook's process group (the release's activity tells its channel to
// stop); a worker SIGKILLed while its hook runs is followed by one whose retry waits for that hook instead of starting
// a second (starts counted in a file).
import { type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { approveSignal } from '../../workflows/messages';
import { channelWorkflowId } from '../../activities/channels';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import {
  alive,
  connectRig,
  killWorker,
  rigDefinition,
  spawnWorkerProcess,
  waitForStage,
  waitUntil,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-activation-hook');
const taskQueue = `e2e-hook-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
let conn: Awaited<ReturnType<typeof connectRig>>;
const workers: ChildProcess[] = [];

function startWorker(): ChildProcess {
  const child = spawnWorkerProcess(rig, { taskQueue, workerId: 'hooked', dirs, logFile: path.join(base, `worker-${workers.length + 1}.log`) });
  workers.push(child);
  return child;
}

function definition(name: string, hook: string) {
  const def = rigDefinition(rig, {
    name,
    arches: [{ arch: 's390x', host: rig.sshHosts[3]!, types: ['qcow2'] }],
    builderDir: path.join(base, name, 'builders'),
    imagesDir: path.join(base, name, 'images'),
    imageMapPath: path.join(base, name, 'copr.yaml'),
    engine: standinEngine(path.join(base, name, 'engine'), { seconds: 1, diskSize: '64M', dataMiB: 2 }, [rig.registry]),
    bibImage: ensureBibStandinImage(),
    heartbeat: '2s',
  });
  def.channels!.staging!.activation!.push({ kind: 'command', command: ['sh', '-c', hook] });
  return def;
}

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).length : 0);

/** Starts a release of `def`, approves it from the UI (a signal: the CLI's update would wait for the outcome). */
async function approved(def: ReturnType<typeof definition>): Promise<string> {
  const id = await conn.releases.startFromDefinition(def);
  const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 180_000);
  expect(ready.stage).toBe('awaiting-approval');
  await conn.client.workflow.getHandle(id).signal(approveSignal, { by: 'copr-admin' });
  return id;
}

beforeAll(async () => {
  mkdirSync(base, { recursive: true });
  conn = await connectRig(rig, taskQueue);
  startWorker();
});

afterAll(async () => {
  for (const w of workers) await killWorker(w);
  await conn?.close();
});

describe('the activation hook in a release', () => {
  it('is killed with its process group when the release is cancelled while it runs', async () => {
    const dir = path.join(base, 'cancelled');
    mkdirSync(dir, { recursive: true });
    const f = (n: string) => path.join(dir, n);
    const id = await approved(definition('cancelled', `echo $$ > ${f('hook.pid')}; sleep 300 & echo $! > ${f('child.pid')}; wait`));
    await waitUntil('the hook to start its child', () => existsSync(f('child.pid')) && readFileSync(f('child.pid'), 'utf8').trim() !== '', 60_000);
    const pids = ['hook.pid', 'child.pid'].map((n) => Number(readFileSync(f(n), 'utf8')));
    expect(pids.every(running)).toBe(true);

    await conn.releases.cancel(id);
    const closed = await waitForStage(conn.releases, id, ['cancelled', 'failed', 'activated'], 60_000);
    expect(closed.stage).toBe('cancelled');
    await waitUntil('the hook and its child to be gone', () => !pids.some(running), 20_000);
  });

  it('is waited for, not started again, by the retry after its worker was killed', async () => {
    const dir = path.join(base, 'killed');
    mkdirSync(dir, { recursive: true });
    const starts = path.join(dir, 'starts');
    const proceed = path.join(dir, 'proceed');
    const id = await approved(definition('killed', `echo start >> ${starts}; while [ ! -e ${proceed} ]; do sleep 0.2; done`));
    await waitUntil('the hook to start', () => lines(starts) === 1, 60_000);
    for (const w of workers.filter(alive)) await killWorker(w);
    startWorker();

    // The next attempt runs on the new worker while the first hook still runs (the channel's workflow activates).
    const attempt = async () =>
      (await conn.client.workflow.getHandle(channelWorkflowId('killed', 'staging')).describe()).raw.pendingActivities?.find(
        (a) => a.activityType?.name === 'activate',
      )?.attempt ?? 0;
    await waitUntil('a second attempt of the activation', async () => (await attempt()) >= 2 || lines(starts) > 1, 60_000);
    expect(lines(starts)).toBe(1);

    writeFileSync(proceed, '');
    const done = await waitForStage(conn.releases, id, ['activated', 'failed', 'cancelled'], 60_000);
    expect(done.stage).toBe('activated');
    expect(lines(starts)).toBe(1);
  });
});
