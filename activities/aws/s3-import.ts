// The classic path (what `image-builder upload` does): the whole raw image to S3, ImportSnapshot through the
// `vmimport` service role, wait for the task, delete the object. Kept for accounts where the EBS direct APIs are
// not allowed; it moves every byte of the image, holes included.
import { CreateTagsCommand, DescribeImportSnapshotTasksCommand, ImportSnapshotCommand, type ImportSnapshotTask } from '@aws-sdk/client-ec2';
import { DeleteObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ApplicationFailure } from '@temporalio/common';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { waitFor } from './activity';
import type { Sends } from './clients';
import { isNotFound } from './errors';
import { findSnapshot, markUpload, uploadMark, type SnapshotEc2 } from './snapshots';
import { fromTags, toTags, type TagMap } from './tags';

/**
 * lib-storage's Upload needs the concrete client; it sends PutObject or CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload and AbortMultipartUpload. We send HeadObject and DeleteObject.
 */
export type S3ImportS3 = S3Client;
export type S3ImportEc2 = SnapshotEc2 & Sends<ImportSnapshotCommand | DescribeImportSnapshotTasksCommand | CreateTagsCommand>;

export interface S3ImportProgress {
  phase: 'upload' | 'import' | 'done';
  importTaskId?: string;
  snapshotId?: string;
  /** Bytes sent to S3 by this and earlier attempts. */
  bytesSent: number;
  /** Import task progress in percent, as AWS reports it. */
  percent?: string;
}

export interface S3ImportRequest {
  file: string;
  sha256: string;
  bucket: string;
  key: string;
  /** Identify this import (release, arch, target, image name) on the task and the snapshot. */
  tags: TagMap;
  description?: string;
  clientToken: string;
  /** The service role ImportSnapshot assumes; AWS's default is `vmimport`. */
  roleName?: string;
  resume?: S3ImportProgress;
  onProgress?: (p: S3ImportProgress) => void;
  signal?: AbortSignal;
  /** Multipart part size (default 64 MiB) and parts in flight (default 4). */
  partSize?: number;
  queueSize?: number;
  intervalMs: number;
  timeoutMs: number;
}

export interface S3UploadResult {
  bytesSent: number;
  reused: boolean;
}

/** Uploads the file unless an object with the same size and sha256 is already there. */
export async function uploadToS3(s3: S3ImportS3, req: Pick<S3ImportRequest, 'file' | 'sha256' | 'bucket' | 'key' | 'partSize' | 'queueSize' | 'signal'> & {
  onBytes?: (sent: number) => void;
}): Promise<S3UploadResult> {
  const size = (await stat(req.file)).size;
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: req.bucket, Key: req.key }));
    if (head.ContentLength === size && head.Metadata?.sha256 === req.sha256) return { bytesSent: 0, reused: true };
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const upload = new Upload({
    client: s3,
    params: { Bucket: req.bucket, Key: req.key, Body: createReadStream(req.file), ContentLength: size, Metadata: { sha256: req.sha256 } },
    partSize: req.partSize ?? 64 * 1024 * 1024,
    queueSize: req.queueSize ?? 4,
    leavePartsOnError: false,
  });
  upload.on('httpUploadProgress', (p) => req.onBytes?.(p.loaded ?? 0));
  const onAbort = () => void upload.abort();
  req.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await upload.done();
  } finally {
    req.signal?.removeEventListener('abort', onAbort);
  }
  return { bytesSent: size, reused: false };
}

const matches = (task: ImportSnapshotTask, tags: TagMap) => {
  const t = fromTags(task.Tags);
  return Object.entries(tags).every(([k, v]) => t[k] === v);
};

async function findImportTask(ec2: S3ImportEc2, tags: TagMap): Promise<ImportSnapshotTask | undefined> {
  // Tag filters on this call are not documented, so list the account's recent tasks and match their tags here.
  let NextToken: string | undefined;
  do {
    const out = await ec2.send(new DescribeImportSnapshotTasksCommand({ NextToken }));
    const live = (out.ImportSnapshotTasks ?? []).find(
      (t) => matches(t, tags) && !['deleting', 'deleted'].includes(t.SnapshotTaskDetail?.Status ?? ''),
    );
    if (live) return live;
    NextToken = out.NextToken;
  } while (NextToken);
  return undefined;
}

/** S3 upload → ImportSnapshot → wait → tag the snapshot → delete the object. Returns the snapshot id. */
export async function importViaS3(s3: S3ImportS3, ec2: S3ImportEc2, req: S3ImportRequest): Promise<{ snapshotId: string; bytesSent: number }> {
  let progress: S3ImportProgress = req.resume ?? { phase: 'upload', bytesSent: 0 };
  const report = (p: Partial<S3ImportProgress>) => req.onProgress?.((progress = { ...progress, ...p }));
  const deleteObject = () => s3.send(new DeleteObjectCommand({ Bucket: req.bucket, Key: req.key }));

  const done = await findSnapshot(ec2, req.tags);
  if (done && uploadMark(done) === 'complete') {
    await deleteObject();
    report({ phase: 'done', snapshotId: done.SnapshotId });
    return { snapshotId: done.SnapshotId!, bytesSent: progress.bytesSent };
  }

  let task = progress.importTaskId
    ? (await ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [progress.importTaskId] }))).ImportSnapshotTasks?.[0]
    : await findImportTask(ec2, req.tags);
  if (task && ['deleting', 'deleted'].includes(task.SnapshotTaskDetail?.Status ?? '')) task = undefined;
  if (!task) {
    const before = progress.bytesSent;
    const sent = await uploadToS3(s3, { ...req, onBytes: (n) => report({ phase: 'upload', bytesSent: before + n }) });
    report({ bytesSent: before + sent.bytesSent });
    const out = await ec2.send(
      new ImportSnapshotCommand({
        Description: req.description,
        DiskContainer: { Format: 'RAW', UserBucket: { S3Bucket: req.bucket, S3Key: req.key }, Description: req.description },
        ClientToken: req.clientToken,
        RoleName: req.roleName,
        TagSpecifications: [{ ResourceType: 'import-snapshot-task', Tags: toTags(req.tags) }],
      }),
    );
    if (!out.ImportTaskId) throw new Error(`ImportSnapshot of s3://${req.bucket}/${req.key} returned no task id`);
    task = { ImportTaskId: out.ImportTaskId };
  }
  const importTaskId = task.ImportTaskId!;
  report({ phase: 'import', importTaskId });

  const snapshotId = await waitFor(
    async () => {
      const t = (await ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [importTaskId] }))).ImportSnapshotTasks?.[0];
      const d = t?.SnapshotTaskDetail;
      if (!d) throw new Error(`import task ${importTaskId} disappeared`);
      if (d.Status === 'deleting' || d.Status === 'deleted') {
        const message = `import task ${importTaskId} of s3://${req.bucket}/${req.key} failed: ${d.StatusMessage ?? d.Status}`;
        // "ClientError: ..." is AWS blaming the input (format, size, the vmimport role): importing again cannot help.
        if (/^ClientError/.test(d.StatusMessage ?? '')) throw ApplicationFailure.nonRetryable(message, 'ImportError');
        throw new Error(message);
      }
      report({ percent: d.Progress });
      return d.Status === 'completed' && d.SnapshotId ? d.SnapshotId : undefined;
    },
    { what: `import task ${importTaskId}`, intervalMs: req.intervalMs, timeoutMs: req.timeoutMs, signal: req.signal },
  );
  await markUpload(ec2, snapshotId, 'complete', req.tags);
  await deleteObject();
  report({ phase: 'done', snapshotId });
  return { snapshotId, bytesSent: progress.bytesSent };
}
