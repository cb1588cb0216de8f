// One stream of a fetch: an exec channel runs the remote sender, which writes the requested extents back to back;
// the ExtentWriter cuts the byte stream at the same boundaries and writes each part at its offset in the local file.
// Plain exec streaming costs about half the client CPU of ssh2's SFTP reads (see docs/fetch.md).
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ClientChannel } from 'ssh2';
import type { SshSession } from './connection';
import type { ExtentWriter } from './extent-writer';
import type { Piece } from './fetch-plan';
import { headerEnd, parseHeader, type Compression, type RemoteFileInfo } from './remote-file';

export interface StreamResult {
  /** Bytes that crossed the SSH channel (compressed when compression is on). */
  wireBytes: number;
}

/**
 * Receive window per stream. ssh2 keeps 2 MiB, which caps a channel at 2 MiB per round trip (40 MB/s at 50 ms);
 * data here is written as it arrives, so a larger credit costs no memory. Topped up through ssh2's own
 * window-adjust call, before ssh2's 1 MiB threshold would send its own.
 */
export const RECEIVE_WINDOW = 16 * 1024 * 1024;
const WINDOW = RECEIVE_WINDOW;

interface ChannelInternals {
  incoming?: { window: number };
  outgoing?: { id: number; state: string };
  _client?: { _protocol?: { channelWindowAdjust(id: number, amount: number): void } };
}

/** Tops the channel's receive window up to RECEIVE_WINDOW (test/integration/ssh-session.test.ts guards the internals). */
export function topUpWindow(channel: ClientChannel): void {
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
  const amount = WINDOW - c.incoming.window;
  if (amount < WINDOW / 2) return;
  c.incoming.window += amount;
  protocol.channelWindowAdjust(c.outgoing.id, amount);
}

/**
 * Opens the describe-then-send session (see sessionCommand) and reads the file's description. The channel is left
 * paused, ready to be handed to receiveStream; `leftover` is anything that came after the header (normally nothing:
 * the sender waits for its ranges).
 */
export async function openFileSession(
  ssh: SshSession,
  command: string,
  remotePath: string,
  signal: AbortSignal,
): Promise<{ channel: ClientChannel; info: RemoteFileInfo; leftover: Buffer }> {
  signal.throwIfAborted();
  const channel = await ssh.channel(command);
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
 * Sends the extent list to a sender channel and writes what comes back. Rejects on any shortfall: a dropped
 * connection, a sender that failed or stopped early (the file shrank), or an abort (which kills the sender).
 */
export async function receiveStream(
  channel: ClientChannel,
  label: string,
  writer: ExtentWriter,
  pieces: Piece[],
  compression: Compression,
  signal: AbortSignal,
  leftover?: Buffer,
): Promise<StreamResult> {
  let wireBytes = 0;
  let stderr = '';
  let code: number | undefined;
  let exitSignal: string | undefined;
  let decompressor: { output: Readable; stop(): void } | undefined;

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

    // The channel closes after its last data; with compression, the decompressed output also has to end.
    let pending = compression === 'none' ? 1 : 2;
    const finish = () => {
      if (--pending > 0) return;
      if (code === undefined && !exitSignal) {
        return settle(
          new Error(`${label}: connection lost while fetching (${wireBytes} bytes received on this stream)`),
        );
      }
      if (code !== 0) {
        return settle(
          new Error(`${label}: remote sender exited ${code ?? exitSignal}: ${stderr.trim().slice(-500)}`),
        );
      }
      if (!writer.complete)
        return settle(new Error(`${label}: the remote file ended early (did it change during the fetch?)`));
      settle();
    };
    const consume = (chunk: Buffer) => {
      if (settled) return;
      try {
        writer.write(chunk);
      } catch (err) {
        settle(err);
      }
    };
    channel.on('exit', (c: number | null, name?: string) => {
      code = c ?? undefined;
      exitSignal = name;
    });
    channel.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    channel.on('error', settle);
    channel.on('close', finish);
    if (leftover?.length) consume(leftover);
    if (compression === 'none') {
      channel.on('data', (d: Buffer) => {
        wireBytes += d.length;
        consume(d);
        topUpWindow(channel);
      });
    } else {
      channel.on('data', (d: Buffer) => (wireBytes += d.length));
      decompressor = decompress(compression, channel, settle);
      decompressor.output.on('data', consume);
      decompressor.output.on('end', finish);
    }
    if (compression === 'none') topUpWindow(channel);
    channel.resume();
    channel.end(pieces.flatMap((p) => p.extents.map(([o, n]) => `${o} ${n}\n`)).join(''));
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
