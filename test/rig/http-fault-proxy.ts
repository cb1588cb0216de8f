// A fault-injecting HTTP proxy in front of one of the rig's HTTP clouds (moto for EC2, EBS direct and S3/COS,
// glance-api, the IBM Cloud stand-in): requests pass through unchanged (headers and Host too, so signatures hold)
// unless a rule matches them (method, path and query, the start of the body). A rule can answer an error status
// without forwarding (503 for a while), reset the connection after part of the body went up (reset mid-transfer),
// hold the request, or forward it and hold the answer (the cloud did it, the client has not heard yet), or rewrite
// the answer. `slow()` delays every request and paces request bodies (a slow uplink). Companion of the TCP proxy in
// ./fault-proxy.ts.
import http from 'node:http';
import type net from 'node:net';

export interface Match {
  method?: string;
  /** Tested against the request's path and query, e.g. /\/snapshots\/[^/]+\/blocks\//. */
  path?: RegExp;
  /** Tested against the first 4 KiB of the body (EC2's query API names its action there: /Action=RegisterImage/). */
  body?: RegExp;
}

export type FaultAction =
  | { status: number; body?: string; contentType?: string }
  | { resetAfterBytes: number }
  | { holdRequest: true }
  | { holdResponse: true }
  | { rewrite: (body: string) => string };

export interface Rule {
  match: Match;
  action: FaultAction;
  /** How many matching requests it takes; Infinity (the default) until removed. */
  times?: number;
}

/** A rule in force: how often it matched, the requests it holds, and a release for them. */
export interface ActiveRule {
  readonly hits: number;
  readonly held: number;
  /** Lets the held requests (or answers) go on, and stops holding; the rule stays for its other actions. */
  release(): void;
  remove(): void;
}

const PEEK = 4096;
const S3_STYLE_503 =
  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected by the fault proxy</Message></Error>';

interface Slow {
  latencyMs?: number;
  /** Request bodies go up at this rate, across all requests. */
  bytesPerSecond?: number;
}

export class HttpFaultProxy {
  private readonly rules: (Rule & { hits: number; held: (() => void)[]; releasedAt?: number; active: ActiveRule })[] = [];
  private slowness: Slow = {};
  private nextSend = 0;
  private readonly sockets = new Set<net.Socket>();
  readonly url: string;
  requests = 0;

  private constructor(
    private readonly server: http.Server,
    private readonly upstream: URL,
  ) {
    this.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  }

  static async start(upstream: string): Promise<HttpFaultProxy> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new HttpFaultProxy(server, new URL(upstream));
    server.on('connection', (s) => {
      proxy.sockets.add(s);
      s.on('close', () => proxy.sockets.delete(s));
    });
    // A client or upstream gone mid-request (a reset this proxy made, a killed worker) ends that request only.
    server.on('request', (req, res) => {
      req.on('error', () => res.destroy());
      proxy.handle(req, res).catch(() => res.destroy());
    });
    return proxy;
  }

  /** `http://127.0.0.1:P` plus a path suffix the upstream URL had (the IBM stand-in's `/{region}`). */
  endpoint(suffix = ''): string {
    return `${this.url}${suffix}`;
  }

  add(rule: Rule): ActiveRule {
    const entry = { ...rule, times: rule.times ?? Infinity, hits: 0, held: [] as (() => void)[] } as (typeof this.rules)[number];
    entry.active = {
      get hits() {
        return entry.hits;
      },
      get held() {
        return entry.held.length;
      },
      release: () => {
        entry.releasedAt = Date.now();
        for (const go of entry.held.splice(0)) go();
      },
      remove: () => {
        entry.active.release();
        this.rules.splice(this.rules.indexOf(entry), 1);
      },
    };
    this.rules.push(entry);
    return entry.active;
  }

  /** Every request waits latencyMs before it is forwarded; bodies go up at bytesPerSecond. `{}` lifts it. */
  slow(s: Slow): void {
    this.slowness = { ...s };
  }

  clear(): void {
    for (const r of [...this.rules]) r.active.remove();
    this.slowness = {};
  }

  close(): Promise<void> {
    this.clear();
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.requests++;
    const head = await peek(req);
    const rule = this.rules.find(
      (r) =>
        r.hits < r.times! &&
        (!r.match.method || r.match.method === req.method) &&
        (!r.match.path || r.match.path.test(req.url ?? '')) &&
        (!r.match.body || r.match.body.test(head.toString('latin1'))),
    );
    if (rule) rule.hits++;
    const action = rule?.action;
    if (action && 'status' in action) {
      req.resume();
      res.writeHead(action.status, { 'Content-Type': action.contentType ?? 'application/xml', Connection: 'close' });
      res.end(action.body ?? S3_STYLE_503);
      return;
    }
    const hold = async () => {
      if (rule!.releasedAt) return;
      await new Promise<void>((go) => rule!.held.push(go));
    };
    if (action && 'holdRequest' in action) await hold();
    if (this.slowness.latencyMs) await new Promise((r) => setTimeout(r, this.slowness.latencyMs));
    if (res.destroyed || req.socket.destroyed) return;

    // The proxy has already said 100 Continue (node's server does, unasked): the upstream need not say it again.
    const { expect: _continue, ...headers } = req.headers;
    const upstream = http.request({ host: this.upstream.hostname, port: this.upstream.port, method: req.method, path: req.url, headers });
    const abort = () => upstream.destroy();
    res.on('close', () => {
      if (!res.writableFinished) abort();
    });
    upstream.on('error', () => res.destroy());
    upstream.on('response', (answer) => this.answer(answer, res, action, hold).catch(() => res.destroy()));

    const resetAfter = action && 'resetAfterBytes' in action ? action.resetAfterBytes : Infinity;
    let sent = 0;
    const send = async (chunk: Buffer): Promise<boolean> => {
      const take = Math.min(chunk.length, resetAfter - sent);
      if (take > 0) {
        await this.pace(take);
        upstream.write(chunk.subarray(0, take));
        sent += take;
      }
      if (sent >= resetAfter) {
        // The cloud got part of the body, the client a reset: both connections are dropped mid-transfer.
        upstream.destroy();
        req.socket.resetAndDestroy();
        return false;
      }
      return true;
    };
    if (head.length && !(await send(head))) return;
    for await (const chunk of req) if (!(await send(chunk as Buffer))) return;
    upstream.end();
  }

  private async answer(
    answer: http.IncomingMessage,
    res: http.ServerResponse,
    action: FaultAction | undefined,
    hold: () => Promise<void>,
  ): Promise<void> {
    if (action && ('holdResponse' in action || 'rewrite' in action)) {
      answer.on('error', () => res.destroy());
      const parts: Buffer[] = [];
      for await (const c of answer) parts.push(c as Buffer);
      let body = Buffer.concat(parts);
      if ('holdResponse' in action) await hold();
      if ('rewrite' in action) body = Buffer.from(action.rewrite(body.toString()));
      if (res.destroyed) return;
      const headers = { ...answer.headers, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      res.writeHead(answer.statusCode ?? 502, headers);
      res.end(body);
      return;
    }
    answer.on('error', () => res.destroy());
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  }

  private async pace(n: number): Promise<void> {
    const rate = this.slowness.bytesPerSecond;
    if (!rate) return;
    this.nextSend = Math.max(this.nextSend, Date.now()) + (n / rate) * 1000;
    const wait = this.nextSend - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

/** Reads up to PEEK bytes of the body (all of a small one) without losing them: they are returned, the rest stays. */
async function peek(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  while (n < PEEK && !req.readableEnded) {
    const chunk = req.read() as Buffer | null;
    if (chunk) {
      chunks.push(chunk);
      n += chunk.length;
      continue;
    }
    const more = await new Promise<boolean>((resolve) => {
      const done = (v: boolean) => {
        req.off('readable', onReadable);
        req.off('end', onEnd);
        req.off('error', onEnd);
        resolve(v);
      };
      const onReadable = () => done(true);
      const onEnd = () => done(false);
      req.once('readable', onReadable);
      req.once('end', onEnd);
      req.once('error', onEnd);
    });
    if (!more) break;
  }
  return Buffer.concat(chunks);
}
