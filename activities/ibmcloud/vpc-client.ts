// The narrow slice of the IBM Cloud VPC API (generation 2) that bootc-release uses — this list is also the set of
// permissions the API key needs: instances (create, list by name, get, delete), floating IPs (same), custom images
// (create from COS, list by name, get, delete), and read-only look-ups for preflight (profile, VPC, subnet, key,
// operating system). The VPC SDK is not on our registry, so this is plain fetch against the documented REST shapes:
// `https://<region>.iaas.cloud.ibm.com/v1/...?version=YYYY-MM-DD&generation=2` with a bearer token, collections
// paged through `next.href`, errors as `{errors: [{code, message, more_info}], trace}`.
import { ApplicationFailure } from '@temporalio/common';
import type { IamTokens, IbmAuth } from './iam';
import { FailureType } from '../failures';

export const VPC_API_VERSION = '2024-11-12';

/** `endpoint` may hold `{region}` (e.g. `https://{region}.private.iaas.cloud.ibm.com`); default: the public one. */
export const vpcEndpoint = (region: string, override?: string) =>
  (override ?? 'https://{region}.iaas.cloud.ibm.com').replace(/\{region\}/g, region).replace(/\/+$/, '');

export interface Ref {
  id: string;
  name?: string;
  href?: string;
}

export interface VpcInstance {
  id: string;
  name: string;
  status: 'pending' | 'running' | 'starting' | 'restarting' | 'stopping' | 'stopped' | 'failed' | 'deleting' | string;
  status_reasons?: { code: string; message: string }[];
  created_at?: string;
  zone?: { name: string };
  primary_network_interface?: Ref & { primary_ip?: { address: string }; primary_ipv4_address?: string };
}

export interface InstancePrototype {
  name: string;
  profile: { name: string };
  image: { id: string };
  vpc: { id: string };
  zone: { name: string };
  primary_network_interface: { name?: string; subnet: { id: string } };
  keys: { id: string }[];
  resource_group?: { id: string };
}

export interface VpcFloatingIp {
  id: string;
  name: string;
  address: string;
  status: 'pending' | 'available' | 'deleting' | 'failed' | string;
  created_at?: string;
  target?: Ref;
}

export interface VpcImage {
  id: string;
  name: string;
  status: 'pending' | 'available' | 'failed' | 'deleting' | 'deprecated' | 'obsolete' | 'tentative' | 'unusable' | string;
  status_reasons?: { code: string; message: string; more_info?: string }[];
  created_at?: string;
  file?: { href?: string; size?: number; checksums?: { sha256?: string } };
  operating_system?: { name: string };
  visibility?: string;
}

export interface ImagePrototype {
  name: string;
  operating_system: { name: string };
  file: { href: string };
  resource_group?: { id: string };
}

interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Return undefined on 404 instead of failing. */
  allowNotFound?: boolean;
  signal?: AbortSignal;
}

export interface VpcClientOptions {
  region: string;
  endpoint?: string;
  auth: IbmAuth;
  tokens: IamTokens;
  fetch?: typeof fetch;
  version?: string;
}

export class VpcClient {
  readonly region: string;
  readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly opts: VpcClientOptions) {
    this.region = opts.region;
    this.baseUrl = vpcEndpoint(opts.region, opts.endpoint);
    this.fetchFn = opts.fetch ?? fetch;
  }

  get auth(): IbmAuth {
    return this.opts.auth;
  }

  /** Proves the key works (IAM exchange) without touching the VPC API. */
  token = (signal?: AbortSignal) => this.opts.tokens.token(this.opts.auth, signal);

  // Instances
  listInstances = (name?: string, signal?: AbortSignal) => this.list<VpcInstance>('/v1/instances', 'instances', { name }, signal);
  getInstance = (id: string, signal?: AbortSignal) =>
    this.request<VpcInstance>('GET', `/v1/instances/${enc(id)}`, { allowNotFound: true, signal });
  createInstance = async (prototype: InstancePrototype, signal?: AbortSignal) =>
    (await this.request<VpcInstance>('POST', '/v1/instances', { body: prototype, signal }))!;
  /** False when it was already gone. */
  deleteInstance = (id: string, signal?: AbortSignal) => this.remove(`/v1/instances/${enc(id)}`, signal);

  // Floating IPs (the list has no name filter, so callers filter)
  listFloatingIps = (signal?: AbortSignal) => this.list<VpcFloatingIp>('/v1/floating_ips', 'floating_ips', {}, signal);
  getFloatingIp = (id: string, signal?: AbortSignal) =>
    this.request<VpcFloatingIp>('GET', `/v1/floating_ips/${enc(id)}`, { allowNotFound: true, signal });
  createFloatingIp = async (
    prototype: { name: string; target: { id: string }; resource_group?: { id: string } },
    signal?: AbortSignal,
  ) => (await this.request<VpcFloatingIp>('POST', '/v1/floating_ips', { body: prototype, signal }))!;
  deleteFloatingIp = (id: string, signal?: AbortSignal) => this.remove(`/v1/floating_ips/${enc(id)}`, signal);

  // Custom images
  listImages = (name?: string, signal?: AbortSignal) =>
    this.list<VpcImage>('/v1/images', 'images', { name, visibility: 'private' }, signal);
  getImage = (id: string, signal?: AbortSignal) => this.request<VpcImage>('GET', `/v1/images/${enc(id)}`, { allowNotFound: true, signal });
  createImage = async (prototype: ImagePrototype, signal?: AbortSignal) =>
    (await this.request<VpcImage>('POST', '/v1/images', { body: prototype, signal }))!;
  deleteImage = (id: string, signal?: AbortSignal) => this.remove(`/v1/images/${enc(id)}`, signal);

  // Preflight look-ups: undefined when the thing does not exist.
  getProfile = (name: string, signal?: AbortSignal) =>
    this.request<{ name: string }>('GET', `/v1/instance/profiles/${enc(name)}`, { allowNotFound: true, signal });
  getVpc = (id: string, signal?: AbortSignal) => this.request<Ref>('GET', `/v1/vpcs/${enc(id)}`, { allowNotFound: true, signal });
  getSubnet = (id: string, signal?: AbortSignal) =>
    this.request<Ref & { zone?: { name: string }; vpc?: Ref }>('GET', `/v1/subnets/${enc(id)}`, { allowNotFound: true, signal });
  getKey = (id: string, signal?: AbortSignal) => this.request<Ref>('GET', `/v1/keys/${enc(id)}`, { allowNotFound: true, signal });
  getOperatingSystem = (name: string, signal?: AbortSignal) =>
    this.request<{ name: string }>('GET', `/v1/operating_systems/${enc(name)}`, { allowNotFound: true, signal });

  private async remove(path: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.send('DELETE', path, { allowNotFound: true, signal });
    return res !== undefined;
  }

  /** Every page of a collection, following `next.href` (which carries the `start` token). */
  private async list<T>(path: string, key: string, query: RequestOptions['query'], signal?: AbortSignal): Promise<T[]> {
    const items: T[] = [];
    let next: RequestOptions['query'] = { ...query, limit: 100 };
    for (let page = 0; next && page < 1000; page++) {
      const body: Record<string, unknown> = (await this.request<Record<string, unknown>>('GET', path, { query: next, signal }))!;
      items.push(...((body[key] as T[] | undefined) ?? []));
      const href: string | undefined = (body.next as { href?: string } | undefined)?.href;
      const start: string | null = href ? new URL(href).searchParams.get('start') : null;
      next = start ? { ...query, limit: 100, start } : undefined;
    }
    return items;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T | undefined> {
    const res = await this.send(method, path, options);
    if (res === undefined) return undefined;
    return (res === '' ? {} : JSON.parse(res)) as T;
  }

  /** The raw body, or undefined on an allowed 404. Retries once with a fresh token after a 401. */
  private async send(method: string, path: string, options: RequestOptions): Promise<string | undefined> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [k, v] of Object.entries({ ...options.query, version: this.opts.version ?? VPC_API_VERSION, generation: 2 }))
      if (v !== undefined) url.searchParams.set(k, String(v));
    for (let attempt = 0; ; attempt++) {
      const token = await this.opts.tokens.token(this.opts.auth, options.signal);
      let res: Response;
      try {
        res = await this.fetchFn(url, {
          method,
          headers: {
            Authorization: `Bearer ${token}`,
            Accept: 'application/json',
            ...(options.body === undefined ? {} : { 'Content-Type': 'application/json' }),
          },
          body: options.body === undefined ? undefined : JSON.stringify(options.body),
          signal: options.signal,
        });
      } catch (err) {
        if (options.signal?.aborted) throw err;
        throw new Error(`ibmcloud: ${method} ${path} in ${this.region} failed: ${(err as Error).message}`);
      }
      const text = await res.text();
      if (res.ok) return text;
      if (res.status === 401 && attempt === 0) {
        this.opts.tokens.invalidate(this.opts.auth);
        continue;
      }
      if (res.status === 404 && options.allowNotFound) return undefined;
      throw this.failure(method, path, res.status, text);
    }
  }

  private failure(method: string, path: string, status: number, text: string): Error {
    const { detail, trace } = vpcErrorDetail(text);
    const what = `ibmcloud: ${method} ${path.replace(/\?.*$/, '')} in ${this.region} answered ${status}${detail ? ` (${detail})` : ''}`;
    const traced = trace ? `${what} [trace ${trace}]` : what;
    const { field, apiKeyEnv } = this.opts.auth;
    if (status === 401 || status === 403)
      return ApplicationFailure.nonRetryable(
        `${traced}; the API key in ${apiKeyEnv} lacks access to this VPC resource: grant it the VPC Infrastructure Services role (Editor for writes) or check ${field}`,
        FailureType.Permission,
      );
    // 409 is a state conflict (deleting something still in use, a resource mid-transition): it clears with time.
    if (status === 429 || status === 409 || status >= 500) return new Error(traced);
    return ApplicationFailure.nonRetryable(`${traced}; check ${field}`, status === 404 ? FailureType.NotFound : FailureType.Config);
  }
}

const enc = encodeURIComponent;

function vpcErrorDetail(text: string): { detail: string; trace?: string } {
  try {
    const body = JSON.parse(text) as { errors?: { code?: string; message?: string }[]; trace?: string };
    const detail = (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    return { detail, trace: body.trace };
  } catch {
    return { detail: text.slice(0, 200) };
  }
}
