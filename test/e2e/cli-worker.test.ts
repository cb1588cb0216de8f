// `bootc-release worker` as the Containerfile runs it (node client/bin.cjs worker): the CLI starts the worker
// program (worker/main.ts) as a process of its own and loads no worker code itself; the worker serves the task
// queue; `docker stop` (SIGTERM to the CLI alone) and a terminal's Ctrl-C (SIGINT to the process group) both end it
// cleanly with exit code 0 and no worker process left.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectRig, waitUntil, workerDirs, type RigInfo } from '../rig/release-harness';

const repo = path.resolve(__dirname, '../..');
const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-cli-worker');
const taskQueue = `e2e-cli-worker-${randomUUID().slice(0, 8)}`;
let conn: Awaited<ReturnType<typeof connectRig>>;
let cli: ChildProcess | undefined;

/** The Temporal native bridge: mapped by a process that loaded @temporalio/worker. */
const loadsWorkerCode = (pid: number) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('@temporalio/core-bridge');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const childrenOf = (pid: number) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);

/** Starts the CLI's worker command in a process group of its own; resolves once the worker says it runs. */
async function startCliWorker(): Promise<{ cli: ChildProcess; worker: number; exit: Promise<number | null>; output: () => string }> {
  const dirs = workerDirs(path.join(base, randomUUID().slice(0, 8)));
  const child = spawn(process.execPath, [path.join(repo, 'client/bin.cjs'), 'worker'], {
    cwd: repo,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: rig.temporalAddress,
      BOOTC_RELEASE_TASK_QUEUE: taskQueue,
      BOOTC_RELEASE_WORKER_ID: 'cli-worker',
      BOOTC_RELEASE_DEFINITIONS: dirs.definitionsDir,
      BOOTC_RELEASE_STAGING: dirs.stagingDir,
      BOOTC_RELEASE_STATE: dirs.stateDir,
      BOOTC_RELEASE_WORKFLOW_BUNDLE: rig.workflowBundlePath,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  cli = child;
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntil('the worker to start', () => output.includes('bootc-release worker cli-worker:') || child.exitCode !== null);
  expect(child.exitCode, output).toBeNull();
  const [worker] = childrenOf(child.pid!);
  expect(worker, 'the worker process').toBeDefined();
  return { cli: child, worker: worker!, exit, output: () => output };
}

async function exitWithin(exit: Promise<number | null>, ms: number): Promise<number | null | 'still running'> {
  return await Promise.race([exit, new Promise<'still running'>((r) => setTimeout(() => r('still running'), ms))]);
}

beforeAll(async () => {
  conn = await connectRig(rig, taskQueue);
});

afterEach(() => {
  if (cli?.pid && cli.exitCode === null && cli.signalCode === null) process.kill(-cli.pid, 'SIGKILL');
});

afterAll(async () => {
  await conn?.close();
});

describe('bootc-release worker', () => {
  it('runs the worker program in a process of its own, which serves the task queue; SIGTERM to the CLI alone stops both', async () => {
    const w = await startCliWorker();
    expect(loadsWorkerCode(w.cli.pid!), 'the CLI loaded @temporalio/worker').toBe(false);
    expect(loadsWorkerCode(w.worker), 'the worker process maps the native bridge').toBe(true);

    const report = await conn.releases.runJanitor({ ttl: '24h', dryRun: true });
    expect(report.dryRun).toBe(true);

    process.kill(w.cli.pid!, 'SIGTERM');
    expect(await exitWithin(w.exit, 20_000), w.output()).toBe(0);
    expect(alive(w.worker)).toBe(false);
  });

  it('stops on a Ctrl-C (SIGINT to the process group) with exit code 0', async () => {
    const w = await startCliWorker();
    process.kill(-w.cli.pid!, 'SIGINT');
    expect(await exitWithin(w.exit, 20_000), w.output()).toBe(0);
    expect(alive(w.worker)).toBe(false);
  });
});
