// IBM Cloud IAM: exchange an API key for a bearer token, the contract ibm-cloud-sdk-core's IamAuthenticator follows:
// POST <iam>/identity/token, form `grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=KEY`,
// → {access_token, expires_in, expiration, token_type}. A refused key comes back as 400 {errorCode, errorMessage}.
// Tokens live about an hour; one is cached per (endpoint, key) and renewed a minute before it expires, so a long
// poll never sends a stale one. The key is read from the worker's environment and never leaves this module.
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures';

export const DEFAULT_IAM_ENDPOINT = 'https://iam.cloud.ibm.com';
const RENEW_BEFORE_MS = 60_000;

/** Where a key comes from and where it is exchanged. `field` is the config path named in error messages. */
export interface IbmAuth {
  apiKey: string;
  apiKeyEnv: string;
  iamEndpoint: string;
  field: string;
}

/** Reads the API key from the env var the config names; a missing one is a config error naming both. */
export function resolveAuth(
  ref: { apiKeyEnv: string; iamEndpoint?: string },
  field: string,
  env: NodeJS.ProcessEnv = process.env,
): IbmAuth {
  const apiKey = env[ref.apiKeyEnv];
  if (!apiKey)
    throw ApplicationFailure.nonRetryable(
      `ibmcloud: environment variable ${ref.apiKeyEnv} is not set on the worker; set it to an IBM Cloud API key or change ${field}.apiKeyEnv`,
      FailureType.Config,
    );
  return { apiKey, apiKeyEnv: ref.apiKeyEnv, iamEndpoint: ref.iamEndpoint ?? DEFAULT_IAM_ENDPOINT, field };
}

const tokenUrl = (endpoint: string) =>
  /\/identity\/token\/?$/.test(endpoint) ? endpoint : `${endpoint.replace(/\/+$/, '')}/identity/token`;

export class IamTokens {
  private readonly cache = new Map<string, { token: string; renewAt: number }>();

  constructor(
    private readonly fetchFn: typeof fetch = fetch,
    private readonly now: () => number = Date.now,
  ) {}

  async token(auth: IbmAuth, signal?: AbortSignal): Promise<string> {
    const key = this.keyOf(auth);
    const cached = this.cache.get(key);
    if (cached && cached.renewAt > this.now()) return cached.token;
    const url = tokenUrl(auth.iamEndpoint);
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
        body: new URLSearchParams({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: auth.apiKey }).toString(),
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new Error(`ibmcloud: IAM token request to ${url} failed: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      // Scrubbed in case a proxy echoes the form back.
      const detail = iamErrorDetail(text).split(auth.apiKey).join('***');
      const message = `ibmcloud: IAM at ${url} refused the API key in ${auth.apiKeyEnv} (${res.status}${detail ? `: ${detail}` : ''})`;
      if (res.status === 429 || res.status >= 500) throw new Error(message);
      throw ApplicationFailure.nonRetryable(
        `${message}; put a valid API key in ${auth.apiKeyEnv} on the worker or change ${auth.field}.apiKeyEnv`,
        FailureType.Permission,
      );
    }
    const body = JSON.parse(text) as { access_token?: string; expires_in?: number; expiration?: number };
    if (!body.access_token) throw new Error(`ibmcloud: IAM at ${url} answered without an access_token`);
    const expiresAt = body.expiration ? body.expiration * 1000 : this.now() + (body.expires_in ?? 3600) * 1000;
    // Short-lived tokens (the stand-in's) would otherwise never be cached; renew at 90% of life at the latest.
    const lifetime = expiresAt - this.now();
    this.cache.set(key, { token: body.access_token, renewAt: expiresAt - Math.min(RENEW_BEFORE_MS, lifetime / 10) });
    return body.access_token;
  }

  /** Forget the cached token, e.g. after a 401 that a revoked token can explain. */
  invalidate(auth: IbmAuth): void {
    this.cache.delete(this.keyOf(auth));
  }

  private keyOf(auth: IbmAuth): string {
    return `${auth.iamEndpoint}\0${createHash('sha256').update(auth.apiKey).digest('hex')}`;
  }
}

function iamErrorDetail(text: string): string {
  try {
    const body = JSON.parse(text) as { errorCode?: string; errorMessage?: string };
    return [body.errorCode, body.errorMessage].filter(Boolean).join(': ');
  } catch {
    return text.slice(0, 200);
  }
}
