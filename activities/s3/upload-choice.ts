// Which multipart upload an attempt continues: the one its earlier attempt stated, else the one listed for the key
// that holds the most of our parts, else a new one. Every other upload of the key is aborted as stale.
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type CompletedPart,
  type MultipartUpload,
} from '@aws-sdk/client-s3';
import type { FileHandle } from 'node:fs/promises';
import { Layout, MAX_PARTS, verified } from './part-layout';
import { listParts, listUploads, type ResumableS3 } from './server-state';
import type { MultipartResumeState, ResumableUploadRequest } from './resumable-upload';

/** The upload this attempt continues (or started), and the parts the server holds of it. */
export interface Chosen {
  uploadId: string;
  from?: 'state' | 'listing';
  confirmed: Map<number, CompletedPart>;
}

const logOf = (req: ResumableUploadRequest) => req.log ?? (() => undefined);

/** The earlier attempt's state, when it is for this key and these bytes and its part size still fits. */
export function usableState(req: ResumableUploadRequest, size: number): MultipartResumeState | undefined {
  const r = req.resume;
  const usable =
    r?.key === req.key &&
    r.sha256 === req.sha256 &&
    Number.isSafeInteger(r.partSize) &&
    r.partSize > 0 &&
    size / r.partSize <= MAX_PARTS;
  return usable ? r : undefined;
}

/** Continues the stated upload, else the best one listed for the key, else starts one; aborts the others. */
export async function chooseUpload(
  s3: ResumableS3,
  req: ResumableUploadRequest,
  fh: FileHandle,
  layout: Layout,
  stated: MultipartResumeState | undefined,
): Promise<Chosen> {
  const { bucket, key, signal } = req;
  let chosen = stated && (await fromState(s3, req, layout, stated));
  const listed = await listUploads(s3, bucket, key, signal);
  if (!chosen && listed.length) chosen = await fromListing(s3, req, fh, layout, listed);
  await abortStale(s3, req, listed, chosen?.uploadId);
  if (!chosen) return startUpload(s3, req);
  logOf(req)(
    `Resuming upload ${chosen.uploadId} of ${key}: the server holds ${chosen.confirmed.size} of ${layout.count} parts.`,
  );
  return chosen;
}

async function fromState(
  s3: ResumableS3,
  req: ResumableUploadRequest,
  layout: Layout,
  stated: MultipartResumeState,
): Promise<Chosen | undefined> {
  const parts = await listParts(s3, req.bucket, req.key, stated.uploadId, req.signal);
  if (parts) return { uploadId: stated.uploadId, from: 'state', confirmed: layout.keep(parts) };
  logOf(req)(`Upload ${stated.uploadId} of ${req.key} is gone; looking for another.`);
  return undefined;
}

async function fromListing(
  s3: ResumableS3,
  req: ResumableUploadRequest,
  fh: FileHandle,
  layout: Layout,
  listed: MultipartUpload[],
): Promise<Chosen | undefined> {
  // Several uploads of one key come from a CreateMultipartUpload whose answer was lost, or a zombie attempt:
  // continue the one holding the most of our parts, the newest on a tie (S3 lists a key's uploads oldest first;
  // moto gives them all one timestamp, so the listing order decides there).
  let best: { upload: MultipartUpload; parts: Map<number, CompletedPart> } | undefined;
  for (const upload of listed) {
    const parts = await listParts(s3, req.bucket, req.key, upload.UploadId!, req.signal);
    if (!parts) continue;
    const fitting = layout.keep(parts);
    const newer = (upload.Initiated?.getTime() ?? 0) >= (best?.upload.Initiated?.getTime() ?? 0);
    if (!best || fitting.size > best.parts.size || (fitting.size === best.parts.size && newer))
      best = { upload, parts: fitting };
  }
  // Without our state we do not know which bytes these parts hold: keep only parts whose ETag is our MD5.
  if (!best) return undefined;
  return {
    uploadId: best.upload.UploadId!,
    from: 'listing',
    confirmed: await verified(fh, layout, best.parts, req.signal),
  };
}

async function abortStale(
  s3: ResumableS3,
  req: ResumableUploadRequest,
  listed: MultipartUpload[],
  keptId: string | undefined,
): Promise<void> {
  const { bucket: Bucket, key: Key, signal } = req;
  for (const u of listed)
    if (u.UploadId && u.UploadId !== keptId) {
      logOf(req)(`Aborting stale upload ${u.UploadId} of ${Key}.`);
      await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: u.UploadId }), {
        abortSignal: signal,
      });
    }
}

async function startUpload(s3: ResumableS3, req: ResumableUploadRequest): Promise<Chosen> {
  const { bucket: Bucket, key: Key } = req;
  const out = await s3.send(
    new CreateMultipartUploadCommand({
      Bucket,
      Key,
      ContentType: req.contentType ?? 'application/octet-stream',
      Metadata: { ...req.metadata, sha256: req.sha256 },
      // What lib-storage asks for too; a part's checksum must then come back in CompleteMultipartUpload.
      ChecksumAlgorithm: 'CRC32',
    }),
    { abortSignal: req.signal },
  );
  if (!out.UploadId) throw new Error(`CreateMultipartUpload of ${Bucket}/${Key} returned no upload id`);
  return { uploadId: out.UploadId, confirmed: new Map() };
}
