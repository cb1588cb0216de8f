// Staging an image in IBM Cloud Object Storage, which speaks S3: HMAC keys (referenced by env var name), the COS
// endpoint, path-style addressing. The object records its size and sha256 in metadata, so a retried publish that
// finds the same object skips the upload; a half-done multipart upload from a dead worker is continued: its state
// rides in the heartbeat, and the retry sends only the parts COS does not hold.
import { DeleteObjectCommand, HeadBucketCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import type { Target } from '../../config/schema';
import { partSizeFor, uploadResumable, type MultipartResumeState } from '../s3/resumable-upload';
import { activityLog, heartbeat, previousDetails } from '../runtime/heartbeat';
import { FailureType } from '../failures';

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
        FailureType.Config,
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
      FailureType.Permission,
    );
  if (err.name === 'NoSuchBucket' || (status === 404 && what === 'bucket check'))
    return ApplicationFailure.nonRetryable(`${msg}; create the bucket or change ${field}.cosBucket`, FailureType.Config);
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

/** The heartbeat of an upload in progress: `upload` is what a retry needs to continue it. */
export interface CosUploadBeat {
  stage: 'cos-upload';
  key: string;
  loaded: number;
  total: number;
  upload?: MultipartResumeState;
}

/** The multipart state the previous attempt of this activity left for `key`, if it was uploading it. */
export function previousCosUpload(key: string): MultipartResumeState | undefined {
  const details = previousDetails<Partial<CosUploadBeat>>();
  return details?.stage === 'cos-upload' && details.upload?.key === key ? details.upload : undefined;
}

/** Uploads `file` unless the same bytes are already there, continuing an earlier attempt's upload. Returns whether it sent anything. */
export async function uploadToCos(
  s3: S3Client,
  obj: CosObject,
  opts: { field: string; partSize?: number; queueSize?: number; resume?: MultipartResumeState; signal?: AbortSignal },
): Promise<{ uploaded: boolean; bytesSent: number }> {
  const { bucket, key } = obj;
  const beat = (b: Omit<CosUploadBeat, 'stage' | 'key' | 'total'>) => heartbeat({ stage: 'cos-upload', key, ...b, total: obj.size });
  try {
    const out = await uploadResumable(s3, {
      bucket,
      key,
      file: obj.file,
      sha256: obj.sha256,
      metadata: { ...obj.metadata, size: String(obj.size) },
      // 16 MiB by default (grown to stay within S3's 10,000 parts); queueSize × partSize bytes are buffered at most.
      partSize: partSizeFor(obj.size, opts.partSize ?? 16 * 1024 * 1024),
      concurrency: opts.queueSize ?? 4,
      resume: opts.resume,
      signal: opts.signal,
      log: activityLog,
      onProgress: (upload, figures) => beat({ loaded: figures.confirmedBytes, upload }),
    });
    if (out.outcome === 'exists') {
      activityLog(`COS object ${bucket}/${key} already holds this image; not uploading again.`);
      beat({ loaded: obj.size });
      return { uploaded: false, bytesSent: 0 };
    }
    activityLog(`Uploaded ${out.bytesSent} bytes in ${out.partsSent} of ${out.parts} parts to COS ${bucket}/${key}.`);
    return { uploaded: true, bytesSent: out.bytesSent };
  } catch (err) {
    if (opts.signal?.aborted) throw (opts.signal.reason as Error | undefined) ?? err;
    throw cosFailure(err, `upload of ${key}`, bucket, opts.field);
  }
}

export async function deleteCosObject(s3: S3Client, bucket: string, key: string, field: string): Promise<void> {
  try {
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  } catch (err) {
    throw cosFailure(err, `delete of ${key}`, bucket, field);
  }
}
