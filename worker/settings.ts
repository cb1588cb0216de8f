// Worker and client settings from the environment: the same variables for the CLI, the worker, the demo and
// docker-compose. TLS material and API keys are read from files/env here and never passed to workflows.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CODEC_KEY_FILE_ENV } from '../config/codec';

export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  tls?: { serverName?: string; clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer };
  apiKey?: string;
  /** Key file of the payload codec (config/codec.ts); payloads go unencrypted without one. */
  codecKeyFile?: string;
}

export interface WorkerSettings extends TemporalSettings {
  workerId: string;
  /** Queue of this worker alone: artifacts it fetched are published by activities scheduled here. */
  stagingQueue: string;
  definitionsDir: string;
  /**
   * Run definitions sent whole in the start input (the CLI's `release start FILE`). Off by default: such a
   * definition chooses the commands this worker runs and where it sends credentials. Known definitions (by name, or
   * sent whole but equal to the worker's own) always run.
   */
  allowInlineDefinitions: boolean;
  stagingDir: string;
  stateDir: string;
  workflowBundle?: string;
  /** host:port of registries the source trigger reads digests from over plain HTTP (a local registry). */
  plainHttpRegistries: string[];
  /** host:port for the Prometheus endpoint (/metrics); none when unset. */
  metricsAddress?: string;
  /** The Temporal Web UI's address, for links in notifications. */
  uiUrl?: string;
}

export const ENV = {
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  apiKey: 'TEMPORAL_API_KEY',
  tlsCert: 'TEMPORAL_TLS_CERT',
  tlsKey: 'TEMPORAL_TLS_KEY',
  tlsCa: 'TEMPORAL_TLS_CA',
  tlsServerName: 'TEMPORAL_TLS_SERVER_NAME',
  taskQueue: 'BOOTC_RELEASE_TASK_QUEUE',
  workerId: 'BOOTC_RELEASE_WORKER_ID',
  definitions: 'BOOTC_RELEASE_DEFINITIONS',
  allowInlineDefinitions: 'BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS',
  staging: 'BOOTC_RELEASE_STAGING',
  state: 'BOOTC_RELEASE_STATE',
  workflowBundle: 'BOOTC_RELEASE_WORKFLOW_BUNDLE',
  sshKey: 'BOOTC_RELEASE_SSH_KEY',
  uiUrl: 'BOOTC_RELEASE_UI_URL',
  metrics: 'BOOTC_RELEASE_METRICS',
  plainHttpRegistries: 'BOOTC_RELEASE_PLAIN_HTTP_REGISTRIES',
  codecKeyFile: CODEC_KEY_FILE_ENV,
} as const;

export const DEFAULT_TASK_QUEUE = 'bootc-release';

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const cert = env[ENV.tlsCert];
  const key = env[ENV.tlsKey];
  const ca = env[ENV.tlsCa];
  if (!!cert !== !!key) throw new Error(`${ENV.tlsCert} and ${ENV.tlsKey} go together: set both or neither`);
  const tls =
    cert || ca || env[ENV.tlsServerName]
      ? {
          serverName: env[ENV.tlsServerName],
          clientCertPair: cert && key ? { crt: readFileSync(cert), key: readFileSync(key) } : undefined,
          serverRootCACertificate: ca ? readFileSync(ca) : undefined,
        }
      : undefined;
  return {
    address: env[ENV.address] ?? '127.0.0.1:7233',
    namespace: env[ENV.namespace] ?? 'default',
    taskQueue: env[ENV.taskQueue] ?? DEFAULT_TASK_QUEUE,
    tls: tls ?? (env[ENV.apiKey] ? {} : undefined),
    apiKey: env[ENV.apiKey],
    codecKeyFile: env[ENV.codecKeyFile] || undefined,
  };
}

export function workerSettings(env: NodeJS.ProcessEnv = process.env): WorkerSettings {
  const base = temporalSettings(env);
  const workerId = (env[ENV.workerId] ?? os.hostname()).replace(/[^A-Za-z0-9._-]/g, '-');
  const varDir = env.XDG_STATE_HOME ? path.join(env.XDG_STATE_HOME, 'bootc-release') : '/var/lib/bootc-release';
  return {
    ...base,
    workerId,
    stagingQueue: `${base.taskQueue}@${workerId}`,
    definitionsDir: env[ENV.definitions] ?? '/etc/bootc-release/definitions',
    allowInlineDefinitions: flag(env, ENV.allowInlineDefinitions),
    stagingDir: env[ENV.staging] ?? path.join(varDir, 'staging'),
    stateDir: env[ENV.state] ?? path.join(varDir, 'state'),
    workflowBundle: env[ENV.workflowBundle],
    uiUrl: env[ENV.uiUrl],
    metricsAddress: env[ENV.metrics],
    plainHttpRegistries: (env[ENV.plainHttpRegistries] ?? '').split(',').map((r) => r.trim()).filter(Boolean),
  };
}

/** A yes/no variable: unset, "false" or "0" is off; "true" or "1" is on; anything else is a mistake worth stopping for. */
function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const value = env[name]?.trim().toLowerCase();
  if (value === undefined || value === '' || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new Error(`${name}: must be true or false`);
}
