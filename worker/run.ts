// Runs the two workers of one process: the shared task queue (workflows and most activities) and this worker's own
// staging queue (publish activities that read files this worker fetched).
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';
import type { ReleaseActivities } from '../activities';
import { temporalConnectionOptions, type TemporalSettings } from '../config/temporal';
import { codecDataConverter } from '../config/codec';
import { stepMetrics } from './metrics';
import type { WorkerSettings } from './settings';

export const workflowsPath = path.join(__dirname, '../workflows/index.ts');

export interface WorkerConnections {
  /** What the workers poll on. */
  connection: NativeConnection;
  /** What activities ask Temporal with (release states, earlier releases): a client of the same server. */
  client: Client;
  close(): Promise<void>;
}

/** Both connections of a worker process, from one set of connection options (config/temporal.ts). */
export async function connectWorker(s: TemporalSettings, env: NodeJS.ProcessEnv = process.env): Promise<WorkerConnections> {
  const options = temporalConnectionOptions(s, env);
  const connection = await NativeConnection.connect(options);
  try {
    const client = new Client({ connection: await Connection.connect(options), namespace: s.namespace });
    return {
      connection,
      client,
      close: async () => {
        await client.connection.close();
        await connection.close();
      },
    };
  } catch (err) {
    await connection.close();
    throw err;
  }
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
