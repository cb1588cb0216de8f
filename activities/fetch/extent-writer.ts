// Writes the byte stream of one fetch stream into the local file: the stream is the requested extents back to back,
// so it is cut at the same boundaries and each part written at its offset. Synchronous positional writes straight
// from the decrypted packet were the cheapest way measured (less client CPU than promise writes, coalescing into
// bigger writes, or handing chunks to a thread; see docs/fetch.md).
import { writeSync } from 'node:fs';
import type { Batch } from './fetch-plan';

export interface StreamHooks {
  /** Data bytes written to the local file. */
  onData(bytes: number): void;
  /** Every extent of the batch is written. */
  onBatch(batch: Batch): void;
}

const BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/**
 * Writes a stream of back-to-back extents at their offsets, batch by batch, in the order the batches were added (the
 * order their extents were asked of the sender). With skipZeroBlocks, all-zero 4 KiB blocks (aligned in the file) are
 * not written, so a file whose hole map is unknown still arrives sparse.
 */
export class ExtentWriter {
  /** Batches asked for, in order; those before `current` are written. */
  private readonly batches: Batch[] = [];
  private current = 0;
  private extent = 0;
  private at = 0;
  /** Bytes asked for and not written yet. */
  private pendingBytes = 0;

  constructor(
    private readonly fd: number,
    private readonly hooks: StreamHooks,
    private readonly skipZeroBlocks: boolean,
  ) {}

  /** The sender has been asked for this batch, after the ones before. */
  add(batch: Batch): void {
    this.batches.push(batch);
    this.pendingBytes += batch.bytes;
    this.skipEmpty();
  }

  get pending(): number {
    return this.pendingBytes;
  }

  get complete(): boolean {
    return this.current === this.batches.length;
  }

  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.complete) throw new Error(`the sender wrote ${chunk.length - off} bytes more than requested`);
      const [offset, length] = this.batches[this.current].extents[this.extent];
      const n = Math.min(length - this.at, chunk.length - off);
      if (this.skipZeroBlocks) this.writeSparse(chunk, off, n, offset + this.at);
      else writeAll(this.fd, chunk, off, n, offset + this.at);
      off += n;
      this.at += n;
      this.pendingBytes -= n;
      this.hooks.onData(n);
      if (this.at === length) {
        this.at = 0;
        this.extent++;
        this.skipEmpty();
      }
    }
  }

  private skipEmpty(): void {
    while (!this.complete && this.extent >= this.batches[this.current].extents.length) {
      this.hooks.onBatch(this.batches[this.current++]);
      this.extent = 0;
    }
  }

  private writeSparse(chunk: Buffer, off: number, n: number, position: number): void {
    let run = -1;
    for (let i = 0; i < n;) {
      const len = Math.min(n - i, BLOCK - ((position + i) % BLOCK));
      const zero = chunk.subarray(off + i, off + i + len).equals(ZERO_BLOCK.subarray(0, len));
      if (!zero && run < 0) run = i;
      if (zero && run >= 0) {
        writeAll(this.fd, chunk, off + run, i - run, position + run);
        run = -1;
      }
      i += len;
    }
    if (run >= 0) writeAll(this.fd, chunk, off + run, n - run, position + run);
  }
}

function writeAll(fd: number, buf: Buffer, off: number, len: number, position: number): void {
  while (len > 0) {
    const n = writeSync(fd, buf, off, len, position);
    off += n;
    len -= n;
    position += n;
  }
}
