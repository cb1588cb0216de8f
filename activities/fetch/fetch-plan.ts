// How a fetch is cut up: the remote file's data extents grouped into pieces of about the same amount of data.
// A piece is the unit of resumption (heartbeat details list the done pieces); pieces cover the file end to end, holes
// included. Each piece is cut again into batches of a few MiB, the unit streams take work in (from one shared queue,
// as they need it) and the unit the hash follows the written file in.
import { createHash } from 'node:crypto';
import type { Extent, RemoteFileInfo } from './remote-file';
import { fromRuns, toRuns } from '../runtime/number-runs';

export interface Piece {
  index: number;
  /** File region [start, end) this piece covers, holes included; pieces tile [0, size). */
  start: number;
  end: number;
  /** Data extents inside the region, in order. */
  extents: Extent[];
  dataBytes: number;
}

export interface FetchPlan {
  size: number;
  dataBytes: number;
  pieces: Piece[];
  /** Identifies the remote file version and the cut: resume details from another plan are ignored. */
  fingerprint: string;
}

/**
 * Extents a stream asks its sender for at once: a part of one piece, at most BATCH_BYTES of data. Streams take
 * batches from a shared queue in file order when they run low, so they finish together whatever their speed.
 */
export interface Batch {
  piece: Piece;
  extents: Extent[];
  bytes: number;
  /** Where the file is complete once this batch and every one before it are written: hashing may go up to here. */
  end: number;
}

const MiB = 1024 * 1024;
/**
 * Small enough that two streams end within a few milliseconds of each other and the hash trails the written file
 * closely; large enough that a batch is one message to the hashing thread and a few lines to the sender.
 */
export const BATCH_BYTES = 4 * MiB;
/** Heartbeat details list done pieces; bounding their number bounds the details' size. */
const MAX_PIECES = 1024;

export function planFetch(
  file: Pick<RemoteFileInfo, 'size' | 'mtime' | 'extents'>,
  pieceBytes = 64 * MiB,
): FetchPlan {
  const dataBytes = file.extents.reduce((sum, [, n]) => sum + n, 0);
  const target = Math.max(pieceBytes, Math.ceil(dataBytes / MAX_PIECES / MiB) * MiB);
  const pieces: Piece[] = [];
  let current: Piece = { index: 0, start: 0, end: 0, extents: [], dataBytes: 0 };
  const close = (end: number) => {
    current.end = end;
    pieces.push(current);
    current = { index: pieces.length, start: end, end, extents: [], dataBytes: 0 };
  };
  for (const [offset, length] of file.extents) {
    let at = offset;
    let left = length;
    while (left > 0) {
      const take = Math.min(left, target - current.dataBytes);
      current.extents.push([at, take]);
      current.dataBytes += take;
      at += take;
      left -= take;
      if (current.dataBytes === target) close(at);
    }
  }
  if (current.extents.length > 0 || pieces.length === 0) close(file.size);
  else pieces[pieces.length - 1].end = file.size;
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([file.size, file.mtime, target, file.extents]))
    .digest('hex')
    .slice(0, 16);
  return { size: file.size, dataBytes, pieces, fingerprint };
}

/** The piece's extents in batches of at most maxBytes (a piece without data is one empty batch). */
export function batchesOf(piece: Piece, maxBytes = BATCH_BYTES): Batch[] {
  const batches: Batch[] = [];
  let current: Batch = { piece, extents: [], bytes: 0, end: piece.start };
  for (const [offset, length] of piece.extents) {
    for (let at = offset; at < offset + length;) {
      const take = Math.min(offset + length - at, maxBytes - current.bytes);
      current.extents.push([at, take]);
      current.bytes += take;
      at += take;
      current.end = at;
      if (current.bytes === maxBytes) {
        batches.push(current);
        current = { piece, extents: [], bytes: 0, end: at };
      }
    }
  }
  if (current.extents.length > 0 || batches.length === 0) batches.push(current);
  batches[batches.length - 1].end = piece.end;
  return batches;
}

/** Done piece indexes as "0-17,19,22-30": small in heartbeat details whatever the order pieces finish in. */
export const encodeIndexes = (done: Iterable<number>): string => toRuns(done);

export const decodeIndexes = (text: string): Set<number> => new Set(fromRuns(text));
