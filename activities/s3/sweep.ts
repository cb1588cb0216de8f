// Everything under one key prefix of a bucket, finished objects and unfinished multipart uploads alike: what a
// cancelled release leaves in S3 (the import hop) or IBM COS. Multipart uploads carry no tags, so the release id in
// the key prefix is how they are found, by the cancelled release itself or later by the janitor.
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';

type SweepCommand = AbortMultipartUploadCommand | DeleteObjectCommand | ListMultipartUploadsCommand | ListObjectsV2Command;
export interface SweepS3 {
  send(command: SweepCommand): Promise<unknown>;
}

/** Aborts every multipart upload and deletes every object under prefix; returns what it removed. */
export async function sweepPrefix(s3: SweepS3, bucket: string, prefix: string): Promise<string[]> {
  const removed: string[] = [];
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  do {
    const page = (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker, UploadIdMarker }))) as {
      Uploads?: { Key?: string; UploadId?: string }[];
      IsTruncated?: boolean;
      NextKeyMarker?: string;
      NextUploadIdMarker?: string;
    };
    for (const u of page.Uploads ?? []) {
      if (!u.Key?.startsWith(prefix) || !u.UploadId) continue;
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
      removed.push(`multipart upload s3://${bucket}/${u.Key} (${u.UploadId})`);
    }
    [KeyMarker, UploadIdMarker] = page.IsTruncated ? [page.NextKeyMarker, page.NextUploadIdMarker] : [undefined, undefined];
  } while (KeyMarker);
  let ContinuationToken: string | undefined;
  do {
    const page = (await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }))) as {
      Contents?: { Key?: string }[];
      NextContinuationToken?: string;
    };
    for (const o of page.Contents ?? []) {
      if (!o.Key?.startsWith(prefix)) continue;
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
      removed.push(`object s3://${bucket}/${o.Key}`);
    }
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  return removed;
}
