// Whole releases on the local rig (the test rig's Temporal dev server, SSH hosts, registry and moto, started here by
// test/rig/global-setup.ts; glance-api, libvirtd and the IBM stand-in by test/e2e/scale-harness.ts), each figure
// beside what it is measured against:
// - overhead: a release of 4 architectures × 3 targets (directory, libvirt, Glance) whose steps are near-instant,
//   its wall time (without the wait for a person) over the critical path of its steps as the history records them;
// - resume: a worker process SIGKILLed during a build, until a new one has re-attached to that build (its first
//   heartbeat), beside the heartbeat timeout Temporal waits before it retries;
// - history: the events and bytes of a 4 × 5 release (every target kind), the release and its children together,
//   beside Temporal's own limits;
// - load: the peak RSS of one worker process running 50 releases at once, beside the same process after one.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import setupRig from '../rig/global-setup';
import {
  alive,
  connectRig,
  killWorker,
  spawnWorkerProcess,
  startInProcessWorker,
  waitForStage,
  waitUntil,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';
import {
  historyTotals,
  memoryMiB,
  releaseHistories,
  runConcurrently,
  smallDefinition,
  startClouds,
  wideDefinition,
  type Clouds,
  type WorkflowHistory,
} from '../e2e/scale-harness';
import { QUICK, type BenchSuite } from './suite';
import { ReleaseDefinition } from '../../config/schema';
import { durationMs } from '../../config/duration';

const LOAD_RELEASES = Number(process.env.BENCH_LOAD_RELEASES ?? 50);
/** The production default of `timeouts.heartbeat`: resume is measured as an operator gets it. */
const RESUME_HEARTBEAT = ReleaseDefinition.shape.timeouts.parse(undefined).heartbeat;
/** Temporal's defaults: a warning past 10,240 events or 10 MiB, a workflow terminated past 51,200 or 50 MiB. */
const TEMPORAL_WARN_EVENTS = 10_240;
const TEMPORAL_WARN_BYTES = 10 * 1024 ** 2;

type Conn = Awaited<ReturnType<typeof connectRig>>;
type HistoryEvent = WorkflowHistory['events'][number];

const ms = (t: HistoryEvent['eventTime']) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

interface Step {
  type: string;
  arch?: string;
  seconds: number;
}

/** Each activity's run (started → completed) in one history, with the architecture its input names. */
function steps(h: WorkflowHistory): Step[] {
  const scheduled = new Map<string, { type: string; arch?: string }>();
  const started = new Map<string, number>();
  const out: Step[] = [];
  for (const e of h.events) {
    const id = String(e.eventId);
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const data = s.input?.payloads?.[0]?.data;
      const input = data ? (JSON.parse(Buffer.from(data).toString()) as { arch?: string }) : {};
      scheduled.set(id, { type: s.activityType?.name ?? '?', arch: input.arch });
    }
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), ms(e.eventTime));
    const c = e.activityTaskCompletedEventAttributes;
    if (c) {
      const key = String(c.scheduledEventId);
      out.push({ ...scheduled.get(key)!, seconds: (ms(e.eventTime) - started.get(key)!) / 1000 });
    }
  }
  return out;
}

/**
 * The critical path of a release's steps: the release's own steps one after another (plan, preflight, activation,
 * deleting staged files), and the longest architecture: its build's steps one after another, then the longest of
 * its publishes (they run side by side).
 */
function criticalPath(histories: WorkflowHistory[], releaseId: string): { seconds: number; own: number; longest: string } {
  const parent = steps(histories.find((h) => h.workflowId === releaseId)!);
  const sum = (xs: Step[]) => xs.reduce((n, s) => n + s.seconds, 0);
  const own = sum(parent.filter((s) => s.type !== 'publishArtifact'));
  const arches = histories
    .filter((h) => h.workflowId !== releaseId)
    .map((h) => {
      const arch = h.workflowId.slice(h.workflowId.lastIndexOf('.') + 1);
      const publishes = parent.filter((s) => s.type === 'publishArtifact' && s.arch === arch).map((s) => s.seconds);
      return { arch, seconds: sum(steps(h)) + Math.max(0, ...publishes) };
    })
    .sort((a, b) => b.seconds - a.seconds);
  const longest = arches[0] ?? { arch: '(none)', seconds: 0 };
  return { seconds: own + longest.seconds, own, longest: `${longest.arch} ${longest.seconds.toFixed(1)} s` };
}

/** The release's wall time, start to close, less the time it waited for the approval (a person's time). */
function wallSeconds(parent: WorkflowHistory): number {
  const events = parent.events;
  const accepted = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes);
  const waitFrom = events.slice(0, accepted).reverse().find((e) => e.timerStartedEventAttributes);
  if (accepted < 0 || !waitFrom) throw new Error(`${parent.workflowId}: no approval timer and accepted approval in its history`);
  const approvalWait = ms(events[accepted]!.eventTime) - ms(waitFrom.eventTime);
  return (ms(events.at(-1)!.eventTime) - ms(events[0]!.eventTime) - approvalWait) / 1000;
}

async function approveAndFinish(conn: Conn, id: string): Promise<void> {
  const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 900_000);
  if (ready.stage !== 'awaiting-approval' || ready.publishFailures.length)
    throw new Error(`release ${id} ended ${ready.stage}: ${ready.error ?? JSON.stringify(ready.publishFailures)}`);
  const done = await conn.releases.approve(id, { by: 'copr-admin' });
  if (done.stage !== 'activated') throw new Error(`release ${id} ended ${done.stage}`);
  await conn.client.workflow.getHandle(id).result();
}

async function overheadAndHistory(rig: RigInfo, base: string, clouds: Clouds, log: (l: string) => void) {
  const taskQueue = `bench-releases-${randomUUID().slice(0, 8)}`;
  const worker = await startInProcessWorker(rig, { taskQueue, dirs: workerDirs(path.join(base, 'worker')), overrides: clouds.overrides });
  const conn = await connectRig(rig, taskQueue);
  try {
    log('a release of 4 architectures × 3 targets with near-instant steps…');
    const instant = wideDefinition(rig, path.join(base, 'overhead'), clouds, { name: 'overhead', targets: ['images', 'hypervisor', 'glance'] });
    const instantId = await conn.releases.startFromDefinition(instant);
    await approveAndFinish(conn, instantId);
    const instantHistories = await releaseHistories(conn.client, instantId);
    const wall = wallSeconds(instantHistories.find((h) => h.workflowId === instantId)!);
    const route = criticalPath(instantHistories, instantId);
    log(`  critical path ${route.seconds.toFixed(1)} s: the release's own steps ${route.own.toFixed(1)} s, the longest architecture ${route.longest}`);

    log('a release of 4 architectures × 5 targets…');
    const wide = wideDefinition(rig, path.join(base, 'wide'), clouds, { name: 'wide', targets: ['images', 'aws', 'hypervisor', 'glance', 'ibm'] });
    const wideId = await conn.releases.startFromDefinition(wide);
    await approveAndFinish(conn, wideId);
    const totals = historyTotals(await releaseHistories(conn.client, wideId));
    return { wall, critical: route.seconds, totals };
  } finally {
    await worker.stop();
    await conn.close();
  }
}

/** Every bootc-image-builder start the stand-in recorded under dir. */
function buildStarts(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile() && e.name === 'bib-standin.starts')
      n += readFileSync(path.join(e.parentPath, e.name), 'utf8').split('\n').filter(Boolean).length;
  return n;
}

async function resume(rig: RigInfo, base: string, log: (l: string) => void): Promise<number> {
  const taskQueue = `bench-resume-${randomUUID().slice(0, 8)}`;
  const dirs = workerDirs(path.join(base, 'resume-worker'));
  const workers: ChildProcess[] = [];
  // Production's settings (10 s build polls): only the rig's endpoints differ.
  const start = () => {
    const w = spawnWorkerProcess(rig, { taskQueue, workerId: 'resume', dirs, logFile: path.join(base, `resume-worker-${workers.length + 1}.log`) });
    workers.push(w);
    return w;
  };
  const conn = await connectRig(rig, taskQueue);
  try {
    const first = start();
    // A build long enough to outlive the kill and the resume.
    const def = smallDefinition(rig, path.join(base, 'resume'), 'resume', 0, 90);
    def.timeouts = { ...def.timeouts, heartbeat: RESUME_HEARTBEAT } as never;
    const build = path.join(base, 'resume', 'builders');
    const id = await conn.releases.startFromDefinition(def);
    await waitUntil(
      'the build to start',
      async () => (await conn.releases.status(id).catch(() => undefined))?.arches.x86_64?.stage === 'building-image' && buildStarts(build) === 1,
      300_000,
    );
    // A moment into the build, so the first worker has heartbeated it.
    await new Promise((r) => setTimeout(r, 2000));
    log('SIGKILL of the worker during the build; a new one started at once…');
    await killWorker(first);
    const killedAt = Date.now();
    start();
    const child = conn.client.workflow.getHandle(`${id}.build.x86_64`);
    let attachedAt = 0;
    await waitUntil(
      'the new worker to re-attach to the build',
      async () => {
        const d = await child.describe().catch(() => undefined);
        const run = d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'runImageBuild');
        const beat = run?.lastHeartbeatTime ? ms(run.lastHeartbeatTime) : 0;
        if ((run?.attempt ?? 0) >= 2 && beat >= killedAt) attachedAt = beat;
        return attachedAt > 0;
      },
      300_000,
    );
    if (buildStarts(build) !== 1) throw new Error('the new worker started a second build instead of re-attaching');
    await conn.releases.cancel(id);
    await waitForStage(conn.releases, id, ['cancelled', 'failed'], 120_000);
    return (attachedAt - killedAt) / 1000;
  } finally {
    for (const w of workers) await killWorker(w);
    await conn.close();
  }
}

async function load(rig: RigInfo, base: string, log: (l: string) => void): Promise<{ one: number; peak: number }> {
  const taskQueue = `bench-load-${randomUUID().slice(0, 8)}`;
  const worker = spawnWorkerProcess(rig, {
    taskQueue,
    workerId: 'load',
    dirs: workerDirs(path.join(base, 'load-worker')),
    logFile: path.join(base, 'load-worker.log'),
    overrides: { builder: { pollIntervalMs: 500 } },
  });
  const conn = await connectRig(rig, taskQueue);
  try {
    await waitUntil('the worker process', () => alive(worker));
    const run = async (n: number, label: string) => {
      const defs = Array.from({ length: n }, (_, i) => smallDefinition(rig, path.join(base, label, `r${i}`), `${label}-${i}`, i));
      const stages = await runConcurrently(conn, taskQueue, defs, 1_800_000);
      const bad = Object.entries(stages).filter(([, s]) => s !== 'activated');
      if (bad.length) throw new Error(`${bad.length} of ${n} releases did not activate: ${JSON.stringify(bad.slice(0, 3))}`);
      if (!alive(worker)) throw new Error('the worker process died');
      return memoryMiB(worker.pid!, 'VmHWM');
    };
    log('one release on a fresh worker process…');
    const one = await run(1, 'one');
    log(`${LOAD_RELEASES} releases at once on the same worker process…`);
    const peak = await run(LOAD_RELEASES, 'load');
    return { one, peak };
  } finally {
    await killWorker(worker);
    await conn.close();
  }
}

const suite: BenchSuite = {
  title: `releases: overhead, resume after SIGKILL, history of a 4 × 5 release, ${LOAD_RELEASES} releases on one worker (local rig)`,
  async run(log) {
    process.env.AWS_ACCESS_KEY_ID ??= 'testing';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
    let rig: RigInfo | undefined;
    log('starting the rig (Temporal dev server, SSH hosts, registry, moto)…');
    const stopRig = await setupRig({ provide: (_key: string, value: RigInfo) => (rig = value) } as unknown as TestProject);
    const base = path.join(rig!.dir, 'bench-releases');
    let clouds: Clouds | undefined;
    try {
      clouds = await startClouds(rig!, path.join(base, 'clouds'));
      const { wall, critical, totals } = await overheadAndHistory(rig!, base, clouds, log);
      const resumeSeconds = await resume(rig!, base, log);
      const { one, peak } = await load(rig!, base, log);
      const figures = {
        releaseOverheadSeconds: +(wall - critical).toFixed(1),
        releaseWallSeconds: +wall.toFixed(1),
        releaseCriticalPathSeconds: +critical.toFixed(1),
        resumeSeconds: +resumeSeconds.toFixed(1),
        resumeHeartbeatTimeoutSeconds: durationMs(RESUME_HEARTBEAT) / 1000,
        historyEvents: totals.events,
        historyBytes: totals.bytes,
        historyWorkflows: totals.workflows,
        loadReleases: LOAD_RELEASES,
        loadPeakRssMiB: Math.round(peak),
        loadOneReleaseRssMiB: Math.round(one),
      };
      const row = (name: string, ours: string, ref: string) => log(`  ${name.padEnd(34)}${ours.padStart(14)}   ${ref}`);
      log('');
      row('4 × 3 release, near-instant steps', `${figures.releaseOverheadSeconds} s`, `overhead: wall ${figures.releaseWallSeconds} s without the approval wait, critical path of its steps ${figures.releaseCriticalPathSeconds} s`);
      row('resume after SIGKILL mid-build', `${figures.resumeSeconds} s`, `until the new worker's first heartbeat on the same build; heartbeat timeout ${parseInt(RESUME_HEARTBEAT, 10)} s`);
      row('4 × 5 release history', `${figures.historyEvents} events`, `${figures.historyWorkflows} workflows; Temporal warns past ${TEMPORAL_WARN_EVENTS.toLocaleString('en')} events per workflow`);
      row('', `${(figures.historyBytes / 1e6).toFixed(2)} MB`, `Temporal warns past ${TEMPORAL_WARN_BYTES / 1024 ** 2} MiB per workflow`);
      row(`${LOAD_RELEASES} releases on one worker`, `${figures.loadPeakRssMiB} MiB`, `peak RSS; the same process after one release: ${figures.loadOneReleaseRssMiB} MiB`);
      if (QUICK) log('  (--quick: the release figures are the full ones; only the fetch and upload sizes shrink)');
      return figures;
    } finally {
      await clouds?.stop();
      await stopRig();
    }
  },
};

export default suite;
