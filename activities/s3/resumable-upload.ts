// A multipart upload to S3 or an S3-compatible store (IBM COS) that survives the death of its worker. lib-storage's
// Upload cannot resume: a killed worker restarts from byte 0. Here the upload id and the confirmed parts travel in
// heartbeat details; the next attempt asks the server which parts it really holds (ListParts) and sends only the
// rest. With the details lost, the upload is found again by key (ListMultipartUploads). A failed or cancelled
// attempt leaves its upload in place for the next one; only stale duplicates are aborted.
import { CompleteMultipartUploadCommand, UploadPartCommand, type CompletedPart } from '@aws-sdk/client-s3';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { checksumsOf, Layout, partSizeFor } from './part-layout';
import { toRuns } from '../runtime/number-runs';
import { holdsFile, isNoSuchUpload, type ResumableS3 } from './server-state';
import { chooseUpload, usableState, type Chosen } from './upload-choice';

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
  req.signal?.throwIfAborted();
  const size = (await stat(req.file)).size;
  if (await holdsFile(s3, req, size, req.signal))
    return { outcome: 'exists', parts: 0, partsSent: 0, bytesSent: 0 };

  const fh = await open(req.file, 'r');
  try {
    const stated = usableState(req, size);
    const layout = new Layout(size, stated?.partSize ?? partSizeFor(size, req.partSize));
    const upload = await chooseUpload(s3, req, fh, layout, stated);
    const report = reporter(req, layout, upload);
    report(0);
    const missing = layout.numbers().filter((n) => !upload.confirmed.has(n));
    const bytesSent = await sendParts(s3, req, fh, layout, upload, missing, report);
    await completeUpload(s3, req, size, upload);
    return {
      outcome: 'uploaded',
      resumedFrom: upload.from,
      uploadId: upload.uploadId,
      parts: layout.count,
      partsSent: missing.length,
      bytesSent,
    };
  } finally {
    await fh.close();
  }
}

/** Reports the resume state and figures to `onProgress`, given the bytes this attempt has sent. */
function reporter(req: ResumableUploadRequest, layout: Layout, upload: Chosen): (sentBytes: number) => void {
  const { uploadId, confirmed } = upload;
  return (sentBytes) =>
    req.onProgress?.(
      { key: req.key, uploadId, partSize: layout.partSize, sha256: req.sha256, done: toRuns(confirmed.keys()) },
      {
        totalBytes: layout.size,
        confirmedBytes: [...confirmed.keys()].reduce((n, p) => n + layout.sizeOf(p), 0),
        sentBytes,
      },
    );
}

/** Sends the `missing` parts, `concurrency` at a time; a failed part stops the others. Returns the bytes sent. */
async function sendParts(
  s3: ResumableS3,
  req: ResumableUploadRequest,
  fh: FileHandle,
  layout: Layout,
  upload: Chosen,
  missing: number[],
  report: (sentBytes: number) => void,
): Promise<number> {
  const { signal } = req;
  signal?.throwIfAborted(); // a listener added to an aborted signal never fires
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let sentBytes = 0;
  let failure: unknown;
  const worker = async () => {
    const buffer = Buffer.allocUnsafe(layout.partSize);
    while (next < missing.length && !stop.signal.aborted) {
      const partNumber = missing[next++];
      const body = await layout.read(fh, partNumber, buffer);
      upload.confirmed.set(partNumber, await sendPart(s3, req, upload.uploadId, partNumber, body, stop.signal));
      sentBytes += body.length;
      report(sentBytes);
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
    throw failure instanceof Error && isNoSuchUpload(failure)
      ? vanished(req.bucket, req.key, upload.uploadId)
      : failure;
  return sentBytes;
}

async function sendPart(
  s3: ResumableS3,
  req: ResumableUploadRequest,
  uploadId: string,
  PartNumber: number,
  body: Buffer,
  abortSignal: AbortSignal,
): Promise<CompletedPart> {
  const { bucket: Bucket, key: Key } = req;
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
    { abortSignal },
  );
  if (!out.ETag) throw new Error(`UploadPart ${PartNumber} of ${Bucket}/${Key} returned no ETag`);
  return { PartNumber, ETag: out.ETag, ...checksumsOf(out) };
}

async function completeUpload(
  s3: ResumableS3,
  req: ResumableUploadRequest,
  size: number,
  { uploadId, confirmed }: Chosen,
): Promise<void> {
  const { bucket: Bucket, key: Key, signal } = req;
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
}

// A plain Error, so Temporal retries: the next attempt starts a new upload.
const vanished = (bucket: string, key: string, uploadId: string) =>
  new Error(
    `multipart upload ${uploadId} of ${bucket}/${key} disappeared (aborted by someone else or a lifecycle rule); retrying starts anew`,
  );
