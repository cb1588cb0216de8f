// The local digest of a fetched file, computed on a worker thread while the fetch is still writing it: regions are
// fed in file order as they complete and their data is read back from the page cache (cheaper, measured, than
// copying each received chunk to the thread). Two kinds:
// - sha256 of the whole apparent file: holes are hashed from a zero buffer. A 10 GiB raw image is mostly holes, and
//   hashing them costs ~0.6 s of CPU per GiB;
// - sparse-sha256 (remote-file.ts, sparseHeader): the size and extent map, then the data only. Holes cost nothing:
//   the fetch never writes them, so they read as zeros by construction.
import { Worker } from 'node:worker_threads';
import type { Extent } from './remote-file';

// Plain JS evaluated by the worker thread, so it runs the same under tsx, vitest and a compiled build.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const fd = openSync(workerData.path, 'r');
const hash = createHash('sha256');
const sparse = workerData.header !== undefined;
if (sparse) hash.update(Buffer.from(workerData.header));
const CHUNK = 1 << 20;
const zeros = Buffer.alloc(CHUNK);
const buf = Buffer.allocUnsafe(CHUNK);
let pos = 0;
function zerosTo(end) {
  if (sparse) { pos = Math.max(pos, end); return; }
  while (pos < end) { const n = Math.min(end - pos, CHUNK); hash.update(zeros.subarray(0, n)); pos += n; }
}
function readTo(end) {
  while (pos < end) {
    const n = readSync(fd, buf, 0, Math.min(end - pos, CHUNK), pos);
    if (n === 0) throw new Error('ends at ' + pos + ', expected ' + end + ' bytes');
    hash.update(buf.subarray(0, n));
    pos += n;
  }
}
parentPort.on('message', (msg) => {
  try {
    if (msg.type === 'region') {
      for (const [offset, length] of msg.extents) { zerosTo(offset); readTo(offset + length); }
      zerosTo(msg.end);
    } else if (msg.type === 'digest') {
      closeSync(fd);
      parentPort.postMessage({ digest: hash.digest('hex') });
    }
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

export class SparseSha256 {
  private readonly worker: Worker;
  private readonly result: Promise<string>;
  private fedTo = 0;

  /** With `sparseHeader`, the digest is sparse-sha256: that header, then the data extents only. */
  constructor(
    path: string,
    readonly sparseHeader?: Buffer,
  ) {
    this.worker = new Worker(WORKER, { eval: true, workerData: { path, header: sparseHeader } });
    this.result = new Promise<string>((resolve, reject) => {
      this.worker.on('message', (msg: { digest?: string; error?: string }) => {
        if (msg.error) reject(new Error(`sha256 of ${path}: ${msg.error}`));
        else if (msg.digest) resolve(msg.digest);
      });
      this.worker.on('error', reject);
      this.worker.on('exit', (code) =>
        reject(new Error(`sha256 of ${path}: hashing thread exited (${code})`)),
      );
    });
    // A fetch that fails before asking for the digest must not leave an unhandled rejection behind.
    this.result.catch(() => undefined);
  }

  /** The file up to `end` is written, data in `extents`, holes elsewhere. Regions must come in file order. */
  region(end: number, extents: Extent[]): void {
    if (end < this.fedTo) throw new Error(`sha256: region ending at ${end} is behind ${this.fedTo}`);
    this.worker.postMessage({ type: 'region', end, extents });
    this.fedTo = end;
  }

  async digest(): Promise<string> {
    this.worker.postMessage({ type: 'digest' });
    try {
      return await this.result;
    } finally {
      await this.worker.terminate();
    }
  }

  async abort(): Promise<void> {
    await this.worker.terminate();
  }
}
