// What the IBM Cloud builder provider and publish target take from the worker (or a test): nothing global.
import { IamTokens, resolveAuth } from './iam';
import { VpcClient, type VpcInstance } from './vpc-client';

export interface IbmCloudDeps {
  /** Where API keys and COS HMAC keys are looked up by the names the config gives. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** Shared token cache; one per worker is enough. */
  tokens?: IamTokens;
  apiVersion?: string;
  /** Between polls of an instance or image. Default 10 s. */
  pollIntervalMs?: number;
  /** Instance pending → running. Default 15 min. */
  instanceTimeoutMs?: number;
  /** Custom image import pending → available (real imports of a few GB take 10–30 min). Default 3 h. */
  imageTimeoutMs?: number;
  /** COS multipart part size (default 16 MiB, grown for images over ~140 GiB). */
  cosPartSize?: number;
  /** Tests: map an instance to a reachable SSH host (the rig's sshd) instead of its IP. */
  addressOf?: (instance: VpcInstance, region: string) => { address: string; port?: number } | Promise<{ address: string; port?: number }>;
}

export interface IbmApiRef {
  region: string;
  apiKeyEnv: string;
  endpoint?: string;
  iamEndpoint?: string;
}

export function withDefaults(deps: IbmCloudDeps) {
  const tokens = deps.tokens ?? new IamTokens(deps.fetch ?? fetch);
  return {
    ...deps,
    tokens,
    pollIntervalMs: deps.pollIntervalMs ?? 10_000,
    instanceTimeoutMs: deps.instanceTimeoutMs ?? 15 * 60_000,
    imageTimeoutMs: deps.imageTimeoutMs ?? 3 * 3600_000,
    /** A VPC client for one region; throws a ConfigError when the API key env var is unset. */
    vpc: (ref: IbmApiRef, field: string) =>
      new VpcClient({
        region: ref.region,
        endpoint: ref.endpoint,
        auth: resolveAuth(ref, field, deps.env),
        tokens,
        fetch: deps.fetch,
        version: deps.apiVersion,
      }),
  };
}

/** A wait of hours should not fail on one bad poll (429, 5xx, a dropped connection): this many in a row end it. */
export const TRANSIENT_POLL_ERRORS = 5;

export type ResolvedDeps = ReturnType<typeof withDefaults>;

/** Turns any failure into one line for a CheckResult, without stack or secrets. */
export const reason = (err: unknown) => (err instanceof Error ? err.message : String(err));
