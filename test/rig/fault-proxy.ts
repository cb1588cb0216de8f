// A fault-injecting TCP proxy: the project's delay relay (test/rig/delay-relay.ts, which runs this file's delayed
// pipe as a process of its own) grown into the faults toxiproxy offers, in-process and without a dependency:
// latency each way, a bandwidth limit on what the target sends, a stall (both directions held, connections kept),
// a reset after N bytes, a cut of every live connection, and refused connections. Faults change at any time and
// apply to live connections. For HTTP endpoints (5xx, a request reset mid-body, a held answer) see
// ./http-fault-proxy.ts. What these faults do not model (loss, reordering, half-open links): docs/real-and-stand-in.md.
import net from 'node:net';

export interface Endpoint {
  address: string;
  port: number;
}

export interface TcpFaults {
  /** Every chunk waits this long, in each direction. */
  latencyMs?: number;
  /** What the target sends is paced to this rate, across all connections (a slow downlink). */
  bytesPerSecond?: number;
  /** Both directions are held (connections stay open, nothing moves) until set to false. */
  stall?: boolean;
  /** Each connection opened from now on is reset once this many bytes (both ways) have crossed it. */
  resetAfterBytes?: number;
  /** New connections are reset at once, as a closed port behind a firewall that rejects. */
  refuse?: boolean;
}

/** A paced or stalled direction stops reading its sender above this many queued bytes, and reads again below LOW. */
const HIGH = 1 << 20;
const LOW = 256 << 10;

/**
 * Delivers what `from` sends to `to`, each chunk `delayMs()` later, in order, the half-close last: a long link. With
 * `paceAt` (the time a chunk of n bytes may leave, given the link's rate) a slow one; `held()` holds everything.
 */
export function delayedPipe(
  from: net.Socket,
  to: net.Socket,
  delayMs: () => number,
  opts: {
    paceAt?: (n: number) => number;
    held?: () => boolean;
    onData?: (n: number) => void;
    /** Queued bytes above which `from` is paused (default: never; a latency-only link keeps all in flight). */
    maxQueued?: () => number;
  } = {},
): { kick(): void } {
  const queue: { at: number; data: Buffer | null }[] = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  const held = opts.held ?? (() => false);
  const maxQueued = opts.maxQueued ?? (() => Infinity);
  const schedule = () => {
    if (!timer && queue.length && !held()) timer = setTimeout(drain, Math.max(0, queue[0]!.at - Date.now()));
  };
  const drain = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length && queue[0]!.at <= now && !held()) {
      const { data } = queue.shift()!;
      if (data) {
        queued -= data.length;
        if (!to.destroyed) to.write(data);
      } else if (!to.destroyed) to.end();
    }
    if (queued < Math.min(LOW, maxQueued()) && from.isPaused()) from.resume();
    schedule();
  };
  from.on('data', (data: Buffer) => {
    opts.onData?.(data.length);
    const at = Math.max(Date.now() + delayMs(), opts.paceAt?.(data.length) ?? 0);
    queue.push({ at, data });
    queued += data.length;
    if (queued > maxQueued()) from.pause();
    schedule();
  });
  from.on('end', () => {
    queue.push({ at: Date.now() + delayMs(), data: null });
    schedule();
  });
  return { kick: schedule };
}

export class FaultProxy {
  private faults: TcpFaults = {};
  private readonly live = new Set<{ sockets: net.Socket[]; kicks: (() => void)[] }>();
  private nextSend = 0;
  /** Bytes relayed from the target to clients, and from clients to the target. */
  bytesDown = 0;
  bytesUp = 0;
  connections = 0;
  resets = 0;

  private constructor(
    private readonly server: net.Server,
    readonly address: string,
    readonly port: number,
  ) {}

  /** Listens on a free port of 127.0.0.1 and relays every connection to `target`. */
  static async start(target: Endpoint, faults: TcpFaults = {}): Promise<FaultProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new FaultProxy(server, '127.0.0.1', (server.address() as net.AddressInfo).port);
    server.on('connection', (client) => proxy.relay(client, target));
    proxy.set(faults);
    return proxy;
  }

  get endpoint(): Endpoint {
    return { address: this.address, port: this.port };
  }

  /** Replaces the faults; live connections follow at once (a stall lifted, a new latency for the next chunks). */
  set(faults: TcpFaults): void {
    this.faults = { ...faults };
    if (!faults.stall) for (const c of this.live) for (const kick of c.kicks) kick();
  }

  /** Resets every live connection now (both ends), as a dropped network does; new ones are accepted. */
  cut(): void {
    for (const c of this.live) this.reset(c);
  }

  close(): Promise<void> {
    for (const c of this.live) for (const s of c.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private reset(c: { sockets: net.Socket[] }): void {
    this.resets++;
    for (const s of c.sockets) if (!s.destroyed) s.resetAndDestroy();
  }

  private relay(client: net.Socket, target: Endpoint): void {
    this.connections++;
    if (this.faults.refuse) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(target.port, target.address);
    const conn = { sockets: [client, upstream], kicks: [] as (() => void)[] };
    this.live.add(conn);
    const drop = () => {
      this.live.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    for (const s of conn.sockets) s.on('error', drop).on('close', drop);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let budget = this.faults.resetAfterBytes ?? Infinity;
    const spend = (n: number) => {
      budget -= n;
      if (budget <= 0) queueMicrotask(() => this.reset(conn));
    };
    const latency = () => this.faults.latencyMs ?? 0;
    const held = () => !!this.faults.stall;
    const paceAt = (n: number) => {
      const rate = this.faults.bytesPerSecond;
      if (!rate) return 0;
      this.nextSend = Math.max(this.nextSend, Date.now()) + (n / rate) * 1000;
      return this.nextSend;
    };
    const maxQueued = () => (this.faults.bytesPerSecond || this.faults.stall ? HIGH : Infinity);
    const up = (n: number) => {
      this.bytesUp += n;
      spend(n);
    };
    const down = (n: number) => {
      this.bytesDown += n;
      spend(n);
    };
    conn.kicks.push(
      delayedPipe(client, upstream, latency, { held, maxQueued, onData: up }).kick,
      delayedPipe(upstream, client, latency, { held, maxQueued, paceAt, onData: down }).kick,
    );
  }
}
