// The classic path (what `image-builder upload` does): the whole raw image to S3, ImportSnapshot through the
// `vmimport` service role, wait for the task, delete the object. Kept for accounts where the EBS direct APIs are
// not allowed; it moves every byte of the image, holes included.
import { CreateTagsCommand, DescribeImportSnapshotTasksCommand, ImportSnapshotCommand, type ImportSnapshotTask } from '@aws-sdk/client-ec2';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { uploadResumable, type MultipartResumeState, type ResumableS3Command } from '../s3/resumable-upload';
import { pollUntil } from '../runtime/poll';
import type { Sends } from './clients';
import { findSnapshot, markUpload, uploadMark, type SnapshotEc2 } from './snapshots';
import { AWS_TAGS, fromTags, toTags, type TagMap } from './tags';
import { FailureType } from '../failures';

/** The resumable multipart upload's actions (HeadObject, Create/Upload/List/Complete/Abort multipart) and DeleteObject. */
export type S3ImportS3 = Sends<ResumableS3Command | DeleteObjectCommand>;
export type S3ImportEc2 = SnapshotEc2 & Sends<ImportSnapshotCommand | DescribeImportSnapshotTasksCommand | CreateTagsCommand>;

export interface S3ImportProgress {
  phase: 'upload' | 'import' | 'done';
  importTaskId?: string;
  snapshotId?: string;
  /** Bytes sent to S3 by this and earlier attempts. */
  bytesSent: number;
  /** The multipart upload in progress: a retry continues it, sending only the parts S3 does not hold. */
  multipart?: MultipartResumeState;
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
  /** Bytes this call sent (parts an earlier attempt left on S3 are not sent again). */
  bytesSent: number;
  reused: boolean;
}

/**
 * Uploads the file unless an object with the same size and sha256 is already there, continuing the multipart upload
 * of an earlier attempt (from `resume`, else found by key). A cancelled or failed upload is left for the next attempt.
 */
export async function uploadToS3(
  s3: S3ImportS3,
  req: Pick<S3ImportRequest, 'file' | 'sha256' | 'bucket' | 'key' | 'partSize' | 'queueSize' | 'signal'> & {
    metadata?: Record<string, string>;
    resume?: MultipartResumeState;
    onBytes?: (sent: number) => void;
    /** The resume state (for the heartbeat) and the bytes this call has sent, after every confirmed part. */
    onState?: (state: MultipartResumeState, sentBytes: number) => void;
  },
): Promise<S3UploadResult> {
  const out = await uploadResumable(s3, {
    bucket: req.bucket,
    key: req.key,
    file: req.file,
    sha256: req.sha256,
    metadata: req.metadata,
    partSize: req.partSize,
    concurrency: req.queueSize,
    resume: req.resume,
    signal: req.signal,
    onProgress: (state, figures) => {
      req.onState?.(state, figures.sentBytes);
      req.onBytes?.(figures.sentBytes);
    },
  });
  return { bytesSent: out.bytesSent, reused: out.outcome === 'exists' };
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
    const releaseId = req.tags[AWS_TAGS.releaseId];
    const sent = await uploadToS3(s3, {
      ...req,
      metadata: releaseId ? { 'release-id': releaseId } : undefined,
      resume: progress.multipart,
      onState: (multipart, n) => report({ phase: 'upload', multipart, bytesSent: before + n }),
    });
    report({ bytesSent: before + sent.bytesSent, multipart: undefined });
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

  const snapshotId = await pollUntil(
    async () => {
      const t = (await ec2.send(new DescribeImportSnapshotTasksCommand({ ImportTaskIds: [importTaskId] }))).ImportSnapshotTasks?.[0];
      const d = t?.SnapshotTaskDetail;
      if (!d) throw new Error(`import task ${importTaskId} disappeared`);
      if (d.Status === 'deleting' || d.Status === 'deleted') {
        const message = `import task ${importTaskId} of s3://${req.bucket}/${req.key} failed: ${d.StatusMessage ?? d.Status}`;
        // "ClientError: ..." is AWS blaming the input (format, size, the vmimport role): importing again cannot help.
        if (/^ClientError/.test(d.StatusMessage ?? '')) throw ApplicationFailure.nonRetryable(message, FailureType.AwsImportFailed);
        throw new Error(message);
      }
      report({ percent: d.Progress });
      return d.Status === 'completed' && d.SnapshotId ? d.SnapshotId : undefined;
    },
    { describe: `import task ${importTaskId}`, intervalMs: req.intervalMs, timeoutMs: req.timeoutMs, signal: req.signal },
  );
  await markUpload(ec2, snapshotId, 'complete', req.tags);
  await deleteObject();
  report({ phase: 'done', snapshotId });
  return { snapshotId, bytesSent: progress.bytesSent };
}
