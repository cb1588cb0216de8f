// A multipart upload to S3 or an S3-compatible store (IBM COS) that survives the death of its worker. lib-storage's
// Upload cannot resume: a killed worker restarts from byte 0. Here the upload id and the confirmed parts travel in
// heartbeat details; the next attempt asks the server which parts it really holds (ListParts) and sends only the
// rest. With the details lost, the upload is found again by key (ListMultipartUploads). A failed or cancelled
// attempt leaves its upload in place for the next one; only stale duplicates are aborted.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type CompletedPart,
  type MultipartUpload,
} from '@aws-sdk/client-s3';
import { open, stat } from 'node:fs/promises';
import { checksumsOf, Layout, MAX_PARTS, partSizeFor, verified } from './part-layout';
import { toRuns } from '../runtime/number-runs';
import { holdsFile, isNoSuchUpload, listParts, listUploads, type ResumableS3 } from './server-state';

export { MAX_PARTS, MIN_PART_SIZE, partSizeFor } from './part-layout';
export type { ResumableS3, ResumableS3Command } from './server-state';

/** What a retry needs to continue; small and secret-free, so it fits in heartbeat details. */
export interface MultipartResumeState {
  key: string;
  uploadId: string;
  partSize: number;
  /** The file's sha256: a state for other bytes is not resumed. */
  sha256: string;
  /** Part numbers the server confirmed, as runs ("1-12,15"). ETags are read back with ListParts on resume. */
  done: string;
}

export interface UploadFigures {
  totalBytes: number;
  /** Bytes in parts the server holds (this and earlier attempts). */
  confirmedBytes: number;
  /** Bytes this attempt sent in confirmed parts. */
  sentBytes: number;
}

export interface ResumableUploadRequest {
  bucket: string;
  key: string;
  file: string;
  sha256: string;
  /** Object metadata besides `sha256` (e.g. the release id). */
  metadata?: Record<string, string>;
  contentType?: string;
  /** Default 64 MiB; raised to 5 MiB at least and to what keeps the upload within 10,000 parts. */
  partSize?: number;
  /** Parts in flight (default 4); each holds one part in memory. */
  concurrency?: number;
  /** The state an earlier attempt reported (from its heartbeat details). */
  resume?: MultipartResumeState;
  /** After the upload is chosen and after every confirmed part: heartbeat `state`. */
  onProgress?: (state: MultipartResumeState, figures: UploadFigures) => void;
  /** Stops promptly; the upload stays in place for the next attempt. */
  signal?: AbortSignal;
  log?: (message: string) => void;
}

export interface ResumableUploadResult {
  /** `exists`: an object with this size and sha256 was already there, nothing was sent. */
  outcome: 'exists' | 'uploaded';
  /** Where the continued upload came from: the given state, or a listing by key (state lost). */
  resumedFrom?: 'state' | 'listing';
  uploadId?: string;
  parts: number;
  partsSent: number;
  bytesSent: number;
}

/** Uploads `file` to `bucket/key` in parts, continuing an earlier attempt's upload where there is one. */
export async function uploadResumable(
  s3: ResumableS3,
  req: ResumableUploadRequest,
): Promise<ResumableUploadResult> {
  const { bucket: Bucket, key: Key, signal } = req;
  const log = req.log ?? (() => undefined);
  signal?.throwIfAborted();
  const size = (await stat(req.file)).size;
  if (await holdsFile(s3, req, size, signal))
    return { outcome: 'exists', parts: 0, partsSent: 0, bytesSent: 0 };

  const fh = await open(req.file, 'r');
  try {
    const r = req.resume;
    const usable =
      r?.key === Key &&
      r.sha256 === req.sha256 &&
      Number.isSafeInteger(r.partSize) &&
      r.partSize > 0 &&
      size / r.partSize <= MAX_PARTS;
    const stated = usable ? r : undefined;
    const layout = new Layout(size, stated?.partSize ?? partSizeFor(size, req.partSize));
    let chosen: Chosen | undefined;
    if (stated) {
      const parts = await listParts(s3, Bucket, Key, stated.uploadId, signal);
      if (parts) chosen = { uploadId: stated.uploadId, from: 'state', confirmed: layout.keep(parts) };
      else log(`Upload ${stated.uploadId} of ${Key} is gone; looking for another.`);
    }
    const listed = await listUploads(s3, Bucket, Key, signal);
    if (!chosen && listed.length) {
      // Several uploads of one key come from a CreateMultipartUpload whose answer was lost, or a zombie attempt:
      // continue the one holding the most of our parts, the newest on a tie (S3 lists a key's uploads oldest first;
      // moto gives them all one timestamp, so the listing order decides there).
      let best: { upload: MultipartUpload; parts: Map<number, CompletedPart> } | undefined;
      for (const upload of listed) {
        const parts = await listParts(s3, Bucket, Key, upload.UploadId!, signal);
        if (!parts) continue;
        const fitting = layout.keep(parts);
        const newer = (upload.Initiated?.getTime() ?? 0) >= (best?.upload.Initiated?.getTime() ?? 0);
        if (!best || fitting.size > best.parts.size || (fitting.size === best.parts.size && newer))
          best = { upload, parts: fitting };
      }
      // Without our state we do not know which bytes these parts hold: keep only parts whose ETag is our MD5.
      if (best)
        chosen = {
          uploadId: best.upload.UploadId!,
          from: 'listing',
          confirmed: await verified(fh, layout, best.parts, signal),
        };
    }
    for (const u of listed)
      if (u.UploadId && u.UploadId !== chosen?.uploadId) {
        log(`Aborting stale upload ${u.UploadId} of ${Key}.`);
        await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: u.UploadId }), {
          abortSignal: signal,
        });
      }
    if (chosen)
      log(
        `Resuming upload ${chosen.uploadId} of ${Key}: the server holds ${chosen.confirmed.size} of ${layout.count} parts.`,
      );
    else {
      const out = await s3.send(
        new CreateMultipartUploadCommand({
          Bucket,
          Key,
          ContentType: req.contentType ?? 'application/octet-stream',
          Metadata: { ...req.metadata, sha256: req.sha256 },
          // What lib-storage asks for too; a part's checksum must then come back in CompleteMultipartUpload.
          ChecksumAlgorithm: 'CRC32',
        }),
        { abortSignal: signal },
      );
      if (!out.UploadId) throw new Error(`CreateMultipartUpload of ${Bucket}/${Key} returned no upload id`);
      chosen = { uploadId: out.UploadId, confirmed: new Map() };
    }
    const { uploadId, confirmed } = chosen;

    let sentBytes = 0;
    const report = () =>
      req.onProgress?.(
        { key: Key, uploadId, partSize: layout.partSize, sha256: req.sha256, done: toRuns(confirmed.keys()) },
        {
          totalBytes: size,
          confirmedBytes: [...confirmed.keys()].reduce((n, p) => n + layout.sizeOf(p), 0),
          sentBytes,
        },
      );
    report();

    const missing = layout.numbers().filter((n) => !confirmed.has(n));
    signal?.throwIfAborted(); // a listener added to an aborted signal never fires
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      const buffer = Buffer.allocUnsafe(layout.partSize);
      while (next < missing.length && !stop.signal.aborted) {
        const PartNumber = missing[next++];
        const body = await layout.read(fh, PartNumber, buffer);
        const out = await s3.send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId: uploadId,
            PartNumber,
            Body: body,
            ContentLength: body.length,
            ChecksumAlgorithm: 'CRC32',
          }),
          { abortSignal: stop.signal },
        );
        if (!out.ETag) throw new Error(`UploadPart ${PartNumber} of ${Bucket}/${Key} returned no ETag`);
        confirmed.set(PartNumber, { PartNumber, ETag: out.ETag, ...checksumsOf(out) });
        sentBytes += body.length;
        report();
      }
    };
    const workers = Array.from({ length: Math.max(1, Math.min(req.concurrency ?? 4, missing.length)) }, () =>
      worker().catch((err: unknown) => {
        failure ??= err;
        stop.abort(err); // the other parts would be lost work anyway if this attempt fails; the next one resumes
      }),
    );
    try {
      await Promise.all(workers);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    signal?.throwIfAborted();
    if (failure)
      throw failure instanceof Error && isNoSuchUpload(failure) ? vanished(Bucket, Key, uploadId) : failure;

    const Parts = [...confirmed.values()].sort((a, b) => a.PartNumber! - b.PartNumber!);
    try {
      await s3.send(
        new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: uploadId, MultipartUpload: { Parts } }),
        { abortSignal: signal },
      );
    } catch (err) {
      // A completion whose answer was lost leaves no upload but the finished object.
      if (!isNoSuchUpload(err) || !(await holdsFile(s3, req, size, signal)))
        throw isNoSuchUpload(err) ? vanished(Bucket, Key, uploadId) : err;
    }
    return {
      outcome: 'uploaded',
      resumedFrom: chosen.from,
      uploadId,
      parts: layout.count,
      partsSent: missing.length,
      bytesSent: sentBytes,
    };
  } finally {
    await fh.close();
  }
}

interface Chosen {
  uploadId: string;
  from?: 'state' | 'listing';
  confirmed: Map<number, CompletedPart>;
}

// A plain Error, so Temporal retries: the next attempt starts a new upload.
const vanished = (bucket: string, key: string, uploadId: string) =>
  new Error(
    `multipart upload ${uploadId} of ${bucket}/${key} disappeared (aborted by someone else or a lifecycle rule); retrying starts anew`,
  );
