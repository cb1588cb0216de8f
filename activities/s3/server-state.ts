// What an S3 server holds for one key: the finished object, the in-progress uploads, an upload's parts. Also the
// narrow client surface the resumable upload uses: exactly these S3 actions, which are the permissions it needs.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCommand,
  type MultipartUpload,
  type Part,
} from '@aws-sdk/client-s3';
import type { Command } from '@smithy/types';

type OutputOf<C> = C extends Command<any, any, any, infer O, any> ? O : never;
/** The client surface used: exactly these S3 actions (the permissions the caller's keys need). */
export interface ResumableS3 {
  send<K extends ResumableS3Command>(
    command: K,
    options?: { abortSignal?: AbortSignal },
  ): Promise<OutputOf<K>>;
}
export type ResumableS3Command =
  | HeadObjectCommand
  | CreateMultipartUploadCommand
  | UploadPartCommand
  | ListPartsCommand
  | ListMultipartUploadsCommand
  | AbortMultipartUploadCommand
  | CompleteMultipartUploadCommand;

const statusOf = (err: unknown) =>
  (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
const nameOf = (err: unknown) =>
  (err as { name?: string; Code?: string })?.Code ?? (err as { name?: string })?.name;
// Some S3-compatible stores answer a bare 404 without a code.
export const isNoSuchUpload = (err: unknown) =>
  nameOf(err) === 'NoSuchUpload' || (statusOf(err) === 404 && nameOf(err) !== 'NoSuchBucket');

/** Whether `Key` is a finished object of `size` bytes with this sha256 in its metadata. */
export async function holdsFile(
  s3: ResumableS3,
  req: { bucket: string; key: string; sha256: string },
  size: number,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: req.bucket, Key: req.key }), {
      abortSignal: signal,
    });
    return head.ContentLength === size && head.Metadata?.sha256 === req.sha256;
  } catch (err) {
    if (statusOf(err) === 404 || nameOf(err) === 'NotFound' || nameOf(err) === 'NoSuchKey') return false;
    throw err;
  }
}

/** The upload's parts, or undefined when the upload no longer exists (completed or aborted). */
export async function listParts(
  s3: ResumableS3,
  Bucket: string,
  Key: string,
  UploadId: string,
  signal?: AbortSignal,
): Promise<Part[] | undefined> {
  const parts: Part[] = [];
  let PartNumberMarker: string | undefined;
  try {
    for (;;) {
      const out = await s3.send(new ListPartsCommand({ Bucket, Key, UploadId, PartNumberMarker }), {
        abortSignal: signal,
      });
      parts.push(...(out.Parts ?? []));
      if (!out.IsTruncated || !out.NextPartNumberMarker) return parts;
      PartNumberMarker = out.NextPartNumberMarker;
    }
  } catch (err) {
    if (isNoSuchUpload(err)) return undefined;
    throw err;
  }
}

/** In-progress uploads of exactly `Key` (the prefix also matches longer keys), in listing order. */
export async function listUploads(
  s3: ResumableS3,
  Bucket: string,
  Key: string,
  signal?: AbortSignal,
): Promise<MultipartUpload[]> {
  const uploads: MultipartUpload[] = [];
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (;;) {
    const out = await s3.send(
      new ListMultipartUploadsCommand({ Bucket, Prefix: Key, KeyMarker, UploadIdMarker }),
      { abortSignal: signal },
    );
    uploads.push(...(out.Uploads ?? []).filter((u) => u.Key === Key && u.UploadId));
    if (!out.IsTruncated) return uploads;
    KeyMarker = out.NextKeyMarker;
    UploadIdMarker = out.NextUploadIdMarker;
  }
}
