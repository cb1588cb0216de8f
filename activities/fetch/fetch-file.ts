// Copies one big file (a bootc disk image) from a builder to this worker: only the data extents travel, holes stay
// holes, the data is streamed over one or more SSH connections (each stream taking batches from one queue as it
// needs them), the result is sha256-checked against the builder's hash, and a fetch cut short resumes from its last
// progress without re-sending finished pieces.
// Written to `<localPath>.part` and renamed once verified, so a file at localPath is always a complete one.
import { closeSync, ftruncateSync, openSync, renameSync, rmSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { SshSession } from '../ssh/connection';
import { batchesOf, decodeIndexes, encodeIndexes, planFetch, type Batch, type FetchPlan } from './fetch-plan';
import {
  parseDigests,
  sendCommand,
  sessionCommand,
  sha256Command,
  sparseHeader,
  type Compression,
  type RemoteDigests,
  type RemoteHelper,
} from './remote-file';
import { ExtentWriter } from './extent-writer';
import {
  openFileSession,
  receiveStream,
  topUpWindow,
  windowFor,
  type BatchQueue,
  type StreamResult,
} from './range-stream';
import { SparseSha256 } from './sparse-sha256';

/** Small enough for heartbeat details; enough to resume. */
export interface FetchProgress {
  /** Remote file version + cut; a resume with another fingerprint starts over. */
  fingerprint: string;
  size: number;
  dataBytes: number;
  /** Data bytes on disk, finished pieces and the parts of pieces in flight. */
  bytesDone: number;
  pieces: number;
  /** Finished pieces as index runs, "0-17,19". */
  piecesDone: string;
}

export interface FetchFileOptions {
  signal?: AbortSignal;
  /** The sha256 the builder already computed (bootc-image-builder's step); else it is computed there in parallel. */
  expectedSha256?: string;
  /**
   * The builder's sparse-sha256 of the same file, computed in the same pass as expectedSha256: the fetch is then
   * verified by hashing the data only. Ignored without expectedSha256.
   */
  expectedSparseSha256?: string;
  /** Progress from an earlier attempt (heartbeat details). */
  resume?: FetchProgress;
  onProgress?: (progress: FetchProgress) => void;
  /** Minimum time between two progress reports other than piece completions. Default 1000 ms. */
  progressIntervalMs?: number;
  /** Parallel streams (exec channels). Default 2. */
  streams?: number;
  /** Opens another connection to the same builder; streams are spread over `connections` sessions. */
  openSession?: () => Promise<SshSession>;
  /** SSH connections to use, including `ssh` (at most one per stream). Default: 2 with openSession, else 1. */
  connections?: number;
  /** Compress on the builder, decompress here. Pays off only on slow links; off by default. */
  compression?: Compression;
  /** 'auto' uses python3 on the builder when present, else coreutils + filefrag. */
  helper?: RemoteHelper | 'auto';
  /** Data bytes per piece (the resume and parallelism unit). Default 64 MiB. */
  pieceBytes?: number;
}

export interface FetchResult {
  path: string;
  size: number;
  dataBytes: number;
  /** The whole file's sha256: computed here, or the builder's when the file was verified by sparse-sha256. */
  sha256: string;
  /**
   * What was hashed here and matched the builder's: `sha256` (the whole apparent file) or `sparse-sha256` (size,
   * extent map and data; the holes are holes in the local file, so the content equals the builder's, whose sha256
   * came from the same pass over it).
   */
  verifiedBy: 'sha256' | 'sparse-sha256';
  /** Bytes written by this attempt (pieces skipped on resume are not counted). */
  bytesFetched: number;
  /** Bytes that crossed SSH channels in this attempt. */
  wireBytes: number;
  /** Receive window each stream kept open, sized to the measured round trip (windowFor). */
  receiveWindow: number;
  piecesSkipped: number;
  holesKnown: boolean;
  helper: RemoteHelper;
}

const DEFAULT_STREAMS = 2;
/**
 * What the describe session sends right after the header, before its first ranges are asked for: about what a stream
 * moves in the round trip those ranges would take over 50 ms (a few hundred MB/s), so the first request costs no wait.
 */
const HEAD_START = 16 * 1024 * 1024;

export class Sha256MismatchError extends Error {
  constructor(
    readonly remotePath: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `${remotePath}: sha256 of the fetched file is ${actual}, the builder's is ${expected}; the partial file was removed, a retry fetches it again`,
    );
    this.name = 'Sha256MismatchError';
  }
}

export async function fetchFile(
  ssh: SshSession,
  remotePath: string,
  localPath: string,
  opts: FetchFileOptions = {},
): Promise<FetchResult> {
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(opts.signal?.reason);
  if (opts.signal?.aborted) throw opts.signal.reason;
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const signal = abort.signal;
  const extra: Promise<SshSession>[] = [];
  let hasher: SparseSha256 | undefined;
  let fd: number | undefined;
  let session: Awaited<ReturnType<typeof openFileSession>> | undefined;
  try {
    const wanted = opts.helper ?? 'auto';
    // Everything that can start before the file is described starts now: each exec costs a round trip and a login
    // shell on the builder, and the builder's sha256 runs beside the transfer.
    const remoteDigests: Promise<RemoteDigests> = opts.expectedSha256
      ? Promise.resolve({
          sha256: opts.expectedSha256.toLowerCase(),
          sparseSha256: opts.expectedSparseSha256?.toLowerCase(),
        })
      : ssh.exec(sha256Command(remotePath, wanted), { signal }).then((r) => {
          const digests = parseDigests(r.stdout.trim());
          if (!digests)
            throw new Error(`${ssh.label}: no sha256 for ${remotePath}: ${r.stdout.slice(0, 200)}`);
          return digests;
        });
    remoteDigests.catch(() => undefined); // awaited below; a failure earlier must not go unhandled
    const connections = Math.max(
      1,
      Math.min(opts.connections ?? (opts.openSession ? 2 : 1), opts.streams ?? DEFAULT_STREAMS),
    );
    if (connections > 1 && !opts.openSession) throw new Error('fetchFile: connections > 1 needs openSession');
    for (let i = 1; i < connections; i++) extra.push(opts.openSession!());
    for (const p of extra) p.catch(() => undefined);

    // One round trip, timed while nothing else is queued on the connection: it sizes the streams' windows.
    const roundTrip = ssh.ping().catch(() => undefined);
    const compression = opts.compression ?? 'none';
    // A fresh fetch lets the describe session start sending right after the header (its first stream's head start),
    // in a window opened as soon as the round trip is known. A resumed one may skip the first pieces: it asks.
    const headStart = !opts.resume && compression === 'none' && (opts.streams ?? DEFAULT_STREAMS) > 0 ? HEAD_START : 0;
    session = await openFileSession(
      ssh,
      sessionCommand(remotePath, wanted, headStart),
      remotePath,
      signal,
      (channel) => void roundTrip.then((ms) => topUpWindow(channel, windowFor(ms))),
    );
    const { info } = session;
    const plan = planFetch(info, opts.pieceBytes);

    const part = `${localPath}.part`;
    const { done, reuse } = resumable(opts.resume, plan, part);
    if (info.holesKnown) ensureSpace(localPath, plan, reuse ? done : new Set());
    fd = openSync(part, reuse ? 'r+' : 'w');
    ftruncateSync(fd, plan.size);

    // sparse-sha256 when the builder has one (or will: its python3 helper computes both digests), else the whole file.
    const sparse = opts.expectedSha256 ? !!opts.expectedSparseSha256 : info.helper === 'python3';
    hasher = new SparseSha256(part, sparse ? sparseHeader(info.size, info.extents) : undefined);
    // Hashing can outlast the transfer by seconds (a whole 40 GB image): a cancel stops it too.
    const stopHashing = () => void hasher?.abort();
    signal.addEventListener('abort', stopHashing, { once: true });
    const progress = new Progress(plan, done, hasher, opts);

    const piecesSkipped = plan.pieces.filter((p) => p.dataBytes > 0 && done.has(p.index)).length;
    const streams = Math.min(opts.streams ?? DEFAULT_STREAMS, progress.queued);
    // The session's own output is not compressed: with compression, every stream is a separate exec.
    const sessionStreams = compression === 'none' && streams > 0;
    if (!sessionStreams) session.channel.end();
    const command = sendCommand(remotePath, info.helper, compression);
    const roundTripMs = await roundTrip;
    const window = windowFor(roundTripMs);
    // Each stream starts as soon as its connection is there (the first one at once, on the describe session) and
    // takes batches from the shared queue as it needs them, so a late or slow stream only takes less of the work.
    // Compressed streams ask for all their work at once (receiveStream): the batches are dealt out beforehand.
    const shared = compression === 'none';
    // What the sender sends unasked (python3 only) is the start of the first batches: stream 0 takes them first.
    const headStartBytes = sessionStreams && info.helper === 'python3' ? Math.min(headStart, plan.dataBytes) : 0;
    const headStartBatches = taken(progress, headStartBytes);
    const queues = shared ? Array.from({ length: streams }, () => progress) : dealt(progress, streams);
    const stream = async (s: number): Promise<StreamResult> => {
      const own = s === 0 && sessionStreams;
      let via = ssh;
      if (s % connections > 0) {
        // A connection still opening when the other streams have taken all the work is not waited for; one that
        // fails (a MaxStartups limit, say) only costs parallelism: its streams run on the first.
        const other = extra[(s % connections) - 1].catch(() => ssh);
        via = (await Promise.race([other, shared ? progress.whenDrained : other])) ?? ssh;
      }
      signal.throwIfAborted();
      if (!own && shared && progress.drained) return { wireBytes: 0 };
      const channel = own ? session!.channel : await openStream(via, command);
      const writer = new ExtentWriter(fd!, progress, !info.holesKnown);
      return await receiveStream(channel, via.label, writer, queues[s], {
        compression,
        signal,
        leftover: own ? session!.leftover : undefined,
        window,
        roundTripMs,
        headStart: own ? { batches: headStartBatches, bytes: headStartBytes } : undefined,
      });
    };
    const results = await Promise.all(
      Array.from({ length: streams }, (_, s) =>
        stream(s).catch((err) => {
          abort.abort(err);
          throw err;
        }),
      ),
    );
    const [remote, local] = await Promise.all([remoteDigests, hasher.digest()]);
    closeSync(fd);
    fd = undefined;
    let verifiedBy: FetchResult['verifiedBy'] = 'sha256';
    if (hasher.sparseHeader && remote.sparseSha256 === local) verifiedBy = 'sparse-sha256';
    else {
      // Without a sparse digest from the builder, or with one over another extent map (the shell helper's filefrag
      // map, a file rewritten since the build): the whole file decides.
      const whole = hasher.sparseHeader ? await wholeFileSha256(part, plan, signal) : local;
      if (whole !== remote.sha256) {
        rmSync(part, { force: true });
        throw new Sha256MismatchError(remotePath, remote.sha256, whole);
      }
    }
    renameSync(part, localPath);
    progress.report(true);
    return {
      path: localPath,
      size: plan.size,
      dataBytes: plan.dataBytes,
      sha256: remote.sha256,
      verifiedBy,
      bytesFetched: progress.bytesFetched,
      wireBytes: results.reduce((sum, r) => sum + r.wireBytes, 0),
      receiveWindow: window,
      piecesSkipped,
      holesKnown: info.holesKnown,
      helper: info.helper,
    };
  } catch (err) {
    abort.abort(err);
    session?.channel.close();
    await hasher?.abort();
    throw opts.signal?.aborted ? opts.signal.reason : err;
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
    if (fd !== undefined) closeSync(fd);
    for (const p of extra)
      void p.then(
        (s) => s.close(),
        () => undefined,
      );
  }
}

/** A sender's channel; ssh2 says only "Unable to exec" when the connection closed before it could start one. */
async function openStream(via: SshSession, command: string) {
  try {
    return await via.channel(command);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`${via.label}: cannot start a fetch stream (the connection closed or refused the exec): ${why}`);
  }
}

/** Batches from the front of the queue until they hold `bytes` of data. */
function taken(queue: BatchQueue, bytes: number): Batch[] {
  const batches: Batch[] = [];
  for (let held = 0; held < bytes;) {
    const batch = queue.next();
    if (!batch) break;
    batches.push(batch);
    held += batch.bytes;
  }
  return batches;
}

/** Every batch left in `queue`, dealt round-robin to `streams` queues of their own. */
function dealt(queue: BatchQueue, streams: number): BatchQueue[] {
  const lists: Batch[][] = Array.from({ length: streams }, () => []);
  for (let i = 0, batch = queue.next(); batch; i++, batch = queue.next()) lists[i % streams].push(batch);
  return lists.map((list) => {
    let at = 0;
    return { next: () => list[at++] };
  });
}

/** The whole apparent file's sha256, holes hashed as zeros (tens of seconds for a 40 GB image): stops on abort. */
async function wholeFileSha256(path: string, plan: FetchPlan, signal: AbortSignal): Promise<string> {
  signal.throwIfAborted();
  const hasher = new SparseSha256(path);
  const onAbort = () => void hasher.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (const p of plan.pieces) hasher.region(p.end, p.extents);
    const digest = await hasher.digest();
    signal.throwIfAborted();
    return digest;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Staging disk too small for the data still to come (errno-style code ENOSPC, which callers already classify). */
export class StagingSpaceError extends Error {
  readonly code = 'ENOSPC';
  constructor(
    readonly dir: string,
    readonly needBytes: number,
    readonly freeBytes: number,
  ) {
    super(`${dir}: ${needBytes} bytes of data still to fetch, ${freeBytes} bytes free`);
    this.name = 'StagingSpaceError';
  }
}

/**
 * Fails before the transfer when the local filesystem cannot hold the data still to fetch (holes take no space), rather
 * than after gigabytes. Concurrent fetches to the same disk can still run out midway: that ENOSPC surfaces as well.
 */
function ensureSpace(localPath: string, plan: FetchPlan, done: Set<number>): void {
  const dir = path.dirname(localPath);
  const need = plan.pieces.filter((p) => !done.has(p.index)).reduce((sum, p) => sum + p.dataBytes, 0);
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  if (need > free) throw new StagingSpaceError(dir, need, free);
}

/** Pieces an earlier attempt finished, if its file is still there and the remote file is the same version. */
function resumable(
  resume: FetchProgress | undefined,
  plan: FetchPlan,
  part: string,
): { done: Set<number>; reuse: boolean } {
  const none = { done: new Set<number>(), reuse: false };
  if (!resume || resume.fingerprint !== plan.fingerprint) return none;
  try {
    if (statSync(part).size !== plan.size) return none;
  } catch {
    return none;
  }
  const done = new Set([...decodeIndexes(resume.piecesDone)].filter((i) => i < plan.pieces.length));
  return { done, reuse: true };
}

/**
 * The fetch's batches: the queue streams take work from (file order), the pieces they complete (reported, and kept
 * for a resume), and the hash, fed each batch once it and every one before it are written.
 */
class Progress {
  bytesFetched = 0;
  private bytesDone: number;
  private lastReport = 0;
  /** Every batch of the file in order, those of done pieces included (they are hashed too). */
  private readonly batches: Batch[] = [];
  private readonly written = new Set<Batch>();
  private readonly batchesLeft = new Map<number, number>();
  private readonly queue: Batch[] = [];
  private nextToHash = 0;
  private nextToSend = 0;

  constructor(
    private readonly plan: FetchPlan,
    private readonly done: Set<number>,
    private readonly hasher: SparseSha256,
    private readonly opts: FetchFileOptions,
  ) {
    this.bytesDone = plan.pieces.filter((p) => done.has(p.index)).reduce((sum, p) => sum + p.dataBytes, 0);
    for (const piece of plan.pieces) {
      const batches = batchesOf(piece);
      this.batches.push(...batches);
      if (piece.dataBytes === 0) done.add(piece.index);
      if (done.has(piece.index)) for (const b of batches) this.written.add(b);
      else {
        this.queue.push(...batches);
        this.batchesLeft.set(piece.index, batches.length);
      }
    }
    this.feedHasher();
  }

  /** Batches not yet taken by a stream. */
  get queued(): number {
    return this.queue.length - this.nextToSend;
  }

  get drained(): boolean {
    return this.queued === 0;
  }

  private onDrained: () => void = () => undefined;
  /** Resolves once every batch has been taken by a stream. */
  readonly whenDrained = new Promise<undefined>((resolve) => (this.onDrained = () => resolve(undefined)));

  next(): Batch | undefined {
    const batch = this.queue[this.nextToSend];
    if (batch) this.nextToSend++;
    if (this.drained) this.onDrained();
    return batch;
  }

  onData(bytes: number): void {
    this.bytesFetched += bytes;
    this.bytesDone += bytes;
    if (Date.now() - this.lastReport >= (this.opts.progressIntervalMs ?? 1000)) this.report(false);
  }

  onBatch(batch: Batch): void {
    this.written.add(batch);
    this.feedHasher();
    const left = this.batchesLeft.get(batch.piece.index)! - 1;
    this.batchesLeft.set(batch.piece.index, left);
    if (left > 0) return;
    this.done.add(batch.piece.index);
    this.report(true);
  }

  private feedHasher(): void {
    while (this.nextToHash < this.batches.length && this.written.has(this.batches[this.nextToHash])) {
      const b = this.batches[this.nextToHash++];
      this.hasher.region(b.end, b.extents);
    }
  }

  report(force: boolean): void {
    if (
      !this.opts.onProgress ||
      (!force && Date.now() - this.lastReport < (this.opts.progressIntervalMs ?? 1000))
    )
      return;
    this.lastReport = Date.now();
    this.opts.onProgress({
      fingerprint: this.plan.fingerprint,
      size: this.plan.size,
      dataBytes: this.plan.dataBytes,
      bytesDone: this.bytesDone,
      pieces: this.plan.pieces.length,
      piecesDone: encodeIndexes(this.done),
    });
  }
}
