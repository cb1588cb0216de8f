// Releases at scale on the real Temporal server, as tests of correctness (timings are the bench's: test/bench/):
// - one release of four architectures onto five targets (a directory, AWS on moto, libvirt, Glance, the IBM Cloud
//   stand-in) is approved and activated, and its history (the release and its children together) stays within
//   2,000 events and 2 MB, well inside Temporal's limits (docs/bench.md);
// - 50 releases at once on one worker process all end activated, and that process's peak resident memory stays
//   under 1 GiB.
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  alive,
  connectRig,
  spawnWorkerProcess,
  startInProcessWorker,
  waitForStage,
  waitUntil,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';
import {
  ARCHES,
  historyTotals,
  memoryMiB,
  releaseHistories,
  runConcurrently,
  smallDefinition,
  startClouds,
  wideDefinition,
  type Clouds,
} from './scale-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-scale');
const stops: (() => Promise<unknown> | unknown)[] = [];
const MB = 1e6;
const GiB_IN_MiB = 1024;

beforeAll(() => {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
});

afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
});

describe('releases at scale', () => {
  let clouds: Clouds;

  it('releases four architectures to five targets, within 2,000 history events and 2 MB', async () => {
    clouds = await startClouds(rig, path.join(base, 'clouds'));
    stops.push(() => clouds.stop());
    const taskQueue = `e2e-scale-wide-${randomUUID().slice(0, 8)}`;
    const worker = await startInProcessWorker(rig, { taskQueue, dirs: workerDirs(path.join(base, 'wide-worker')), overrides: clouds.overrides });
    stops.push(() => worker.stop());
    const conn = await connectRig(rig, taskQueue);
    stops.push(() => conn.close());

    const def = wideDefinition(rig, path.join(base, 'wide'), clouds, { name: 'wide', targets: ['images', 'aws', 'hypervisor', 'glance', 'ibm'] });
    const id = await conn.releases.startFromDefinition(def);
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 600_000);
    expect(ready.publishFailures).toEqual([]);
    expect(ready.stage).toBe('awaiting-approval');
    for (const arch of ARCHES) expect(ready.arches[arch]?.stage).toBe('published');
    // Every architecture on every target it can take: a directory keeps both of x86_64's and aarch64's types, EC2
    // has AMIs of those two only.
    const published = (kind: string) => ready.candidates.filter((c) => c.kind === kind).map((c) => `${c.arch}/${c.type}`).sort();
    expect(published('directory')).toEqual(['aarch64/ami', 'aarch64/qcow2', 'ppc64le/qcow2', 's390x/qcow2', 'x86_64/ami', 'x86_64/qcow2']);
    expect(published('aws')).toEqual(['aarch64/ami', 'x86_64/ami']);
    for (const kind of ['libvirt', 'openstack', 'ibmcloud'])
      expect(published(kind)).toEqual(['aarch64/qcow2', 'ppc64le/qcow2', 's390x/qcow2', 'x86_64/qcow2']);

    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');
    await conn.client.workflow.getHandle(id).result();

    const histories = await releaseHistories(conn.client, id);
    expect(histories.map((h) => h.workflowId).sort()).toEqual([id, ...ARCHES.map((a) => `${id}.build.${a}`)].sort());
    const totals = historyTotals(histories);
    console.log(`4 × 5 release: ${totals.events} history events, ${(totals.bytes / MB).toFixed(2)} MB in ${totals.workflows} workflows`);
    expect(totals.events).toBeLessThanOrEqual(2_000);
    expect(totals.bytes).toBeLessThanOrEqual(2 * MB);
  }, 900_000);

  it('runs 50 releases at once on one worker process, all activated, its peak memory under 1 GiB', async () => {
    const taskQueue = `e2e-scale-load-${randomUUID().slice(0, 8)}`;
    const child: ChildProcess = spawnWorkerProcess(rig, {
      taskQueue,
      workerId: 'load',
      dirs: workerDirs(path.join(base, 'load-worker')),
      logFile: path.join(base, 'load-worker.log'),
      overrides: { builder: { pollIntervalMs: 500 } },
    });
    stops.push(() => alive(child) && child.kill('SIGKILL'));
    const conn = await connectRig(rig, taskQueue);
    stops.push(() => conn.close());
    await waitUntil('the worker process to start', () => alive(child) && memoryMiB(child.pid!, 'VmRSS') > 0);

    let sampled = 0;
    const sampler = setInterval(() => {
      if (alive(child)) sampled = Math.max(sampled, memoryMiB(child.pid!, 'VmRSS'));
    }, 1000);
    try {
      const defs = Array.from({ length: 50 }, (_, i) => smallDefinition(rig, path.join(base, 'load', `r${i}`), `load-${i}`, i));
      const stages = await runConcurrently(conn, taskQueue, defs, 900_000);
      expect(Object.values(stages).filter((s) => s !== 'activated')).toEqual([]);
      expect(Object.keys(stages)).toHaveLength(50);
      expect(alive(child)).toBe(true);
      const peak = memoryMiB(child.pid!, 'VmHWM');
      console.log(`50 releases on one worker: peak RSS ${peak.toFixed(0)} MiB (largest sample ${sampled.toFixed(0)} MiB)`);
      expect(peak).toBeGreaterThanOrEqual(sampled);
      expect(peak).toBeLessThanOrEqual(GiB_IN_MiB);
    } finally {
      clearInterval(sampler);
    }
  }, 1_200_000);
});
