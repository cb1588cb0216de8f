// STAND-IN for IBM Cloud IAM and the IBM Cloud VPC API (generation 2). No emulator exists and the cloud is not
// reachable from the rig, so this in-process node:http server implements exactly the documented requests and
// responses bootc-release uses, and nothing else (docs/contracts.md#ibm-cloud-vpc;
// what it leaves out: docs/real-and-stand-in.md#ibm-cloud):
//   IAM  POST /identity/token  form grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=K
//        → {access_token, refresh_token, token_type: "Bearer", expires_in, expiration}; unknown key → 400 BXNIM0415E.
//   VPC  /<region>/v1/...?version=YYYY-MM-DD&generation=2 with `Authorization: Bearer`, where the `/<region>` prefix
//        stands in for the regional host <region>.iaas.cloud.ibm.com (config: endpoint `http://127.0.0.1:P/{region}`):
//        instances POST, GET ?name=, GET/DELETE {id}; floating_ips POST, GET, GET/DELETE {id};
//        images POST {name, operating_system:{name}, file:{href: cos://…}, resource_group}, GET ?name=&visibility=,
//        GET/DELETE {id}; read-only instance/profiles/{name}, vpcs/{id}, subnets/{id}, keys/{id},
//        operating_systems/{name}. Collections page with limit/start and `next.href`.
//        Errors are {errors: [{code, message, more_info}], trace}: 400 validation, 401 bad token, 403 viewer key
//        writing, 404 unknown id or path.
// Slowness is modelled as pending → running/available after N reads and M ms; faults are injectable (a status code
// for the next matching requests, a failed import with a reason), and tests can inspect every resource and request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { RegionState, type Catalog, type Resource } from './ibm-vpc-state';

export interface IbmStandinOptions {
  /** Accepted API keys and what they may do: viewers get 403 on writes. */
  apiKeys: Record<string, 'editor' | 'viewer'>;
  /** Regions and what exists in each before the test. */
  regions: Record<string, Partial<Catalog>>;
  tokenTtlSeconds?: number;
  /** pending → running/available after this many reads (default 2) and at least this many ms (default 0). */
  pendingReads?: number;
  pendingMs?: number;
  /** Asked once per image import with its file href; a string fails the import with that reason. */
  importCheck?: (href: string, name: string) => Promise<string | undefined> | string | undefined;
  /** Largest page a collection returns, to exercise paging (default 50). */
  maxPage?: number;
}

export interface LoggedRequest {
  method: string;
  region?: string;
  path: string;
  query: Record<string, string>;
  status: number;
}

interface Fault {
  method?: string;
  path: RegExp;
  status: number;
  times: number;
  code: string;
  message: string;
}

const NAME = /^([a-z]|[a-z][-a-z0-9]*[a-z0-9])$/;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class IbmCloudStandin {
  readonly requests: LoggedRequest[] = [];
  tokenExchanges = 0;
  private readonly regions = new Map<string, RegionState>();
  private readonly tokens = new Map<string, { role: 'editor' | 'viewer'; expires: number }>();
  private faults: Fault[] = [];
  private failedImports: { name: RegExp; reason: string }[] = [];
  private url = '';

  private constructor(
    private readonly server: Server,
    private readonly opts: IbmStandinOptions,
  ) {
    for (const [region, catalog] of Object.entries(opts.regions))
      this.regions.set(region, new RegionState(region, catalog, { reads: opts.pendingReads ?? 2, ms: opts.pendingMs ?? 0 }));
  }

  static async start(opts: IbmStandinOptions): Promise<IbmCloudStandin> {
    const server = createServer();
    const standin = new IbmCloudStandin(server, opts);
    server.on('request', (req, res) => void standin.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    standin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return standin;
  }

  /** For config: `endpoint` (with `{region}`) and `iamEndpoint`. */
  get endpoint() {
    return `${this.url}/{region}`;
  }
  get iamEndpoint() {
    return this.url;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }

  // Inspection: what exists now, without advancing any transition.
  instances = (region?: string) => this.all(region, (s) => s.instances);
  images = (region?: string) => this.all(region, (s) => s.images);
  floatingIps = (region?: string) => this.all(region, (s) => s.floatingIps);

  // Faults
  /** The next `times` requests matching method and VPC path (e.g. /\/v1\/images$/) get `status`. */
  failNext(fault: { method?: string; path: RegExp; status: number; times?: number; code?: string; message?: string }): void {
    this.faults.push({ times: 1, code: fault.status === 429 ? 'rate_limited' : 'internal_error', message: 'injected fault', ...fault });
  }
  /** Imports of images whose name matches end `failed` with this reason. */
  failImport(name: RegExp, reason: string): void {
    this.failedImports.push({ name, reason });
  }
  /** Every issued token stops working (a revoked or expired token): the next VPC call gets 401. */
  revokeTokens(): void {
    this.tokens.clear();
  }

  private all(region: string | undefined, pick: (s: RegionState) => Map<string, Resource>) {
    const states = region ? [this.regions.get(region)!] : [...this.regions.values()];
    return states.flatMap((s) => [...pick(s).values()].map((r) => ({ region: s.region, ...s.view(r) }) as Record<string, any>));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const query = Object.fromEntries(url.searchParams);
    const log: LoggedRequest = { method: req.method ?? 'GET', path: url.pathname, query, status: 0 };
    this.requests.push(log);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString();
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      log.status = status;
      res.writeHead(status, { ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    try {
      if (url.pathname === '/identity/token' && req.method === 'POST') {
        const [status, body] = this.exchange(new URLSearchParams(raw));
        return send(status, body);
      }
      const m = /^\/([a-z]{2}-[a-z]+)(\/v1\/.*)$/.exec(url.pathname);
      const state = m && this.regions.get(m[1]);
      if (!m || !state) throw new ApiError(404, 'not_found', `no such endpoint ${url.pathname}`);
      log.region = m[1];
      log.path = m[2];
      this.authorize(req);
      const fault = this.faults.find((f) => f.times > 0 && (!f.method || f.method === req.method) && f.path.test(m[2]));
      if (fault) {
        fault.times--;
        throw new ApiError(fault.status, fault.code, fault.message);
      }
      if (!/^\d{4}-\d{2}-\d{2}$/.test(query.version ?? '')) throw new ApiError(400, 'missing_version', 'version query parameter is required');
      if (query.generation !== '2') throw new ApiError(400, 'bad_generation', 'generation must be 2');
      if (req.method !== 'GET' && this.roleOf(req) !== 'editor')
        throw new ApiError(403, 'forbidden', 'the API key is not authorized to perform this action');
      const body = raw ? (JSON.parse(raw) as Record<string, any>) : {};
      const [status, out] = await this.route(state, req.method ?? 'GET', m[2], query, body);
      return send(status, out);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, 'internal_error', (err as Error).message);
      const more_info = 'https://cloud.ibm.com/docs/vpc?topic=vpc-rias-error-messages';
      return send(e.status, { errors: [{ code: e.code, message: e.message, more_info }], trace: randomUUID() }, e.status === 429 ? { 'Retry-After': '1' } : {});
    }
  }

  private exchange(form: URLSearchParams): [number, unknown] {
    this.tokenExchanges++;
    const role = this.opts.apiKeys[form.get('apikey') ?? ''];
    if (form.get('grant_type') !== 'urn:ibm:params:oauth:grant-type:apikey')
      return [400, { errorCode: 'BXNIM0109E', errorMessage: 'Property missing or empty: grant_type' }];
    if (!role) return [400, { errorCode: 'BXNIM0415E', errorMessage: 'Provided API key could not be found.', context: { requestId: randomUUID() } }];
    const ttl = this.opts.tokenTtlSeconds ?? 3600;
    const token = randomBytes(24).toString('base64url');
    const expiration = Math.floor(Date.now() / 1000) + ttl;
    this.tokens.set(token, { role, expires: expiration * 1000 });
    return [200, { access_token: token, refresh_token: 'not_supported', token_type: 'Bearer', expires_in: ttl, expiration, scope: 'ibm openid' }];
  }

  private authorize(req: IncomingMessage): void {
    if (!this.roleOf(req)) throw new ApiError(401, 'not_authorized', 'the provided token is invalid or expired');
  }

  private roleOf(req: IncomingMessage): 'editor' | 'viewer' | undefined {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const t = token ? this.tokens.get(token) : undefined;
    return t && t.expires > Date.now() ? t.role : undefined;
  }

  private async route(s: RegionState, method: string, path: string, query: Record<string, string>, body: Record<string, any>): Promise<[number, unknown]> {
    const [, collection, id] = /^\/v1\/(instances|floating_ips|images|instance\/profiles|vpcs|subnets|keys|operating_systems)(?:\/([^/]+))?$/.exec(path) ?? [];
    const notFound = () => new ApiError(404, 'not_found', `${collection} ${id} not found`);
    const lookup = (found: unknown) => {
      if (!found) throw notFound();
      return [200, found] as [number, unknown];
    };
    const c = s.catalog;
    if (method === 'GET' && id)
      switch (collection) {
        case 'instance/profiles':
          return lookup(c.profiles.includes(id) && { name: id, family: id.split('-')[0] });
        case 'vpcs':
          return lookup(c.vpcs.includes(id) && { id, name: id, status: 'available' });
        case 'subnets': {
          const sub = c.subnets.find((x) => x.id === id);
          return lookup(sub && { id, name: id, zone: { name: sub.zone }, vpc: { id: sub.vpc } });
        }
        case 'keys':
          return lookup(c.keys.includes(id) && { id, name: id, type: 'ed25519' });
        case 'operating_systems':
          return lookup(c.operatingSystems.includes(id) && { name: id, architecture: id.split('-').pop() });
      }
    const kinds = { instances: s.instances, floating_ips: s.floatingIps, images: s.images } as const;
    const kind = kinds[collection as keyof typeof kinds];
    if (!kind) throw new ApiError(404, 'not_found', `no such endpoint ${method} ${path}`);
    if (method === 'GET' && id) {
      const stock = collection === 'images' && c.images.find((i) => i.id === id);
      if (stock) return [200, { ...stock, status: 'available', visibility: 'public' }];
      const r = kind.get(id);
      if (!r || !s.touch(kind, r)) throw notFound();
      return [200, s.view(r)];
    }
    if (method === 'DELETE' && id) {
      const r = kind.get(id);
      if (!r) throw notFound();
      if (collection === 'floating_ips') kind.delete(id);
      else if (r.status !== 'deleting') {
        r.status = 'deleting';
        r.transition = s.pending('gone');
      }
      return [collection === 'images' ? 202 : 204, undefined];
    }
    if (method === 'GET') return [200, this.page(s, collection, kind, query)];
    if (method === 'POST' && !id) return [201, await this.create(s, collection, body)];
    throw new ApiError(404, 'not_found', `no such endpoint ${method} ${path}`);
  }

  private page(s: RegionState, collection: string, kind: Map<string, Resource>, query: Record<string, string>) {
    let items = [...kind.values()].filter((r) => s.touch(kind, r));
    if (query.name) items = items.filter((r) => r.name === query.name);
    const limit = Math.min(Number(query.limit ?? 50), this.opts.maxPage ?? 50);
    const start = Number(query.start ?? 0);
    const base = `${this.url}/${s.region}/v1/${collection}?limit=${limit}${query.name ? `&name=${query.name}` : ''}`;
    const page = items.slice(start, start + limit);
    return {
      [collection]: page.map((r) => s.view(r)),
      limit,
      first: { href: base },
      total_count: items.length,
      ...(start + limit < items.length ? { next: { href: `${base}&start=${start + limit}` } } : {}),
    };
  }

  private async create(s: RegionState, collection: string, body: Record<string, any>): Promise<unknown> {
    const invalid = (message: string) => new ApiError(400, 'validation_failed', message);
    const name = String(body.name ?? '');
    if (!NAME.test(name) || name.length > 63) throw invalid(`name "${name}" must match ${NAME.source}`);
    const taken = (kind: Map<string, Resource>) => [...kind.values()].some((r) => r.name === name);
    const now = new Date().toISOString();
    const c = s.catalog;
    if (collection === 'instances') {
      if (taken(s.instances)) throw new ApiError(400, 'validation_unique_failed', `an instance named ${name} already exists`);
      const subnet = c.subnets.find((x) => x.id === body.primary_network_interface?.subnet?.id);
      if (!c.profiles.includes(body.profile?.name)) throw invalid(`profile ${body.profile?.name} not found`);
      if (!s.hasImage(body.image?.id)) throw invalid(`image ${body.image?.id} not found or not available`);
      if (!c.vpcs.includes(body.vpc?.id)) throw invalid(`vpc ${body.vpc?.id} not found`);
      if (!subnet || subnet.vpc !== body.vpc?.id) throw invalid(`subnet ${body.primary_network_interface?.subnet?.id} not found in the vpc`);
      if (subnet.zone !== body.zone?.name) throw invalid(`zone ${body.zone?.name} does not match the subnet's zone ${subnet.zone}`);
      const keys = (body.keys ?? []) as { id: string }[];
      if (!keys.length || keys.some((k) => !c.keys.includes(k.id))) throw invalid('keys must name existing SSH keys');
      const id = s.newId('0757');
      const address = s.nextAddress('10.240');
      const r: Resource = {
        id,
        name,
        status: 'pending',
        created_at: now,
        transition: s.pending('running'),
        body: {
          profile: body.profile,
          image: body.image,
          vpc: body.vpc,
          zone: body.zone,
          keys,
          resource_group: body.resource_group,
          primary_network_interface: {
            id: s.newId('0757-nic'),
            name: body.primary_network_interface?.name ?? 'eth0',
            subnet: { id: subnet.id },
            primary_ip: { address },
            primary_ipv4_address: address,
          },
        },
      };
      s.instances.set(id, r);
      return s.view(r);
    }
    if (collection === 'floating_ips') {
      if (taken(s.floatingIps)) throw new ApiError(400, 'validation_unique_failed', `a floating IP named ${name} already exists`);
      if (!s.nics().has(body.target?.id)) throw invalid(`target network interface ${body.target?.id} not found`);
      const id = s.newId('r014-fip');
      const r: Resource = { id, name, status: 'pending', created_at: now, transition: s.pending('available'), body: { address: s.nextAddress('169.63'), target: body.target } };
      s.floatingIps.set(id, r);
      return s.view(r);
    }
    // images
    if (taken(s.images)) throw new ApiError(400, 'validation_unique_failed', `an image named ${name} already exists`);
    if (!c.operatingSystems.includes(body.operating_system?.name)) throw invalid(`operating system ${body.operating_system?.name} not found`);
    const href = String(body.file?.href ?? '');
    if (!/^cos:\/\/[^/]+\/[^/]+\/.+\.(qcow2|vhd)$/.test(href)) throw invalid(`file.href ${href} must be cos://<region>/<bucket>/<key> of a qcow2 or vhd file`);
    const reason = this.failedImports.find((f) => f.name.test(name))?.reason ?? (await this.opts.importCheck?.(href, name));
    const id = s.newId('r014');
    const r: Resource = {
      id,
      name,
      status: 'pending',
      created_at: now,
      transition: reason ? s.pending('failed', [{ code: 'image_file_invalid', message: reason }]) : s.pending('available'),
      body: { file: { href }, operating_system: body.operating_system, resource_group: body.resource_group, visibility: 'private', status_reasons: [] },
    };
    s.images.set(id, r);
    return s.view(r);
  }
}
