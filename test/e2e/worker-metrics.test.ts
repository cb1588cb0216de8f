// The production worker entry point (worker/main.ts) as operators run it, with its Prometheus endpoint on: a release
// of a definition from its definitions directory, then the metrics scraped over HTTP.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { connectRig, standinDefinition, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';
import { stopProcess } from '../../scripts/servers/process';
import { freePort, waitForPort } from '../../scripts/servers/tools';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-metrics');
const taskQueue = `e2e-metrics-${randomUUID().slice(0, 8)}`;
let worker: ChildProcess;
let metricsPort: number;
let conn: Awaited<ReturnType<typeof connectRig>>;

beforeAll(async () => {
  const dirs = workerDirs(path.join(base, 'worker'));
  const def = standinDefinition(rig, base, {
    name: 'metrics',
    arches: [{ arch: 'x86_64', host: rig.sshHosts[3]!, types: ['qcow2'] }],
    build: { seconds: 1, diskSize: '64M', dataMiB: 3 },
  });
  mkdirSync(dirs.definitionsDir, { recursive: true });
  writeFileSync(path.join(dirs.definitionsDir, 'metrics.yaml'), stringify(def));
  metricsPort = await freePort();
  worker = spawn(process.execPath, [path.resolve('node_modules/tsx/dist/cli.mjs'), 'worker/main.ts'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: rig.temporalAddress,
      BOOTC_RELEASE_TASK_QUEUE: taskQueue,
      BOOTC_RELEASE_WORKER_ID: 'metrics-worker',
      BOOTC_RELEASE_DEFINITIONS: dirs.definitionsDir,
      BOOTC_RELEASE_STAGING: dirs.stagingDir,
      BOOTC_RELEASE_STATE: dirs.stateDir,
      BOOTC_RELEASE_WORKFLOW_BUNDLE: rig.workflowBundlePath,
      BOOTC_RELEASE_METRICS: `127.0.0.1:${metricsPort}`,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  await waitForPort('127.0.0.1', metricsPort, 60_000, 'the worker metrics endpoint');
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await conn?.close();
  if (worker) await stopProcess(worker);
});

const scrape = async () => await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
/** Sum of every sample of a metric whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || (m[1] !== name && m[1] !== `${name}_total`)) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) total += Number(m[3]);
  }
  return total;
}

describe('the worker metrics endpoint', () => {
  it('serves the SDK metrics and counts release outcomes, step outcomes and the bytes fetched and published', async () => {
    const id = await conn.releases.startByName('metrics', { reason: 'e2e metrics' });
    expect((await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'])).stage).toBe('awaiting-approval');
    await conn.releases.approve(id, { by: 'copr-admin' });
    await conn.client.workflow.getHandle(id).result();

    let text = '';
    for (let i = 0; i < 50; i++) {
      text = await scrape();
      if (sample(text, 'bootc_release_releases', { definition: 'metrics', stage: 'activated' }) >= 1) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(sample(text, 'bootc_release_releases', { definition: 'metrics', stage: 'activated' })).toBe(1);
    expect(text).toMatch(/bootc_release_release_duration_(bucket|sum|count)\{[^}]*definition="metrics"/);
    expect(sample(text, 'bootc_release_steps', { step: 'fetchArtifacts', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'bootc_release_steps', { step: 'runImageBuild', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'bootc_release_fetched_bytes')).toBeGreaterThanOrEqual(3 << 20);
    expect(sample(text, 'bootc_release_published_bytes', { target_kind: 'directory' })).toBeGreaterThan(0);
    // The SDK's own: workflow and activity task metrics of this worker.
    expect(text).toMatch(/^temporal_workflow_completed\S*\{[^}]*task_queue="e2e-metrics-/m);
    expect(text).toMatch(/^temporal_activity_execution_latency\S*\{[^}]*activity_type="fetchArtifacts"/m);
  });
});
