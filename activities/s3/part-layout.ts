// How a file maps onto multipart parts for one part size, and which parts an upload found on the server may keep.
import type { CompletedPart, Part } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

const MiB = 1024 * 1024;
/** S3's limits: parts of 5 MiB or more (except the last), at most 10,000 of them. */
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PARTS = 10_000;

export function partSizeFor(size: number, wanted = 64 * MiB): number {
  const minimum = Math.ceil(size / MAX_PARTS / MiB) * MiB;
  return Math.max(wanted, MIN_PART_SIZE, minimum);
}

const unquote = (etag: string) => etag.replace(/^"|"$/g, '').toLowerCase();
export const checksumsOf = (p: Part | CompletedPart): Partial<CompletedPart> => ({
  ...(p.ChecksumCRC32 && { ChecksumCRC32: p.ChecksumCRC32 }),
  ...(p.ChecksumCRC32C && { ChecksumCRC32C: p.ChecksumCRC32C }),
  ...(p.ChecksumCRC64NVME && { ChecksumCRC64NVME: p.ChecksumCRC64NVME }),
  ...(p.ChecksumSHA1 && { ChecksumSHA1: p.ChecksumSHA1 }),
  ...(p.ChecksumSHA256 && { ChecksumSHA256: p.ChecksumSHA256 }),
});

/** Part boundaries of one file for one part size. */
export class Layout {
  readonly count: number;
  constructor(
    readonly size: number,
    readonly partSize: number,
  ) {
    this.count = Math.max(1, Math.ceil(size / partSize));
  }
  numbers = () => Array.from({ length: this.count }, (_, i) => i + 1);
  sizeOf = (n: number) => Math.min(this.partSize, this.size - (n - 1) * this.partSize);

  /** Parts the server holds that fit this layout (a part of another size came from another part size: resend it). */
  keep(parts: Part[]): Map<number, CompletedPart> {
    const kept = new Map<number, CompletedPart>();
    for (const p of parts)
      if (p.PartNumber && p.ETag && p.PartNumber <= this.count && p.Size === this.sizeOf(p.PartNumber))
        kept.set(p.PartNumber, { PartNumber: p.PartNumber, ETag: p.ETag, ...checksumsOf(p) });
    return kept;
  }

  async read(fh: FileHandle, n: number, buffer: Buffer): Promise<Buffer> {
    const length = this.sizeOf(n);
    const start = (n - 1) * this.partSize;
    for (let done = 0; done < length;) {
      const { bytesRead } = await fh.read(buffer, done, length - done, start + done);
      if (bytesRead === 0)
        throw new Error(
          `file ended at ${start + done} bytes, expected ${this.size}; was it changed during the upload?`,
        );
      done += bytesRead;
    }
    return buffer.subarray(0, length);
  }
}

/** Keeps the parts whose ETag is the MD5 of our bytes; ETags that are not MD5s (SSE-KMS) cannot vouch for a part. */
export async function verified(
  fh: FileHandle,
  layout: Layout,
  parts: Map<number, CompletedPart>,
  signal?: AbortSignal,
) {
  const kept = new Map<number, CompletedPart>();
  const buffer = Buffer.allocUnsafe(layout.partSize);
  for (const [n, part] of parts) {
    signal?.throwIfAborted();
    const etag = unquote(part.ETag!);
    if (!/^[0-9a-f]{32}$/.test(etag)) continue;
    if (
      createHash('md5')
        .update(await layout.read(fh, n, buffer))
        .digest('hex') === etag
    )
      kept.set(n, part);
  }
  return kept;
}
