// The zero-block scanner both zero-skipping uploads use (activities/artifacts/zero-blocks.ts): EBS direct takes its
// data blocks, libvirt its extents. Real sparse files on the test machine's filesystem.
import { mkdtempSync, openSync, rmSync, writeSync, closeSync, ftruncateSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cachedScanExtents, scanExtents, wholeFile, zeroBlocks, type Block } from '../../activities/artifacts/zero-blocks';

const KiB = 1024;
const dir = mkdtempSync(path.join(os.tmpdir(), 'zero-blocks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse file of `size` bytes with `data` written at the given offsets (and `zeros` written, allocated but zero). */
function image(name: string, size: number, data: { at: number; bytes: number }[], zeros: { at: number; bytes: number }[] = []) {
  const file = path.join(dir, name);
  const fd = openSync(file, 'w');
  ftruncateSync(fd, size);
  for (const z of zeros) writeSync(fd, Buffer.alloc(z.bytes), 0, z.bytes, z.at);
  for (const d of data) writeSync(fd, Buffer.alloc(d.bytes, 0xab), 0, d.bytes, d.at);
  closeSync(fd);
  return file;
}

async function blocks(file: string, blockSize: number): Promise<Block[]> {
  const out: Block[] = [];
  // Copied: a block's data is a view the next read reuses.
  for await (const b of zeroBlocks(file, blockSize)) out.push({ index: b.index, data: b.data && Buffer.from(b.data) });
  return out;
}

describe('zero blocks', () => {
  it('yields every block in order, data only for blocks that are not all zero, allocated zeros included', async () => {
    const file = image('blocks.raw', 10 * 64 * KiB + 100, [
      { at: 64 * KiB + 5, bytes: 10 },
      { at: 10 * 64 * KiB + 50, bytes: 50 },
    ], [{ at: 3 * 64 * KiB, bytes: 64 * KiB }]);
    const all = await blocks(file, 64 * KiB);
    expect(all.map((b) => b.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(all.filter((b) => b.data).map((b) => b.index)).toEqual([1, 10]);
    // The last, partial block is padded with zeros to the block size (EBS blocks are always 512 KiB).
    const last = all[10]!.data!;
    expect(last.length).toBe(64 * KiB);
    expect(last.subarray(50, 100).every((x) => x === 0xab)).toBe(true);
    expect(last.subarray(100).every((x) => x === 0)).toBe(true);
  });

  it('reads across its read size with blocks larger than it too (EBS: 512 KiB)', async () => {
    const file = image('big-blocks.raw', 40 * 512 * KiB, [{ at: 17 * 512 * KiB, bytes: 1 }, { at: 39 * 512 * KiB + 511 * KiB, bytes: KiB }]);
    const all = await blocks(file, 512 * KiB);
    expect(all).toHaveLength(40);
    expect(all.filter((b) => b.data).map((b) => b.index)).toEqual([17, 39]);
  });

  it('turns data blocks into extents, merging gaps up to mergeGap and ending at the file size', async () => {
    const size = 100 * 64 * KiB + 1000;
    const file = image('extents.raw', size, [
      { at: 0, bytes: 1 },
      { at: 2 * 64 * KiB, bytes: 1 }, // gap of one block: merged with mergeGap 64 KiB
      { at: 50 * 64 * KiB, bytes: 64 * KiB + 1 }, // two blocks
      { at: 100 * 64 * KiB + 10, bytes: 10 }, // the partial last block
    ]);
    const map = await scanExtents(file, { blockSize: 64 * KiB, mergeGap: 64 * KiB });
    expect(map.extents).toEqual([
      { offset: 0, length: 3 * 64 * KiB },
      { offset: 50 * 64 * KiB, length: 2 * 64 * KiB },
      { offset: 100 * 64 * KiB, length: 1000 },
    ]);
    expect(map).toMatchObject({ size, dataBytes: 5 * 64 * KiB + 1000 });
    expect(wholeFile(size)).toEqual({ size, extents: [{ offset: 0, length: size }], dataBytes: size });
  });

  it('remembers the scan next to the file and reuses it while the file is unchanged', async () => {
    const file = image('cached.raw', 8 * 64 * KiB, [{ at: 5 * 64 * KiB, bytes: 3 }]);
    const first = await cachedScanExtents(file, { blockSize: 64 * KiB });
    expect(existsSync(`${file}.extents.json`)).toBe(true);
    expect(await cachedScanExtents(file, { blockSize: 64 * KiB })).toEqual(first);
    expect(first.extents).toEqual([{ offset: 5 * 64 * KiB, length: 64 * KiB }]);
  });

  it('stops with the signal’s reason when cancelled', async () => {
    const file = image('cancel.raw', 64 << 20, []);
    const abort = new AbortController();
    abort.abort(new Error('cancelled by the test'));
    await expect(scanExtents(file, { signal: abort.signal })).rejects.toThrow('cancelled by the test');
  });
});
