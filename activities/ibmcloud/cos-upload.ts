// Staging an image in IBM Cloud Object Storage, which speaks S3: HMAC keys (referenced by env var name), the COS
// endpoint, path-style addressing. The object records its size and sha256 in metadata, so a retried publish that
// finds the same object skips the upload; a half-done multipart upload from a dead worker is aborted, not left to bill.
import { createReadStream } from 'node:fs';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ApplicationFailure } from '@temporalio/common';
import type { Target } from '../../config/schema';
import type { Progress } from './progress';

export type IbmCloudTarget = Extract<Target, { kind: 'ibmcloud' }>;

export const cosRegionOf = (target: IbmCloudTarget) => target.cosRegion ?? target.regions[0];
export const cosEndpointOf = (target: IbmCloudTarget) =>
  target.cosEndpoint ?? `https://s3.${cosRegionOf(target)}.cloud-object-storage.appdomain.cloud`;

/** What the VPC image import reads: `cos://<region>/<bucket>/<key>`. */
export const cosHref = (region: string, bucket: string, key: string) => `cos://${region}/${bucket}/${key}`;
export function parseCosHref(href: string): { region: string; bucket: string; key: string } | undefined {
  const m = /^cos:\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(href);
  return m ? { region: m[1], bucket: m[2], key: m[3] } : undefined;
}

export function cosClient(target: IbmCloudTarget, field: string, env: NodeJS.ProcessEnv = process.env): S3Client {
  const accessKeyId = env[target.cosAccessKeyEnv];
  const secretAccessKey = env[target.cosSecretKeyEnv];
  for (const [name, value, key] of [
    [target.cosAccessKeyEnv, accessKeyId, 'cosAccessKeyEnv'],
    [target.cosSecretKeyEnv, secretAccessKey, 'cosSecretKeyEnv'],
  ] as const)
    if (!value)
      throw ApplicationFailure.nonRetryable(
        `ibmcloud: environment variable ${name} is not set on the worker; set it to the COS HMAC key or change ${field}.${key}`,
        'ConfigError',
      );
  return new S3Client({
    endpoint: cosEndpointOf(target),
    region: cosRegionOf(target),
    credentials: { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! },
    forcePathStyle: true,
  });
}

/** S3 errors in the words of the config: who refused what, and which field to change. */
export function cosFailure(err: unknown, what: string, bucket: string, field: string): Error {
  if (!(err instanceof S3ServiceException)) return err as Error;
  const status = err.$metadata.httpStatusCode ?? 0;
  const msg = `ibmcloud: COS ${what} in bucket ${bucket} failed: ${err.name} (${status})`;
  if (status === 403 || err.name === 'AccessDenied' || err.name === 'InvalidAccessKeyId' || err.name === 'SignatureDoesNotMatch')
    return ApplicationFailure.nonRetryable(
      `${msg}; give the HMAC keys in ${field}.cosAccessKeyEnv/cosSecretKeyEnv Writer access to bucket ${bucket}`,
      'PermissionError',
    );
  if (err.name === 'NoSuchBucket' || (status === 404 && what === 'bucket check'))
    return ApplicationFailure.nonRetryable(`${msg}; create the bucket or change ${field}.cosBucket`, 'ConfigError');
  return new Error(msg);
}

export async function checkBucket(s3: S3Client, bucket: string, field: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (err) {
    throw cosFailure(err, 'bucket check', bucket, field);
  }
}

export interface CosObject {
  bucket: string;
  key: string;
  file: string;
  size: number;
  sha256: string;
  metadata?: Record<string, string>;
}

/** Uploads `file` unless the same bytes are already there. Returns whether it sent anything. */
export async function uploadToCos(
  s3: S3Client,
  obj: CosObject,
  progress: Progress,
  opts: { field: string; partSize?: number; queueSize?: number },
): Promise<{ uploaded: boolean }> {
  const { bucket, key } = obj;
  const existing = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch((err: unknown) => {
    if (err instanceof S3ServiceException && (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound')) return undefined;
    throw cosFailure(err, `head of ${key}`, bucket, opts.field);
  });
  if (existing && existing.ContentLength === obj.size && existing.Metadata?.sha256 === obj.sha256) {
    progress.log(`COS object ${bucket}/${key} already holds this image; not uploading again.`);
    progress.heartbeat({ stage: 'cos-upload', key, loaded: obj.size, total: obj.size });
    return { uploaded: false };
  }
  await abortStaleUploads(s3, bucket, key, opts.field);
  // S3 allows 10,000 parts: large images get larger parts. queueSize × partSize bytes are buffered at most.
  const partSize = Math.max(opts.partSize ?? 16 * 1024 * 1024, Math.ceil(obj.size / 9_000));
  const upload = new Upload({
    client: s3,
    params: {
      Bucket: bucket,
      Key: key,
      Body: createReadStream(obj.file),
      ContentLength: obj.size,
      ContentType: 'application/octet-stream',
      Metadata: { ...obj.metadata, sha256: obj.sha256, size: String(obj.size) },
    },
    partSize,
    queueSize: opts.queueSize ?? 4,
  });
  upload.on('httpUploadProgress', (p) => progress.heartbeat({ stage: 'cos-upload', key, loaded: p.loaded ?? 0, total: obj.size }));
  const onAbort = () => void upload.abort().catch(() => undefined);
  progress.signal?.addEventListener('abort', onAbort, { once: true });
  progress.log(`Uploading ${obj.size} bytes to COS ${bucket}/${key}…`);
  try {
    await upload.done();
  } catch (err) {
    if (progress.signal?.aborted) throw progress.signal.reason ?? err;
    throw cosFailure(err, `upload of ${key}`, bucket, opts.field);
  } finally {
    progress.signal?.removeEventListener('abort', onAbort);
  }
  return { uploaded: true };
}

async function abortStaleUploads(s3: S3Client, bucket: string, key: string, field: string): Promise<void> {
  try {
    const { Uploads = [] } = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    for (const u of Uploads)
      if (u.Key === key && u.UploadId) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId }));
  } catch (err) {
    throw cosFailure(err, `cleanup of unfinished uploads of ${key}`, bucket, field);
  }
}

export async function deleteCosObject(s3: S3Client, bucket: string, key: string, field: string): Promise<void> {
  try {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    throw cosFailure(err, `delete of ${key}`, bucket, field);
  }
}
