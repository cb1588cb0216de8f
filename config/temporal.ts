// How bootc-release reaches Temporal, one module for the worker, the CLI, `bootc-release dev` and the demo (worker/
// and client/ never import each other, so what both need lives here): the settings from the environment, the
// connection options both SDK connections are built from (the worker's NativeConnection, the client's Connection),
// visibility queries over the search attributes releases carry, and workflow starts typed by the workflow they start.
// No connection is made here and no SDK runtime is loaded: a caller connects with the options it gets.
import { readFileSync } from 'node:fs';
import type { Client, ScheduleOptionsStartWorkflowAction, WorkflowStartOptions } from '@temporalio/client';
import type * as workflows from '../workflows';
import { WORKFLOW_TYPES } from '../workflows/messages';
import { releaseNameKey, releaseStageKey } from '../workflows/search-attributes';

export const TEMPORAL_ENV = {
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  apiKey: 'TEMPORAL_API_KEY',
  tlsCert: 'TEMPORAL_TLS_CERT',
  tlsKey: 'TEMPORAL_TLS_KEY',
  tlsCa: 'TEMPORAL_TLS_CA',
  tlsServerName: 'TEMPORAL_TLS_SERVER_NAME',
  taskQueue: 'BOOTC_RELEASE_TASK_QUEUE',
  /** Key file of the optional payload codec (config/codec.ts). */
  codecKeyFile: 'BOOTC_RELEASE_CODEC_KEY_FILE',
} as const;

export const DEFAULT_TASK_QUEUE = 'bootc-release';

/**
 * Where Temporal is and how to prove who we are. Plain data, safe to print: TLS material is named by file and the
 * API key by the variable that holds it; both are read only when connection options are built.
 */
export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  tls?: { certFile?: string; keyFile?: string; caFile?: string; serverName?: string };
  /** The environment variable holding the API key (Temporal Cloud). */
  apiKeyEnv?: string;
  /** Key file of the payload codec (config/codec.ts): a path, read only by the codec; payloads go unencrypted without one. */
  codecKeyFile?: string;
}

/** What NativeConnection.connect (worker) and Connection.connect (client) both take. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: { serverName?: string; clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer };
  apiKey?: string;
}

export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const [certFile, keyFile, caFile, serverName] = [env[TEMPORAL_ENV.tlsCert], env[TEMPORAL_ENV.tlsKey], env[TEMPORAL_ENV.tlsCa], env[TEMPORAL_ENV.tlsServerName]];
  if (!!certFile !== !!keyFile) throw new Error(`${TEMPORAL_ENV.tlsCert} and ${TEMPORAL_ENV.tlsKey} go together: set both or neither`);
  return {
    address: env[TEMPORAL_ENV.address] ?? '127.0.0.1:7233',
    namespace: env[TEMPORAL_ENV.namespace] ?? 'default',
    taskQueue: env[TEMPORAL_ENV.taskQueue] ?? DEFAULT_TASK_QUEUE,
    tls: certFile || caFile || serverName ? { certFile, keyFile, caFile, serverName } : undefined,
    apiKeyEnv: env[TEMPORAL_ENV.apiKey] ? TEMPORAL_ENV.apiKey : undefined,
    codecKeyFile: env[TEMPORAL_ENV.codecKeyFile] || undefined,
  };
}

/** The options both connections are built from; `env` is the one the settings were read from. */
export function temporalConnectionOptions(s: TemporalSettings, env: NodeJS.ProcessEnv = process.env): TemporalConnectionOptions {
  const apiKey = s.apiKeyEnv ? env[s.apiKeyEnv] : undefined;
  if (s.apiKeyEnv && !apiKey) throw new Error(`${s.apiKeyEnv} is empty: set the API key there, or unset it`);
  const read = (variable: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${variable}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const t = s.tls;
  const tls = t && {
    serverName: t.serverName,
    clientCertPair: t.certFile && t.keyFile ? { crt: read(TEMPORAL_ENV.tlsCert, t.certFile), key: read(TEMPORAL_ENV.tlsKey, t.keyFile) } : undefined,
    serverRootCACertificate: t.caFile ? read(TEMPORAL_ENV.tlsCa, t.caFile) : undefined,
  };
  // An API key travels only over TLS (Temporal Cloud's rule): with a key and no TLS settings, TLS with system roots.
  return { address: s.address, tls: tls ?? (apiKey ? {} : undefined), apiKey };
}

/**
 * The visibility query for releases (the same text filters the Web UI's workflow list), e.g.
 * WorkflowType = 'imageRelease' AND BootcReleaseStage = 'awaiting-approval'. Values are quoted with their quotes
 * removed; callers that take them from a person check them first.
 */
export function releaseVisibilityQuery(filter: { name?: string; stage?: string; running?: boolean } = {}): string {
  const quote = (s: string) => `'${s.replace(/'/g, '')}'`;
  const clauses = [`WorkflowType = ${quote(WORKFLOW_TYPES.release)}`];
  if (filter.stage !== undefined) clauses.push(`${releaseStageKey.name} = ${quote(filter.stage)}`);
  if (filter.name !== undefined) clauses.push(`${releaseNameKey.name} = ${quote(filter.name)}`);
  if (filter.running) clauses.push(`ExecutionStatus = 'Running'`);
  return clauses.join(' AND ');
}

/**
 * The workflow functions by their WORKFLOW_TYPES key, as types only (no workflow code is loaded): a WORKFLOW_TYPES
 * entry that names no exported workflow fails to compile, and a start is checked against its workflow's arguments.
 */
export type ReleaseWorkflows = { [K in keyof typeof WORKFLOW_TYPES]: (typeof workflows)[(typeof WORKFLOW_TYPES)[K]] };
export type WorkflowKind = keyof ReleaseWorkflows;

/** Start a workflow by its kind: the type name comes from WORKFLOW_TYPES, the arguments are its workflow's. */
export async function startWorkflow<K extends WorkflowKind>(client: Pick<Client, 'workflow'>, kind: K, options: WorkflowStartOptions<ReleaseWorkflows[K]>) {
  return await client.workflow.start<ReleaseWorkflows[K]>(WORKFLOW_TYPES[kind], options);
}

/** Start a workflow by its kind and wait for its result, typed as its workflow returns it. */
export async function executeWorkflow<K extends WorkflowKind>(client: Pick<Client, 'workflow'>, kind: K, options: WorkflowStartOptions<ReleaseWorkflows[K]>) {
  return await client.workflow.execute<ReleaseWorkflows[K]>(WORKFLOW_TYPES[kind], options);
}

/** A schedule's action that starts a workflow of this kind. */
export function scheduledStart<K extends WorkflowKind>(
  kind: K,
  options: Omit<ScheduleOptionsStartWorkflowAction<ReleaseWorkflows[K]>, 'type' | 'workflowType'>,
): ScheduleOptionsStartWorkflowAction<ReleaseWorkflows[K]> {
  return { type: 'startWorkflow', workflowType: WORKFLOW_TYPES[kind], ...options };
}
