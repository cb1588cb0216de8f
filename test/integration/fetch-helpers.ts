// Shared set-up for the fetch tests: sparse files on "the builder" (the rig's sshd hosts share this filesystem),
// their sha256 over the apparent size, and a TCP relay between client and sshd whose connections a test can cut
// (a dropped network, one of the faults in docs/real-and-stand-in.md#faults).
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { SshSession } from '../../activities/ssh/connection';
import type { SshHost } from '../../scripts/servers/sshd';

export interface Rig {
  sshHosts: SshHost[];
  privateKeyPath: string;
  dir: string;
}

export const MiB = 1024 * 1024;

export function testDir(rig: Rig, name: string): string {
  const dir = path.join(rig.dir, 'fetch', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A file of `size` apparent bytes with random data in `extents` ([offset, length], 4 KiB aligned) and holes elsewhere. */
export function makeSparseFile(file: string, size: number, extents: [number, number][]): void {
  const fd = openSync(file, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [offset, length] of extents) writeSync(fd, randomBytes(length), 0, length, offset);
  } finally {
    closeSync(fd);
  }
}

/** `count` extents of `length` bytes spread evenly over `size`, the first one a few pages in. */
export function spreadExtents(size: number, count: number, length: number): [number, number][] {
  const stride = Math.floor(size / count / 4096) * 4096;
  return Array.from(
    { length: count },
    (_, i) => [i * stride + 4096 * ((i % 3) + 1), length] as [number, number],
  );
}

/** sha256 over the apparent size, holes read as zeros. */
export function sha256Of(file: string): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * MiB);
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export const connect = (rig: Rig, host: SshHost, via?: { address: string; port: number }) =>
  SshSession.connect({ ...host, ...via }, { privateKeyPath: rig.privateKeyPath });

/**
 * Relays TCP to `target`; cut() drops every relayed connection at once, as a network failure would. With
 * `bytesPerSecond`, what the target sends is paced to that rate across all connections (a slower link), and
 * `bytesDown` counts it.
 */
export async function tcpRelay(
  target: { address: string; port: number },
  opts: { bytesPerSecond?: number } = {},
): Promise<{
  address: string;
  port: number;
  /** Bytes relayed from the target to clients so far. */
  readonly bytesDown: number;
  cut(): void;
  /** Holds (true) or lets through again (false) everything the target sends: a link that stalls. */
  stall(on: boolean): void;
  close(): Promise<void>;
}> {
  const sockets = new Set<net.Socket>();
  let bytesDown = 0;
  // A shared budget: every connection's downstream bytes draw from it.
  let budget = 0;
  let refilled = Date.now();
  const delayFor = (n: number): number => {
    if (!opts.bytesPerSecond) return 0;
    const now = Date.now();
    budget = Math.min(budget + ((now - refilled) / 1000) * opts.bytesPerSecond, opts.bytesPerSecond / 10);
    refilled = now;
    budget -= n;
    return budget < 0 ? Math.ceil((-budget / opts.bytesPerSecond) * 1000) : 0;
  };
  const stalls = new Set<{ hold(): void; release(): void }>();
  let stalled = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.address);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    let waits = 0;
    const hold = () => {
      if (waits++ === 0) upstream.pause();
    };
    const release = () => {
      if (--waits === 0) upstream.resume();
    };
    stalls.add({ hold, release });
    if (stalled) hold();
    upstream.on('data', (d: Buffer) => {
      bytesDown += d.length;
      if (!client.write(d)) {
        hold();
        client.once('drain', release);
      }
      const delay = delayFor(d.length);
      if (delay > 0) {
        hold();
        setTimeout(release, delay);
      }
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: '127.0.0.1',
    port,
    get bytesDown() {
      return bytesDown;
    },
    cut: () => {
      for (const s of sockets) s.resetAndDestroy();
    },
    stall: (on: boolean) => {
      if (on === stalled) return;
      stalled = on;
      for (const s of stalls) (on ? s.hold : s.release)();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
