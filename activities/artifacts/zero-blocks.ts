// Where the data is in a disk image, found by reading it in fixed-size blocks and telling all-zero blocks apart, as
// AWS's coldsnap does. Both uploads that skip zeros use it: EBS direct takes the data blocks themselves (512 KiB, the
// API's block size), libvirt takes extents of data (virsh cannot read holes from a pipe: `vol-upload --sparse
// /dev/stdin` fails with "Illegal seek", so each extent is sent with --offset/--length into a sparse volume).
// Node has no lseek(SEEK_DATA), so holes are read too; the kernel fills them with zeros without touching the disk,
// and blocks that are allocated but zero are skipped as well.
import { open, readFile, stat, writeFile } from 'node:fs/promises';

export interface Block {
  index: number;
  /** The block's bytes, padded with zeros to the block size; undefined for an all-zero block. */
  data?: Buffer;
}

/** Bytes read at once, whatever the block size. */
const READ_BYTES = 8 << 20;

/**
 * Every block of the file in order. `data` is a view into a buffer a later read reuses: a caller that keeps a block
 * past the next iteration copies it.
 */
export async function* zeroBlocks(path: string, blockSize: number, signal?: AbortSignal): AsyncGenerator<Block> {
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    const count = Math.ceil(size / blockSize);
    const perRead = Math.max(1, Math.floor(READ_BYTES / blockSize));
    const chunk = Buffer.alloc(blockSize * perRead);
    const zero = Buffer.alloc(blockSize);
    for (let first = 0; first < count; first += perRead) {
      signal?.throwIfAborted();
      const want = Math.min(chunk.length, size - first * blockSize);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await file.read(chunk, got, want - got, first * blockSize + got);
        if (bytesRead === 0) throw new Error(`${path} shrank while it was being read`);
        got += bytesRead;
      }
      chunk.fill(0, got);
      for (let i = 0; i < perRead && first + i < count; i++) {
        const slice = chunk.subarray(i * blockSize, (i + 1) * blockSize);
        if (slice.equals(zero)) yield { index: first + i };
        else yield { index: first + i, data: slice };
      }
    }
  } finally {
    await file.close();
  }
}

export interface Extent {
  offset: number;
  length: number;
}

export interface ExtentMap {
  size: number;
  extents: Extent[];
  /** Bytes inside the extents (what travels). */
  dataBytes: number;
}

export interface ScanOptions {
  /** Granularity of zero detection. */
  blockSize?: number;
  /**
   * Gaps shorter than this are sent as zeros: each extent costs one virsh invocation (~50 ms), which is worth a few
   * MiB of zeros on a LAN, and it keeps the extent count (and the resume state) small.
   */
  mergeGap?: number;
  signal?: AbortSignal;
}

export const DEFAULT_BLOCK = 64 * 1024;
export const DEFAULT_MERGE_GAP = 4 * 1024 * 1024;

/** The data of the file as extents: its non-zero blocks, with gaps up to `mergeGap` merged in. */
export async function scanExtents(path: string, opts: ScanOptions = {}): Promise<ExtentMap> {
  const block = opts.blockSize ?? DEFAULT_BLOCK;
  const mergeGap = opts.mergeGap ?? DEFAULT_MERGE_GAP;
  const { size } = await stat(path);
  const extents: Extent[] = [];
  for await (const { index, data } of zeroBlocks(path, block, opts.signal)) {
    if (!data) continue;
    const offset = index * block;
    const end = Math.min(offset + block, size);
    const last = extents[extents.length - 1];
    if (last && offset - (last.offset + last.length) <= mergeGap) last.length = end - last.offset;
    else extents.push({ offset, length: end - offset });
  }
  return { size, extents, dataBytes: extents.reduce((n, e) => n + e.length, 0) };
}

/** The whole file as one extent: for pools whose new volumes do not read as zeros (LVM, disks, iSCSI...). */
export const wholeFile = (size: number): ExtentMap => ({ size, extents: size ? [{ offset: 0, length: size }] : [], dataBytes: size });

/**
 * scanExtents, remembered next to the file (keyed by size, mtime and options) so that a retry or another target
 * publishing the same staged artifact does not read it again.
 */
export async function cachedScanExtents(path: string, opts: ScanOptions = {}): Promise<ExtentMap> {
  const st = await stat(path);
  const key = `${st.size}:${st.mtimeMs}:${opts.blockSize ?? DEFAULT_BLOCK}:${opts.mergeGap ?? DEFAULT_MERGE_GAP}`;
  const cache = `${path}.extents.json`;
  const saved = await readFile(cache, 'utf8').then(
    (t) => JSON.parse(t) as { key: string; map: ExtentMap },
    () => undefined,
  );
  if (saved?.key === key) return saved.map;
  const map = await scanExtents(path, opts);
  await writeFile(cache, JSON.stringify({ key, map })).catch(() => undefined);
  return map;
}
