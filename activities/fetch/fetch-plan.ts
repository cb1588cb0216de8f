// How a fetch is cut up: the remote file's data extents grouped into pieces of about the same amount of data.
// A piece is the unit of parallelism (pieces are dealt to streams), of resumption (heartbeat details list the done
// pieces) and of hashing (pieces cover the file end to end, holes included, so they are hashed in order).
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

const MiB = 1024 * 1024;
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

/** Done piece indexes as "0-17,19,22-30": small in heartbeat details whatever the order pieces finish in. */
export const encodeIndexes = (done: Iterable<number>): string => toRuns(done);

export const decodeIndexes = (text: string): Set<number> => new Set(fromRuns(text));
