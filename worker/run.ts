// Runs the two workers of one process: the shared task queue (workflows and most activities) and this worker's own
// staging queue (publish activities that read files this worker fetched).
import path from 'node:path';
import { NativeConnection, Runtime, Worker, bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';
import type { ReleaseActivities } from '../activities';
import { codecDataConverter } from '../config/codec';
import { stepMetrics } from './metrics';
import type { TemporalSettings, WorkerSettings } from './settings';

export const workflowsPath = path.join(__dirname, '../workflows/index.ts');

export async function connectWorker(s: TemporalSettings): Promise<NativeConnection> {
  return await NativeConnection.connect({ address: s.address, tls: s.tls, apiKey: s.apiKey });
}

/** Bundle the workflow code once (tests and the demo share one bundle across workers). */
export async function bundleWorkflows(): Promise<{ code: string }> {
  return await bundleWorkflowCode({ workflowsPath, logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as never });
}

export interface RunningWorkers {
  run(): Promise<void>;
  shutdown(): void;
}

export async function createWorkers(
  connection: NativeConnection,
  settings: Pick<WorkerSettings, 'namespace' | 'taskQueue' | 'stagingQueue' | 'workflowBundle' | 'codecKeyFile'>,
  activities: ReleaseActivities,
  opts: { workflowBundle?: { code: string }; extra?: Partial<WorkerOptions> } = {},
): Promise<RunningWorkers> {
  const bundle = opts.workflowBundle
    ? { workflowBundle: opts.workflowBundle }
    : settings.workflowBundle
      ? { workflowBundle: { codePath: settings.workflowBundle } }
      : { workflowsPath };
  const interceptors = { activity: [stepMetrics] };
  const dataConverter = codecDataConverter(settings.codecKeyFile);
  const main = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.taskQueue,
    activities,
    interceptors,
    dataConverter,
    ...bundle,
    ...opts.extra,
  });
  const staging = await Worker.create({
    connection,
    namespace: settings.namespace,
    taskQueue: settings.stagingQueue,
    activities,
    interceptors,
    dataConverter,
    ...opts.extra,
  });
  return {
    run: async () => {
      await Promise.all([main.run(), staging.run()]);
    },
    shutdown: () => {
      if (main.getState() === 'RUNNING') main.shutdown();
      if (staging.getState() === 'RUNNING') staging.shutdown();
    },
  };
}

/**
 * The process's Temporal runtime: the Rust core's logs forwarded at WARN unless asked (TEMPORAL_CORE_LOG), and a
 * Prometheus endpoint (`/metrics`) when `metricsAddress` is set (BOOTC_RELEASE_METRICS, e.g. 0.0.0.0:9464).
 */
export function installRuntime(settings: Pick<WorkerSettings, 'metricsAddress'>): void {
  Runtime.install({
    telemetryOptions: {
      logging: { forward: {}, filter: process.env.TEMPORAL_CORE_LOG ?? 'WARN' },
      metrics: settings.metricsAddress ? { prometheus: { bindAddress: settings.metricsAddress } } : undefined,
    },
  });
}
