// Walks a disk image in fixed-size blocks and tells all-zero blocks apart from data. Node has no lseek(SEEK_DATA),
// so holes are read too; the kernel fills them with zeros without touching the disk, which costs a memcpy.
import { open } from 'node:fs/promises';

export interface Block {
  index: number;
  /** The block's bytes, padded with zeros to the block size; undefined for an all-zero block. */
  data?: Buffer;
}

const READ_CHUNK_BLOCKS = 16;

export async function* blocksOf(path: string, blockSize: number, signal?: AbortSignal): AsyncGenerator<Block> {
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    const count = Math.ceil(size / blockSize);
    const chunk = Buffer.alloc(blockSize * READ_CHUNK_BLOCKS);
    const zero = Buffer.alloc(blockSize);
    for (let first = 0; first < count; first += READ_CHUNK_BLOCKS) {
      signal?.throwIfAborted();
      const want = Math.min(chunk.length, size - first * blockSize);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await file.read(chunk, got, want - got, first * blockSize + got);
        if (bytesRead === 0) throw new Error(`${path} shrank while it was being read`);
        got += bytesRead;
      }
      chunk.fill(0, got);
      for (let i = 0; i < READ_CHUNK_BLOCKS && first + i < count; i++) {
        const slice = chunk.subarray(i * blockSize, (i + 1) * blockSize);
        yield { index: first + i, data: slice.equals(zero) ? undefined : Buffer.from(slice) };
      }
    }
  } finally {
    await file.close();
  }
}
