// Keystone v3 password authentication: POST /v3/auth/tokens, token from X-Subject-Token, roles and the service
// catalog from the body. The password is read from the worker's environment and never leaves this function.
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures';

export interface KeystoneCredentials {
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
  region?: string;
}

export interface CatalogEntry {
  type: string;
  name?: string;
  endpoints: { interface: string; url: string; region?: string; region_id?: string }[];
}

export interface KeystoneToken {
  token: string;
  expiresAt: number;
  projectId: string;
  userId: string;
  roles: string[];
  catalog: CatalogEntry[];
}

/** `https://keystone:5000`, `.../v3` or `.../v3/` all mean the v3 API. */
export const v3 = (authUrl: string) => `${authUrl.replace(/\/+$/, '').replace(/\/v3$/, '')}/v3`;

/** `field` names what to fix in errors, e.g. `targets.osuosl.credentialsEnv (OSUOSL_*)`. */
export async function issueToken(creds: KeystoneCredentials, field: string, signal?: AbortSignal): Promise<KeystoneToken> {
  const body = {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: creds.username, domain: { name: creds.userDomainName }, password: creds.password } },
      },
      scope: { project: { name: creds.projectName, domain: { name: creds.projectDomainName } } },
    },
  };
  const url = `${v3(creds.authUrl)}/auth/tokens`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(60_000)]) : AbortSignal.timeout(60_000),
    });
  } catch (err) {
    throw new Error(`keystone ${url}: ${(err as Error).message}`);
  }
  if (res.status === 401 || res.status === 403) {
    const detail = await errorMessage(res);
    throw ApplicationFailure.nonRetryable(
      `keystone ${url} refused user "${creds.username}" for project "${creds.projectName}" (${res.status}${detail ? `: ${detail}` : ''}); fix ${field}`,
      FailureType.Permission,
    );
  }
  if (res.status === 404)
    throw ApplicationFailure.nonRetryable(`keystone ${url} answered 404: is the auth URL a Keystone v3 endpoint? fix its authUrl`, FailureType.Config);
  if (!res.ok) throw new Error(`keystone ${url} answered ${res.status}: ${await errorMessage(res)}`);
  const token = res.headers.get('x-subject-token');
  const json = (await res.json()) as { token: { expires_at: string; project?: { id: string }; user: { id: string }; roles?: { name: string }[]; catalog?: CatalogEntry[] } };
  if (!token || !json.token.project) throw new Error(`keystone ${url} issued no project-scoped token`);
  return {
    token,
    expiresAt: Date.parse(json.token.expires_at),
    projectId: json.token.project.id,
    userId: json.token.user.id,
    roles: (json.token.roles ?? []).map((r) => r.name),
    catalog: json.token.catalog ?? [],
  };
}

/** The public image (Glance) endpoint of the catalog, in `region` when given. */
export function imageEndpoint(catalog: CatalogEntry[], region: string | undefined, field: string): string {
  const endpoints = catalog.filter((c) => c.type === 'image').flatMap((c) => c.endpoints);
  const found = endpoints.find((e) => e.interface === 'public' && (!region || e.region_id === region || e.region === region));
  if (!found)
    throw ApplicationFailure.nonRetryable(
      `the Keystone catalog has no public image endpoint${region ? ` in region ${region}` : ''}; set ${field}`,
      FailureType.Config,
    );
  return found.url;
}

/** The readable part of an OpenStack error body (JSON, or HTML fragments from webob), on one line. */
export async function errorMessage(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  let message = text;
  try {
    const j = JSON.parse(text);
    message = String(j.error?.message ?? j.message ?? j.title ?? text);
  } catch {
    /* not JSON */
  }
  return message.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300);
}
