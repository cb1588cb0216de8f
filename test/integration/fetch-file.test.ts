import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { fetchFile, Sha256MismatchError, type FetchProgress } from '../../activities/fetch/fetch-file';
import { decodeIndexes, planFetch } from '../../activities/fetch/fetch-plan';
import {
  buildDigestCommand,
  parseDigests,
  sparseHeader,
  type RemoteDigests,
} from '../../activities/fetch/remote-file';
import type { SshSession } from '../../activities/ssh/connection';
import { leadFor, MIN_WINDOW } from '../../activities/fetch/range-stream';
import { startDelayRelay } from '../rig/delay-relay-process';
import { connect, makeSparseFile, MiB, sha256Of, spreadExtents, tcpRelay, testDir } from './fetch-helpers';

/** What the build step reports for an artifact: both digests, computed on the builder in one pass. */
async function builtDigests(ssh: SshSession, remote: string): Promise<RemoteDigests> {
  const digests = parseDigests((await ssh.exec(buildDigestCommand(remote))).stdout.trim());
  if (!digests) throw new Error('no digests');
  return digests;
}

describe('fetchFile', () => {
  const rig = inject('rig');
  const host = rig.sshHosts[2];

  it('copies a dense file byte for byte and checks it against the sha256 computed on the builder', async () => {
    const dir = testDir(rig, 'dense');
    const remote = path.join(dir, 'disk.qcow2');
    writeFileSync(remote, randomBytes(24 * MiB + 12345));
    const ssh = await connect(rig, host);
    try {
      const local = path.join(dir, 'staged', 'disk.qcow2');
      mkdirSync(path.dirname(local));
      const result = await fetchFile(ssh, remote, local, { pieceBytes: 4 * MiB });
      expect(readFileSync(local).equals(readFileSync(remote))).toBe(true);
      expect(result).toMatchObject({
        size: 24 * MiB + 12345,
        dataBytes: 24 * MiB + 12345,
        sha256: sha256Of(remote),
        helper: 'python3',
      });
      expect(existsSync(`${local}.part`)).toBe(false);
    } finally {
      ssh.close();
    }
  });

  it('sends only the data extents of a sparse file and keeps its holes', async () => {
    const dir = testDir(rig, 'sparse');
    const remote = path.join(dir, 'disk.raw');
    const extents = spreadExtents(256 * MiB, 24, MiB + 8192);
    makeSparseFile(remote, 256 * MiB, extents);
    const data = extents.reduce((a, [, n]) => a + n, 0);
    const ssh = await connect(rig, host);
    try {
      const local = path.join(dir, 'local.raw');
      const result = await fetchFile(ssh, remote, local, {
        pieceBytes: 4 * MiB,
        expectedSha256: sha256Of(remote),
      });
      expect(result.dataBytes).toBe(data);
      expect(result.wireBytes).toBe(data);
      expect(result.holesKnown).toBe(true);
      const st = statSync(local);
      expect(st.size).toBe(256 * MiB);
      expect(st.blocks * 512).toBeLessThanOrEqual(data + 24 * 8192);
      expect(readFileSync(local).equals(readFileSync(remote))).toBe(true);
    } finally {
      ssh.close();
    }
  });

  it('verifies a sparse file by sparse-sha256 (data only here), falling back to the whole file when that differs', async () => {
    const dir = testDir(rig, 'sparse-digest');
    const remote = path.join(dir, 'disk.raw');
    const size = 96 * MiB;
    const extents = spreadExtents(size, 12, 512 * 1024);
    makeSparseFile(remote, size, extents);
    const ssh = await connect(rig, host);
    try {
      const built = await builtDigests(ssh, remote);
      // The builder's python and this worker's sparseHeader define the same digest: size, extent map, data.
      const fd = openSync(remote, 'r');
      const independent = createHash('sha256').update(sparseHeader(size, extents));
      for (const [offset, length] of extents) {
        const buf = Buffer.alloc(length);
        readSync(fd, buf, 0, length, offset);
        independent.update(buf);
      }
      closeSync(fd);
      expect(built).toEqual({ sha256: sha256Of(remote), sparseSha256: independent.digest('hex') });

      const fetchAs = (name: string, digests: Partial<RemoteDigests>) =>
        fetchFile(ssh, remote, path.join(dir, name), {
          expectedSha256: digests.sha256,
          expectedSparseSha256: digests.sparseSha256,
          pieceBytes: 2 * MiB,
        });
      const bySparse = await fetchAs('a.raw', built);
      expect(bySparse).toMatchObject({ verifiedBy: 'sparse-sha256', sha256: built.sha256 });
      expect(readFileSync(path.join(dir, 'a.raw')).equals(readFileSync(remote))).toBe(true);
      // Computed by the builder during the fetch: its python gives both digests as well.
      expect(await fetchAs('b.raw', {})).toMatchObject({ verifiedBy: 'sparse-sha256', sha256: built.sha256 });
      // A sparse digest over another extent map (as a different mapping tool would give): the whole file decides.
      const otherMap = createHash('sha256').update('another map').digest('hex');
      expect(await fetchAs('c.raw', { ...built, sparseSha256: otherMap })).toMatchObject({
        verifiedBy: 'sha256',
        sha256: built.sha256,
      });
      expect(sha256Of(path.join(dir, 'c.raw'))).toBe(built.sha256);
      // Only a sha256 (an OpenSSL-only builder): the whole file is hashed here.
      expect(await fetchAs('d.raw', { sha256: built.sha256 })).toMatchObject({ verifiedBy: 'sha256' });
    } finally {
      ssh.close();
    }
  });

  it('stops promptly when cancelled while hashing after the last byte', async () => {
    const dir = testDir(rig, 'cancel-hashing');
    const remote = path.join(dir, 'disk.raw');
    // 16 GiB apparent, 4 MiB of data at the end: with only a sha256 to check against, ~10 s of hashing holes here.
    makeSparseFile(remote, 16 * 1024 * MiB, [[16 * 1024 * MiB - 4 * MiB, 4 * MiB]]);
    const ssh = await connect(rig, host);
    try {
      const abort = new AbortController();
      let lastByte = 0;
      const attempt = fetchFile(ssh, remote, path.join(dir, 'local.raw'), {
        signal: abort.signal,
        expectedSha256: 'f'.repeat(64),
        pieceBytes: MiB,
        onProgress: (p) => {
          if (p.bytesDone < p.dataBytes || lastByte) return;
          lastByte = Date.now();
          setTimeout(() => abort.abort(new Error('cancelled by the test')), 300);
        },
      });
      await expect(attempt).rejects.toThrow('cancelled by the test');
      expect(lastByte).toBeGreaterThan(0);
      expect(Date.now() - lastByte).toBeLessThan(1500);
    } finally {
      ssh.close();
    }
  });

  it('sizes the receive window to the round trip: 2 MiB next door, more across a 50 ms link', async () => {
    const dir = testDir(rig, 'window');
    const remote = path.join(dir, 'disk.raw');
    makeSparseFile(remote, 64 * MiB, spreadExtents(64 * MiB, 8, 2 * MiB));
    const far = await startDelayRelay(host, 25);
    const near = await connect(rig, host);
    const away = await connect(rig, host, far);
    try {
      const nearRtt = (await near.ping())!;
      const farRtt = (await away.ping())!;
      expect(nearRtt).toBeGreaterThan(0);
      // The relay holds each direction 25 ms by a Node timer, which may fire up to a millisecond early (49.7 once).
      expect(farRtt).toBeGreaterThanOrEqual(45);
      const here = await fetchFile(near, remote, path.join(dir, 'near.raw'), { pieceBytes: 4 * MiB });
      const there = await fetchFile(away, remote, path.join(dir, 'far.raw'), { pieceBytes: 4 * MiB });
      expect(here.receiveWindow).toBe(MIN_WINDOW);
      // ~256 MB/s per stream over 1.5 round trips of ~50 ms (45 at the least): ≥ 16 MiB, where ssh2 keeps 2 MiB.
      expect(there.receiveWindow).toBeGreaterThanOrEqual(16 * MiB);
      expect(there.sha256).toBe(here.sha256);
      expect(readFileSync(path.join(dir, 'far.raw')).equals(readFileSync(remote))).toBe(true);
    } finally {
      near.close();
      away.close();
      far.stop();
    }
  });

  it('spreads the data over its streams as they come, and does not wait for a connection it no longer needs', async () => {
    const dir = testDir(rig, 'streams');
    const remote = path.join(dir, 'disk.raw');
    makeSparseFile(remote, 256 * MiB, spreadExtents(256 * MiB, 16, 4 * MiB));
    const ssh = await connect(rig, host);
    try {
      // Four streams over two connections (two execs on each), taking batches from one queue: the file arrives whole.
      const opened: SshSession[] = [];
      const four = await fetchFile(ssh, remote, path.join(dir, 'four.raw'), {
        streams: 4,
        connections: 2,
        openSession: async () => {
          opened.push(await connect(rig, host));
          return opened.at(-1)!;
        },
      });
      expect(opened).toHaveLength(1);
      expect(four.wireBytes).toBe(64 * MiB);
      expect(readFileSync(path.join(dir, 'four.raw')).equals(readFileSync(remote))).toBe(true);

      // A second connection that takes 5 s to open: the first stream has taken all of a small file by then.
      const small = path.join(dir, 'small.raw');
      makeSparseFile(small, 64 * MiB, [[MiB, 4 * MiB]]);
      let release: () => void = () => undefined;
      const late = new Promise<SshSession>((resolve) => {
        const timer = setTimeout(() => void connect(rig, host).then(resolve), 5000);
        release = () => clearTimeout(timer);
      });
      const started = Date.now();
      const result = await fetchFile(ssh, small, path.join(dir, 'small-local.raw'), {
        openSession: () => late,
      });
      release();
      expect(Date.now() - started).toBeLessThan(4000);
      expect(result.sha256).toBe(sha256Of(small));
    } finally {
      ssh.close();
    }
  });

  it('maps holes with filefrag and sends with dd when the builder has no python3', async () => {
    const dir = testDir(rig, 'shell');
    const remote = path.join(dir, 'disk.raw');
    // More data than a stream asks for at once (leadFor): the dd loop gets its ranges while it sends.
    const extents = spreadExtents(64 * MiB, 24, MiB + 4096);
    makeSparseFile(remote, 64 * MiB, extents);
    const data = 24 * (MiB + 4096);
    expect(data).toBeGreaterThan(leadFor(MIN_WINDOW));
    const ssh = await connect(rig, host);
    try {
      const local = path.join(dir, 'local.raw');
      const result = await fetchFile(ssh, remote, local, { helper: 'shell', pieceBytes: MiB });
      expect(result.helper).toBe('shell');
      expect(result.holesKnown).toBe(true);
      expect(result.wireBytes).toBe(data);
      expect(result.sha256).toBe(sha256Of(remote));
      expect(statSync(local).blocks * 512).toBeLessThanOrEqual(data + 24 * 4096);
    } finally {
      ssh.close();
    }
  });

  it.each(['gzip', 'zstd'] as const)(
    'compresses on the wire with %s when asked, and the file arrives the same',
    async (compression) => {
      const dir = testDir(rig, `compress-${compression}`);
      const remote = path.join(dir, 'disk.raw');
      // Some random, mostly text: something to compress, and more than a stream asks for at once (leadFor), so the
      // compressor gets its ranges while it sends.
      makeSparseFile(remote, 32 * MiB, [[0, 2 * MiB]]);
      const fd = openSync(remote, 'r+');
      writeSync(fd, Buffer.from('bootc '.repeat(4 * 1024 * 1024)), 0, 24 * MiB, 8 * MiB);
      closeSync(fd);
      const ssh = await connect(rig, host);
      try {
        const result = await fetchFile(ssh, remote, path.join(dir, 'local.raw'), {
          compression,
          pieceBytes: 2 * MiB,
        });
        expect(result.sha256).toBe(sha256Of(remote));
        expect(result.dataBytes).toBeGreaterThan(leadFor(MIN_WINDOW));
        expect(result.wireBytes).toBeLessThan(result.dataBytes * 0.5);
      } finally {
        ssh.close();
      }
    },
  );

  it('resumes an aborted fetch from its progress without re-sending finished pieces', async () => {
    const dir = testDir(rig, 'resume');
    const remote = path.join(dir, 'disk.raw');
    makeSparseFile(remote, 128 * MiB, spreadExtents(128 * MiB, 12, 4 * MiB));
    const local = path.join(dir, 'local.raw');
    const ssh = await connect(rig, host);
    try {
      const abort = new AbortController();
      let last: FetchProgress | undefined;
      let abortedAt = 0;
      const first = fetchFile(ssh, remote, local, {
        signal: abort.signal,
        pieceBytes: 4 * MiB,
        openSession: () => connect(rig, host),
        onProgress: (p) => {
          last = p;
          if (!abortedAt && decodeIndexes(p.piecesDone).size >= 4) {
            abortedAt = Date.now();
            abort.abort(new Error('worker shutting down'));
          }
        },
      });
      await expect(first).rejects.toThrow('worker shutting down');
      expect(Date.now() - abortedAt).toBeLessThan(2000);
      expect(existsSync(`${local}.part`)).toBe(true);

      const done = decodeIndexes(last!.piecesDone);
      const plan = planFetch(
        { size: 128 * MiB, mtime: '', extents: spreadExtents(128 * MiB, 12, 4 * MiB) },
        4 * MiB,
      );
      const doneData = plan.pieces.filter((p) => done.has(p.index)).reduce((a, p) => a + p.dataBytes, 0);
      expect(doneData).toBeGreaterThan(0);
      expect(doneData).toBeLessThan(plan.dataBytes);

      const second = await fetchFile(ssh, remote, local, {
        resume: last,
        pieceBytes: 4 * MiB,
        openSession: () => connect(rig, host),
      });
      expect(second.wireBytes).toBe(plan.dataBytes - doneData);
      expect(second.piecesSkipped).toBe(done.size);
      expect(second.sha256).toBe(sha256Of(remote));
      expect(readFileSync(local).equals(readFileSync(remote))).toBe(true);
    } finally {
      ssh.close();
    }
  });

  it.each(['sha256', 'sha256 and sparse-sha256'])(
    'detects a file that changed under it (build step gave %s), removes the partial file and fetches it anew on retry',
    async (given) => {
      const dir = testDir(rig, `mismatch-${given.length}`);
      const remote = path.join(dir, 'disk.raw');
      const extents = spreadExtents(128 * MiB, 16, 4 * MiB);
      makeSparseFile(remote, 128 * MiB, extents);
      const local = path.join(dir, 'local.raw');
      const ssh = await connect(rig, host);
      try {
        const built = await builtDigests(ssh, remote); // what the build step reported
        let changed = false;
        let last: FetchProgress | undefined;
        const attempt = fetchFile(ssh, remote, local, {
          expectedSha256: built.sha256,
          expectedSparseSha256: given === 'sha256' ? undefined : built.sparseSha256,
          streams: 1,
          pieceBytes: 4 * MiB,
          onProgress: (p) => {
            last = p;
            if (changed) return;
            changed = true;
            // Far past what the sender has read ahead (window + pipe), so the change is what travels.
            const fd = openSync(remote, 'r+');
            writeSync(fd, randomBytes(4096), 0, 4096, extents[15][0] + 8192);
            closeSync(fd);
          },
        });
        await expect(attempt).rejects.toBeInstanceOf(Sha256MismatchError);
        expect(existsSync(`${local}.part`)).toBe(false);
        expect(existsSync(local)).toBe(false);

        // The retry starts over (its resume state points at a file that is gone) and now matches the builder's hash.
        const retry = await fetchFile(ssh, remote, local, { resume: last, pieceBytes: 4 * MiB });
        expect(retry.piecesSkipped).toBe(0);
        expect(retry.sha256).toBe(sha256Of(remote));
      } finally {
        ssh.close();
      }
    },
  );

  it('fails with a retryable error when the connection drops mid-transfer, and the retry resumes', async () => {
    const dir = testDir(rig, 'drop');
    const remote = path.join(dir, 'disk.raw');
    makeSparseFile(remote, 192 * MiB, spreadExtents(192 * MiB, 12, 4 * MiB));
    const sha = sha256Of(remote);
    const local = path.join(dir, 'local.raw');
    const relay = await tcpRelay(host);
    const flaky = await connect(rig, host, relay);
    let last: FetchProgress | undefined;
    try {
      const attempt = fetchFile(flaky, remote, local, {
        expectedSha256: sha,
        pieceBytes: 4 * MiB,
        openSession: () => connect(rig, host, relay),
        onProgress: (p) => {
          last = p;
          if (decodeIndexes(p.piecesDone).size === 3) relay.cut();
        },
      });
      await expect(attempt).rejects.toThrow(/connection lost|closed|ECONNRESET|Not connected/i);
    } finally {
      flaky.close();
      await relay.close();
    }
    const done = decodeIndexes(last!.piecesDone).size;
    expect(done).toBeGreaterThanOrEqual(3);

    const ssh = await connect(rig, host);
    try {
      const retry = await fetchFile(ssh, remote, local, {
        expectedSha256: sha,
        resume: last,
        pieceBytes: 4 * MiB,
      });
      expect(retry.piecesSkipped).toBe(done);
      expect(retry.wireBytes).toBe(retry.dataBytes - done * 4 * MiB);
      expect(sha256Of(local)).toBe(sha);
    } finally {
      ssh.close();
    }
  });

  it('says which file is missing on the builder', async () => {
    const dir = testDir(rig, 'missing');
    const ssh = await connect(rig, host);
    try {
      await expect(fetchFile(ssh, path.join(dir, 'nope.raw'), path.join(dir, 'local.raw'))).rejects.toThrow(
        /cannot read .*nope\.raw/,
      );
    } finally {
      ssh.close();
    }
  });
});
