// One stream of a fetch: an exec channel runs the remote sender, which writes the requested extents back to back as
// their "offset length" lines arrive on its stdin; the stream asks for more batches from the fetch's shared queue as
// it runs low, and the ExtentWriter cuts the byte stream at the same boundaries and writes each part at its offset.
// Plain exec streaming costs about half the client CPU of ssh2's SFTP reads (see docs/fetch.md).
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ClientChannel } from 'ssh2';
import type { ExecChannel, SshSession } from '../ssh/connection';
import type { ExtentWriter } from './extent-writer';
import { BATCH_BYTES, type Batch } from './fetch-plan';
import { headerEnd, parseHeader, type Compression, type RemoteFileInfo } from './remote-file';

export interface StreamResult {
  /** Bytes that crossed the SSH channel (compressed when compression is on). */
  wireBytes: number;
}

/**
 * Receive window per stream. ssh2 keeps 2 MiB, which caps a channel at 2 MiB per round trip (40 MB/s at 50 ms).
 * More is not free: OpenSSH's sshd reads up to the window from the sender's pipe into its own buffer, and on a fast
 * link to a busy receiver a 16 MiB window cost it twice the CPU (loopback, 1 GiB: 4 → 7.5 CPU s, 400 → 240 MB/s).
 * So the window is sized to the path: the bytes a stream moves at STREAM_RATE during 1.5 round trips, between
 * MIN_WINDOW and MAX_WINDOW (2 MiB up to ~9 ms, 64 MiB from ~175 ms). What sshd buffers on a long path is bounded by
 * the stream's lead too (leadFor), which follows its rate: over 150 ms, 64 MiB moved 213–215 MB/s against 159–173
 * with 32 MiB.
 */
export const MIN_WINDOW = 2 * 1024 * 1024;
export const MAX_WINDOW = 64 * 1024 * 1024;
/** Bytes per second one stream should be able to reach: more than this process decrypts and writes on one core. */
const STREAM_RATE = 256 * 1024 * 1024;

export function windowFor(roundTripMs: number | undefined): number {
  if (roundTripMs === undefined || !Number.isFinite(roundTripMs)) return MIN_WINDOW;
  const bdp = (STREAM_RATE * 1.5 * roundTripMs) / 1000;
  return Math.min(MAX_WINDOW, Math.max(MIN_WINDOW, Math.ceil(bdp / 65536) * 65536));
}

/**
 * Bytes a stream keeps asked for and not yet received. A byte asked for arrives about a round trip later, so a stream
 * moving R bytes a second needs R × RTT asked for, and the window caps what can be in flight. More is not free: sshd
 * reads ahead from the sender's pipe as far as the window lets it, and over 50 ms keeping the window plus two batches
 * asked for (16–19 MiB in sshd's buffer) cost sshd and the sender 0.88–1.57 CPU s per GiB against 0.65–1.08 with
 * 12 MiB, at the same speed (4 runs each, interleaved, on a shared machine). So the lead follows the stream's rate
 * once it is known: 1.25 × R × RTT plus a batch (room to speed up by a batch per round trip), at least two batches,
 * at most the window plus two batches (the start). What is asked for is also what a stream still has to do once the
 * queue runs dry: a smaller lead lets the streams end together.
 */
export function leadFor(window: number, bytesPerSecond?: number, roundTripMs?: number): number {
  const most = window + 2 * BATCH_BYTES;
  if (bytesPerSecond === undefined || roundTripMs === undefined || !Number.isFinite(roundTripMs)) return most;
  const needed = Math.ceil((1.25 * bytesPerSecond * roundTripMs) / 1000) + BATCH_BYTES;
  return Math.min(most, Math.max(2 * BATCH_BYTES, needed));
}

/**
 * The receive rate a stream's lead follows: measured over intervals of at least 50 ms and two round trips from its
 * first byte on; it rises at once and falls by a fifth per interval, so a short stall does not starve the sender.
 */
class StreamRate {
  private readonly interval: number;
  private mark = 0;
  private counted = 0;
  bytesPerSecond?: number;

  constructor(roundTripMs: number | undefined) {
    this.interval = Math.max(50, 2 * (roundTripMs ?? 0));
  }

  /** Counts `bytes` received; true when the estimate changed. */
  received(bytes: number): boolean {
    const now = performance.now();
    if (this.mark === 0) this.mark = now;
    this.counted += bytes;
    if (now - this.mark < this.interval) return false;
    const rate = (this.counted * 1000) / (now - this.mark);
    this.bytesPerSecond = Math.max(rate, (this.bytesPerSecond ?? 0) * 0.8);
    this.mark = now;
    this.counted = 0;
    return true;
  }
}

/** Where streams take their next batch: shared by the streams of one fetch, in file order. */
export interface BatchQueue {
  next(): Batch | undefined;
}

interface ChannelInternals {
  incoming?: { window: number };
  outgoing?: { id: number; state: string };
  _client?: {
    _protocol?: { channelWindowAdjust(id: number, amount: number): void };
    setNoDelay?(noDelay: boolean): void;
  };
}

/**
 * Turns Nagle's algorithm off on the stream's connection (ssh2 leaves it on). A stream writes small packets while it
 * receives (its next ranges, window adjusts), and Nagle holds each small write until the one before is acknowledged:
 * the sender then waited for its ranges or its window, one stream on loopback moved a 2 GiB sparse disk in 5–14 s
 * instead of 3–4.4 s. Through ssh2's public Client.setNoDelay, reached from the channel (an internal link, as for
 * topUpWindow).
 */
export function noDelay(channel: ClientChannel): void {
  (channel as unknown as ChannelInternals)._client?.setNoDelay?.(true);
}

/**
 * Tops the channel's receive window up to `target` once half of it is used, through ssh2's own window-adjust call
 * (ssh2 itself would only adjust below 1 MiB, back to 2 MiB). test/integration/ssh-session.test.ts guards the
 * internals this needs.
 */
export function topUpWindow(channel: ClientChannel, target: number): void {
  const c = channel as unknown as ChannelInternals;
  const protocol = c._client?._protocol;
  // After our EOF (the ranges are sent: state 'eof') the peer still sends and still needs window; like ssh2's own
  // windowAdjust, only a closed channel takes none.
  if (
    !c.incoming ||
    !c.outgoing ||
    !protocol ||
    c.outgoing.state === 'closed' ||
    c.outgoing.state === 'closing'
  )
    return;
  const amount = target - c.incoming.window;
  if (amount < target / 2) return;
  c.incoming.window += amount;
  protocol.channelWindowAdjust(c.outgoing.id, amount);
}

/**
 * Opens the describe-then-send session (see sessionCommand) and reads the file's description. The channel is left
 * paused, ready to be handed to receiveStream; `leftover` is anything that came after the header in its last packet
 * (the start of a head start; nothing when the sender waits for its ranges).
 */
export async function openFileSession(
  ssh: SshSession,
  command: string,
  remotePath: string,
  signal: AbortSignal,
  /** Called once the channel is open, before the header: a head start needs its window before it comes. */
  onChannel?: (channel: ExecChannel) => void,
): Promise<{ channel: ExecChannel; info: RemoteFileInfo; leftover: Buffer }> {
  signal.throwIfAborted();
  const channel = await ssh.channel(command);
  onChannel?.(channel);
  return await new Promise((resolve, reject) => {
    let text = '';
    let stderr = '';
    const done = () => {
      signal.removeEventListener('abort', onAbort);
      channel.removeListener('data', onData);
      channel.removeListener('close', onClose);
      channel.stderr.removeListener('data', onStderr);
    };
    const onAbort = () => {
      done();
      channel.close();
      reject(signal.reason);
    };
    const onStderr = (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096));
    const onClose = () => {
      done();
      reject(
        new Error(
          `${ssh.label}: cannot read ${remotePath}: ${stderr.trim().slice(-500) || 'the session closed'}`,
        ),
      );
    };
    const onData = (d: Buffer) => {
      // latin1 keeps one char per byte, so the header's length in chars is its length in bytes.
      text += d.toString('latin1');
      const end = headerEnd(text);
      if (end < 0) return;
      done();
      channel.pause();
      try {
        resolve({
          channel,
          info: parseHeader(text.slice(0, end)),
          leftover: Buffer.from(text.slice(end), 'latin1'),
        });
      } catch (err) {
        channel.close();
        reject(err instanceof Error ? new Error(`${ssh.label}: ${remotePath}: ${err.message}`) : err);
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    channel.on('data', onData);
    channel.on('close', onClose);
    channel.stderr.on('data', onStderr);
  });
}

/**
 * Asks a sender channel for batches from `queue` as the stream runs low (see leadFor), writes what comes back, and
 * ends the sender's input once the queue is empty. Rejects on any shortfall: a dropped connection, a sender that
 * failed or stopped early (the file shrank), or an abort (which kills the sender).
 */
export async function receiveStream(
  channel: ExecChannel,
  label: string,
  writer: ExtentWriter,
  queue: BatchQueue,
  opts: {
    compression: Compression;
    signal: AbortSignal;
    /** What came after the header on a describe session's channel (the start of its head start, if any). */
    leftover?: Buffer;
    /** Receive window to keep open (windowFor the path's round trip). */
    window?: number;
    /** The path's round trip (SshSession.ping), for the lead (leadFor). */
    roundTripMs?: number;
    /**
     * The describe session's head start (sessionCommand): the batches whose first `bytes` the sender sends without
     * being asked, taken from the queue before any other stream took one.
     */
    headStart?: { batches: Batch[]; bytes: number };
  },
): Promise<StreamResult> {
  const { compression, signal, leftover, window = MIN_WINDOW, roundTripMs, headStart } = opts;
  let wireBytes = 0;
  let stderr = '';
  let decompressor: { output: Readable; stop(): void } | undefined;
  // A compressor holds its output back until more input comes: a compressed stream that waited to run low before
  // asking for more could wait forever, so it asks for all its batches at once (the caller deals them out).
  let lead = compression === 'none' ? leadFor(window) : Infinity;
  const rate = new StreamRate(roundTripMs);
  /** The queue is empty: everything is asked for. */
  let asked = false;
  /** The sender's input is closed. */
  let ended = false;

  return await new Promise<StreamResult>((resolve, reject) => {
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) return resolve({ wireBytes });
      // Killing the sender and closing the channel is what makes an abort prompt; the other end may be gone already.
      try {
        channel.signal('KILL');
        channel.close();
      } catch {
        // nothing left to close
      }
      decompressor?.stop();
      reject(err);
    };
    const onAbort = () => settle(signal.reason);
    if (signal.aborted) return settle(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });

    // Bytes at the start of the next ranges that the sender sends unasked (its head start).
    let unasked = headStart?.bytes ?? 0;
    const rangesOf = (batch: Batch) => {
      let lines = '';
      for (const [offset, length] of batch.extents) {
        const skip = Math.min(unasked, length);
        unasked -= skip;
        if (skip < length) lines += `${offset + skip} ${length - skip}\n`;
      }
      return lines;
    };
    /** Tops up the sender's requests to `lead` bytes; its input ends when there is nothing left to ask for. */
    const ask = (first: Batch[] = []) => {
      let lines = '';
      for (const batch of first) {
        writer.add(batch);
        lines += rangesOf(batch);
      }
      if (unasked > 0) throw new Error(`the head start is ${unasked} bytes longer than its batches`);
      while (!asked && writer.pending < lead) {
        const batch = queue.next();
        if (!batch) {
          asked = true;
          break;
        }
        writer.add(batch);
        lines += rangesOf(batch);
      }
      if (lines) channel.write(lines);
      if (asked && !ended) {
        ended = true;
        channel.end();
      }
    };

    // The channel closes after its last data; with compression, the decompressed output also has to end.
    let pending = compression === 'none' ? 1 : 2;
    const finish = () => {
      if (--pending > 0) return;
      const { code, signal: exitSignal } = channel.exitStatus;
      if (code === null && !exitSignal) {
        return settle(
          new Error(`${label}: connection lost while fetching (${wireBytes} bytes received on this stream)`),
        );
      }
      if (code !== 0) {
        return settle(
          new Error(`${label}: remote sender exited ${code ?? exitSignal}: ${stderr.trim().slice(-500)}`),
        );
      }
      if (!asked || !writer.complete)
        return settle(new Error(`${label}: the remote file ended early (did it change during the fetch?)`));
      settle();
    };
    const consume = (chunk: Buffer) => {
      if (settled) return;
      try {
        writer.write(chunk);
        ask();
      } catch (err) {
        settle(err);
      }
    };
    channel.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    channel.on('error', settle);
    channel.on('close', finish);
    if (compression === 'none') {
      channel.on('data', (d: Buffer) => {
        wireBytes += d.length;
        if (rate.received(d.length)) lead = leadFor(window, rate.bytesPerSecond, roundTripMs);
        consume(d);
        topUpWindow(channel, window);
      });
    } else {
      channel.on('data', (d: Buffer) => (wireBytes += d.length));
      decompressor = decompress(compression, channel, settle);
      decompressor.output.on('data', consume);
      decompressor.output.on('end', finish);
    }
    noDelay(channel);
    if (compression === 'none') topUpWindow(channel, window);
    try {
      ask(headStart?.batches);
    } catch (err) {
      return settle(err);
    }
    // With a head start, the header's last packet usually carries the first data too.
    if (leftover?.length) {
      wireBytes += leftover.length;
      consume(leftover);
    }
    channel.resume();
  });
}

function decompress(compression: 'gzip' | 'zstd', input: ClientChannel, fail: (err: unknown) => void) {
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    gunzip.on('error', fail);
    input.pipe(gunzip);
    return { output: gunzip as Readable, stop: () => gunzip.destroy() };
  }
  const zstd = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'ignore'] });
  zstd.on('error', (err) => fail(new Error(`zstd on the worker: ${err.message}`)));
  zstd.stdin.on('error', fail);
  input.pipe(zstd.stdin);
  return { output: zstd.stdout as Readable, stop: () => zstd.kill('SIGKILL') };
}
