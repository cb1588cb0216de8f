// How requests to Glance are authenticated, as a small strategy:
// - keystone: password auth with <P>_USERNAME, <P>_PASSWORD, <P>_PROJECT_NAME, <P>_USER_DOMAIN_NAME,
//   <P>_PROJECT_DOMAIN_NAME (and optional <P>_REGION_NAME) from the worker's environment; renewed before expiry;
// - token: a pre-issued token in the env var `tokenEnv`, with `imageUrl`;
// - headers (TESTS AND LOCAL DEVELOPMENT ONLY): `testIdentityHeaders` sent as X-Identity-Status/X-User-Id/
//   X-Project-Id/X-Roles, which only a glance-api with the fakeauth paste pipeline accepts.
import { ApplicationFailure } from '@temporalio/common';
import type { Target } from '../../config/schema';
import { imageEndpoint, issueToken, type KeystoneCredentials, type KeystoneToken } from './keystone';
import { FailureType } from '../failures';

export type OpenstackTarget = Extract<Target, { kind: 'openstack' }>;

export interface GlanceAuth {
  kind: 'keystone' | 'token' | 'headers';
  /** Glance base URL, without /v2. */
  imageUrl: string;
  /** The project images are created in, when known (not for a bare token). */
  projectId?: string;
  /** The caller's roles, when known. */
  roles?: string[];
  /** Headers that authenticate one request (fresh token when the old one is about to expire). */
  headers(signal?: AbortSignal): Promise<Record<string, string>>;
}

const baseUrl = (url: string) => url.replace(/\/+$/, '').replace(/\/v2$/, '');

export async function resolveAuth(target: OpenstackTarget, targetName: string, signal?: AbortSignal, env: NodeJS.ProcessEnv = process.env): Promise<GlanceAuth> {
  const field = `targets.${targetName}`;
  if (target.testIdentityHeaders) {
    if (!target.imageUrl) throw ApplicationFailure.nonRetryable(`${field}.imageUrl is required with testIdentityHeaders`, FailureType.Config);
    const id = target.testIdentityHeaders;
    const headers = { 'X-Identity-Status': 'Confirmed', 'X-User-Id': id.userId, 'X-Project-Id': id.projectId, 'X-Roles': id.roles.join(',') };
    return { kind: 'headers', imageUrl: baseUrl(target.imageUrl), projectId: id.projectId, roles: id.roles, headers: async () => headers };
  }

  if (!target.authUrl) {
    if (!target.tokenEnv || !target.imageUrl)
      throw ApplicationFailure.nonRetryable(`${field}: set authUrl (Keystone), or imageUrl with tokenEnv (a pre-issued token)`, FailureType.Config);
    const token = env[target.tokenEnv];
    if (!token) throw ApplicationFailure.nonRetryable(`${field}.tokenEnv: environment variable ${target.tokenEnv} is not set on the worker`, FailureType.Config);
    return { kind: 'token', imageUrl: baseUrl(target.imageUrl), headers: async () => ({ 'X-Auth-Token': token }) };
  }

  const prefix = target.credentialsEnv ?? 'OS';
  const credsField = `${field}.credentialsEnv (${prefix}_*)`;
  const read = (suffix: string, fallback?: string) => {
    const value = env[`${prefix}_${suffix}`] ?? fallback;
    if (!value) throw ApplicationFailure.nonRetryable(`environment variable ${prefix}_${suffix} is not set on the worker; see ${field}.credentialsEnv`, FailureType.Config);
    return value;
  };
  const creds: KeystoneCredentials = {
    authUrl: target.authUrl,
    username: read('USERNAME'),
    password: read('PASSWORD'),
    projectName: read('PROJECT_NAME'),
    userDomainName: read('USER_DOMAIN_NAME', 'Default'),
    projectDomainName: read('PROJECT_DOMAIN_NAME', 'Default'),
    region: env[`${prefix}_REGION_NAME`],
  };
  let current: KeystoneToken = await issueToken(creds, credsField, signal);
  const imageUrl = baseUrl(target.imageUrl ?? imageEndpoint(current.catalog, creds.region, `${field}.imageUrl`));
  return {
    kind: 'keystone',
    imageUrl,
    projectId: current.projectId,
    roles: current.roles,
    async headers(sig) {
      // A long upload can outlive a token: renew five minutes before it expires.
      if (current.expiresAt - Date.now() < 5 * 60_000) current = await issueToken(creds, credsField, sig);
      return { 'X-Auth-Token': current.token };
    },
  };
}
