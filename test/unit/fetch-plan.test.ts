import { mkdtempSync, openSync, closeSync, ftruncateSync, fstatSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { leadFor, MAX_WINDOW, MIN_WINDOW, windowFor } from '../../activities/fetch/range-stream';
import { batchesOf, decodeIndexes, encodeIndexes, planFetch } from '../../activities/fetch/fetch-plan';
import { ExtentWriter } from '../../activities/fetch/extent-writer';
import { headerEnd, parseFilefrag, parseHeader, type Extent } from '../../activities/fetch/remote-file';

const MiB = 1024 * 1024;

describe('fetch plan', () => {
  it('cuts the extents into pieces that tile the whole file, holes included', () => {
    const extents: Extent[] = [
      [4096, 3 * MiB],
      [10 * MiB, 6 * MiB],
      [30 * MiB, 4096],
    ];
    const plan = planFetch({ size: 64 * MiB, mtime: '1', extents }, 4 * MiB);
    expect(plan.dataBytes).toBe(9 * MiB + 4096);
    expect(plan.pieces[0].start).toBe(0);
    expect(plan.pieces.at(-1)!.end).toBe(64 * MiB);
    for (let i = 1; i < plan.pieces.length; i++) expect(plan.pieces[i].start).toBe(plan.pieces[i - 1].end);
    expect(plan.pieces.map((p) => p.dataBytes)).toEqual([4 * MiB, 4 * MiB, MiB + 4096]);
    // An extent split across pieces keeps its bytes in order.
    expect(plan.pieces[0].extents).toEqual([
      [4096, 3 * MiB],
      [10 * MiB, MiB],
    ]);
    expect(plan.pieces[1].extents).toEqual([[11 * MiB, 4 * MiB]]);
  });

  it('has one empty piece for a file that is all hole, and bounds the number of pieces for huge files', () => {
    expect(planFetch({ size: 10 * MiB, mtime: '1', extents: [] }).pieces).toEqual([
      { index: 0, start: 0, end: 10 * MiB, extents: [], dataBytes: 0 },
    ]);
    const huge = planFetch({ size: 2 ** 40, mtime: '1', extents: [[0, 2 ** 40]] }, MiB);
    expect(huge.pieces.length).toBeLessThanOrEqual(1024);
  });

  it('cuts a piece into batches of at most the given data, the last one reaching the end of the piece', () => {
    const extents: Extent[] = [
      [4096, 3 * MiB],
      [10 * MiB, 6 * MiB],
      [30 * MiB, 4096],
    ];
    const [piece] = planFetch({ size: 64 * MiB, mtime: '1', extents }, 16 * MiB).pieces;
    const batches = batchesOf(piece, 4 * MiB);
    expect(batches.map((b) => b.extents)).toEqual([
      [
        [4096, 3 * MiB],
        [10 * MiB, MiB],
      ],
      [[11 * MiB, 4 * MiB]],
      [
        [15 * MiB, MiB],
        [30 * MiB, 4096],
      ],
    ]);
    expect(batches.map((b) => b.bytes)).toEqual([4 * MiB, 4 * MiB, MiB + 4096]);
    // Each batch's end is where the file is complete once it is written: the hash may read up to there.
    expect(batches.map((b) => b.end)).toEqual([11 * MiB, 15 * MiB, 64 * MiB]);
    expect(batchesOf({ index: 0, start: 0, end: MiB, extents: [], dataBytes: 0 })).toEqual([
      { piece: { index: 0, start: 0, end: MiB, extents: [], dataBytes: 0 }, extents: [], bytes: 0, end: MiB },
    ]);
  });

  it('fingerprints the remote file version', () => {
    const a = planFetch({ size: MiB, mtime: '1', extents: [[0, MiB]] });
    expect(planFetch({ size: MiB, mtime: '2', extents: [[0, MiB]] }).fingerprint).not.toBe(a.fingerprint);
    expect(planFetch({ size: MiB, mtime: '1', extents: [[0, MiB]] }).fingerprint).toBe(a.fingerprint);
  });

  it('writes done pieces as short index runs', () => {
    expect(encodeIndexes([5, 0, 1, 2, 7, 8, 3])).toBe('0-3,5,7-8');
    expect([...decodeIndexes('0-3,5,7-8')]).toEqual([0, 1, 2, 3, 5, 7, 8]);
    expect(decodeIndexes('').size).toBe(0);
  });
});

describe('builder file description', () => {
  it('reads the python helper header', () => {
    const text = 'H 1073741824 1700000000123456789 1\n0 4096\n1048576 65536\nE\n';
    expect(headerEnd(text)).toBe(text.length);
    expect(parseHeader(text.slice(0, headerEnd(text)))).toEqual({
      size: 1073741824,
      mtime: '1700000000123456789',
      extents: [
        [0, 4096],
        [1048576, 65536],
      ],
      holesKnown: true,
      helper: 'python3',
    });
    expect(headerEnd('H 1 2 1\n0 4')).toBe(-1);
  });

  it("reads filefrag's map, merging adjacent extents and leaving unwritten ones as holes", () => {
    const text = [
      'S 104857600 1700000000.123456789',
      'Filesystem type is: ef53',
      'File size of /x is 104857600 (25600 blocks of 4096 bytes)',
      ' ext:     logical_offset:        physical_offset: length:   expected: flags:',
      '   0:        0..     255:      34816..     35071:    256:             ',
      '   1:      256..     511:      40000..     40255:    256:      35072: ',
      '   2:     2560..    3327:          0..         0:      0:             unknown_loc,delalloc',
      '   3:     5000..    5099:      50000..     50099:    100:             unwritten',
      '   4:    25599..   25599:      60000..     60000:      1:             last,eof',
      '/x: 5 extents found',
    ].join('\n');
    const info = parseHeader(text);
    expect(info).toMatchObject({
      size: 104857600,
      mtime: '1700000000123456789',
      holesKnown: true,
      helper: 'shell',
    });
    expect(info.extents).toEqual([
      [0, 512 * 4096],
      [2560 * 4096, 768 * 4096],
      [25599 * 4096, 4096],
    ]);
    expect(parseFilefrag('no map here', 10)).toBeUndefined();
  });
});

describe('extent writer', () => {
  it('leaves all-zero blocks unwritten when the hole map is unknown', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fetch-writer-'));
    try {
      const file = path.join(dir, 'f');
      const fd = openSync(file, 'w+');
      ftruncateSync(fd, 8 * MiB);
      const plan = planFetch({ size: 8 * MiB, mtime: '1', extents: [[0, 8 * MiB]] }, 8 * MiB);
      const data = Buffer.alloc(8 * MiB);
      data.fill(7, MiB, MiB + 10_000); // ends mid-block: the whole block is data
      data.fill(9, 6 * MiB, 6 * MiB + 4096);
      const done: number[] = [];
      const writer = new ExtentWriter(fd, { onData: () => undefined, onBatch: (b) => done.push(b.end) }, true);
      for (const batch of batchesOf(plan.pieces[0], 3 * MiB)) writer.add(batch);
      expect(writer.pending).toBe(8 * MiB);
      for (let off = 0; off < data.length; off += 32768 + 17)
        writer.write(data.subarray(off, Math.min(off + 32768 + 17, data.length)));
      expect(writer.complete).toBe(true);
      expect(writer.pending).toBe(0);
      expect(done).toEqual([3 * MiB, 6 * MiB, 8 * MiB]);
      expect(fstatSync(fd).blocks * 512).toBeLessThanOrEqual(4 * 4096);
      closeSync(fd);
      expect(readFileSync(file).equals(data)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('windowFor', () => {
  it("keeps ssh2's 2 MiB on short paths and grows with the round trip up to 64 MiB", () => {
    expect(windowFor(undefined)).toBe(MIN_WINDOW);
    expect(windowFor(0.2)).toBe(MIN_WINDOW);
    expect(windowFor(5)).toBe(MIN_WINDOW);
    const at20 = windowFor(20);
    expect(at20).toBeGreaterThan(MIN_WINDOW);
    expect(windowFor(50)).toBeGreaterThan(at20);
    expect(windowFor(50) % 65536).toBe(0);
    expect(windowFor(100)).toBeLessThan(MAX_WINDOW);
    expect(windowFor(200)).toBe(MAX_WINDOW);
    expect(MAX_WINDOW).toBe(64 * MiB);
    expect(windowFor(Number.NaN)).toBe(MIN_WINDOW);
  });
});

describe('leadFor', () => {
  it('asks for the window and two batches until the rate is known, then for what a round trip at that rate needs', () => {
    const window = windowFor(50);
    expect(leadFor(window)).toBe(window + 8 * MiB);
    // 150 MB/s over 50 ms: 1.25 × 7.5 MB plus a batch.
    expect(leadFor(window, 150e6, 50)).toBe(Math.ceil(1.25 * 150e6 * 0.05) + 4 * MiB);
    // Never more than at the start, never less than two batches (a stream next door, or one that stalled).
    expect(leadFor(window, 2e9, 50)).toBe(window + 8 * MiB);
    expect(leadFor(MIN_WINDOW, 500e6, 0.2)).toBe(8 * MiB);
    expect(leadFor(window, 0, 50)).toBe(8 * MiB);
  });
});
