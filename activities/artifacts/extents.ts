// Where the data is in a disk image. virsh cannot read holes from a pipe (`vol-upload --sparse /dev/stdin` fails with
// "Illegal seek"), so the upload sends each data extent with `--offset/--length` into a sparse volume instead, and
// the holes never travel. Zero blocks are found by reading (as coldsnap does for EBS), which also skips blocks that
// are allocated but zero; holes read back from the kernel without disk I/O.
import { open, readFile, stat, writeFile } from 'node:fs/promises';

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

export async function scanExtents(path: string, opts: ScanOptions = {}): Promise<ExtentMap> {
  const block = opts.blockSize ?? DEFAULT_BLOCK;
  const mergeGap = opts.mergeGap ?? DEFAULT_MERGE_GAP;
  const zero = Buffer.alloc(block);
  const buf = Buffer.allocUnsafe(block * 64);
  const fh = await open(path, 'r');
  const extents: Extent[] = [];
  try {
    const { size } = await fh.stat();
    let pos = 0;
    while (pos < size) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      for (let i = 0; i < bytesRead; i += block) {
        const end = Math.min(i + block, bytesRead);
        const chunk = buf.subarray(i, end);
        if (chunk.equals(end - i === block ? zero : zero.subarray(0, end - i))) continue;
        const offset = pos + i;
        const last = extents[extents.length - 1];
        if (last && offset - (last.offset + last.length) <= mergeGap) last.length = offset + (end - i) - last.offset;
        else extents.push({ offset, length: end - i });
      }
      pos += bytesRead;
    }
    return { size, extents, dataBytes: extents.reduce((n, e) => n + e.length, 0) };
  } finally {
    await fh.close();
  }
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
