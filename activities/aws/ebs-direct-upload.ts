// A raw disk image straight into an EBS snapshot with the EBS direct APIs (what AWS's coldsnap does): no S3 hop, no
// vmimport role, no import task, and only data blocks travel. Resumable: progress names the snapshot and which
// blocks are confirmed; a retry reuses the snapshot and sends only the rest.
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from '@aws-sdk/client-ebs';
import { DeleteSnapshotCommand } from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { Sends } from './clients';
import { zeroBlocks } from '../artifacts/zero-blocks';
import { describeSnapshot, findSnapshot, markUpload, uploadMark, type SnapshotEc2 } from './snapshots';
import { toTags, type TagMap } from './tags';

export type EbsDirectEbs = Sends<StartSnapshotCommand | PutSnapshotBlockCommand | CompleteSnapshotCommand>;
export type EbsDirectEc2 = SnapshotEc2 & Sends<DeleteSnapshotCommand>;

/** The EBS direct APIs' fixed block size. */
export const EBS_BLOCK_SIZE = 512 * 1024;
const GiB = 1024 ** 3;

/** Small enough for a heartbeat: blocks below `next` are confirmed (or all-zero), except those listed in `inFlight`. */
export interface EbsUploadProgress {
  snapshotId: string;
  next: number;
  inFlight: number[];
  bytesSent: number;
  done?: boolean;
}

export interface EbsUploadRequest {
  file: string;
  /** Identify this upload (release, arch, target, image name): they find the snapshot again when progress is lost. */
  tags: TagMap;
  description?: string;
  /** Idempotency token for StartSnapshot. */
  clientToken: string;
  resume?: EbsUploadProgress;
  onProgress?: (p: EbsUploadProgress) => void;
  signal?: AbortSignal;
  /** Blocks in flight at once (default 16). */
  concurrency?: number;
  /** Minutes without a written block before AWS cancels the pending snapshot (default 240). */
  timeoutMinutes?: number;
}

export interface EbsUploadResult {
  snapshotId: string;
  /** Block bytes sent by this call and the attempts before it (from progress). */
  bytesSent: number;
  blocksSent: number;
  dataBlocks: number;
  volumeSizeGiB: number;
  /** The snapshot was found complete: nothing was sent. */
  reused: boolean;
}

type Start = { snapshotId: string; confirmed: (i: number) => boolean; bytesSent: number; mark?: 'completing' | 'complete' };

async function startOrResume(ebs: EbsDirectEbs, ec2: EbsDirectEc2, req: EbsUploadRequest, volumeSizeGiB: number): Promise<Start> {
  const r = req.resume;
  if (r?.snapshotId) {
    const s = await describeSnapshot(ec2, r.snapshotId);
    if (s && s.State !== 'error') {
      const inFlight = new Set(r.inFlight);
      const mark = r.done ? 'complete' : uploadMark(s);
      return { snapshotId: r.snapshotId, confirmed: (i) => i < r.next && !inFlight.has(i), bytesSent: r.bytesSent, mark };
    }
  }
  const found = await findSnapshot(ec2, req.tags);
  if (found?.State === 'error') await ec2.send(new DeleteSnapshotCommand({ SnapshotId: found.SnapshotId }));
  else if (found) return { snapshotId: found.SnapshotId!, confirmed: () => false, bytesSent: 0, mark: uploadMark(found) };
  const out = await ebs.send(
    new StartSnapshotCommand({
      VolumeSize: volumeSizeGiB,
      Tags: toTags(req.tags),
      Description: req.description,
      ClientToken: req.clientToken,
      Timeout: req.timeoutMinutes ?? 240,
    }),
  );
  if (out.BlockSize && out.BlockSize !== EBS_BLOCK_SIZE && out.BlockSize !== 512)
    // moto reports 512 (bytes); AWS reports 524288. Anything else would make our indices wrong.
    throw new Error(`StartSnapshot reported block size ${out.BlockSize}, expected ${EBS_BLOCK_SIZE}`);
  return { snapshotId: out.SnapshotId!, confirmed: () => false, bytesSent: 0 };
}

export async function uploadEbsDirect(ebs: EbsDirectEbs, ec2: EbsDirectEc2, req: EbsUploadRequest): Promise<EbsUploadResult> {
  const size = (await stat(req.file)).size;
  const volumeSizeGiB = Math.max(1, Math.ceil(size / GiB));
  const start = await startOrResume(ebs, ec2, req, volumeSizeGiB);
  const { snapshotId } = start;
  const base = { snapshotId, volumeSizeGiB };
  if (start.mark === 'complete') {
    const bytesSent = start.bytesSent;
    req.onProgress?.({ snapshotId, next: Math.ceil(size / EBS_BLOCK_SIZE), inFlight: [], bytesSent, done: true });
    return { ...base, bytesSent, blocksSent: 0, dataBlocks: 0, reused: true };
  }
  // Every block is confirmed once CompleteSnapshot may have been sent: walk the file only for the checksum.
  const confirmed = start.mark === 'completing' ? () => true : start.confirmed;
  const sender = new BlockSender(ebs, req, snapshotId, start.bytesSent);
  await sender.sendAll(confirmed);
  const dataBlocks = await completeSnapshot(ebs, ec2, snapshotId, sender.digests, start.mark);
  const { next, bytesSent, blocksSent } = sender;
  req.onProgress?.({ snapshotId, next, inFlight: [], bytesSent, done: true });
  return { ...base, bytesSent, blocksSent, dataBlocks, reused: false };
}

/** Walks the file's blocks, sends the data blocks not yet confirmed, `concurrency` at a time; keeps every digest. */
class BlockSender {
  /** The sha256 of every data block, sent now or before: CompleteSnapshot's checksum covers them all. */
  readonly digests = new Map<number, Buffer>();
  private readonly inFlight = new Map<number, Promise<void>>();
  // Dispatched and not yet acknowledged, failed ones included: never reported as confirmed.
  private readonly unconfirmed = new Set<number>();
  next = 0;
  blocksSent = 0;
  private failure: unknown;

  constructor(
    private readonly ebs: EbsDirectEbs,
    private readonly req: EbsUploadRequest,
    private readonly snapshotId: string,
    public bytesSent: number,
  ) {}

  private report(): void {
    const { snapshotId, next, bytesSent } = this;
    this.req.onProgress?.({ snapshotId, next, inFlight: [...this.unconfirmed], bytesSent });
  }

  async sendAll(confirmed: (index: number) => boolean): Promise<void> {
    const concurrency = this.req.concurrency ?? 16;
    for await (const block of zeroBlocks(this.req.file, EBS_BLOCK_SIZE, this.req.signal)) {
      if (this.failure) break;
      if (block.data) {
        const digest = createHash('sha256').update(block.data).digest();
        this.digests.set(block.index, digest);
        if (!confirmed(block.index)) {
          while (this.inFlight.size >= concurrency) await Promise.race(this.inFlight.values());
          if (this.failure) break;
          // In flight past the next read, which reuses the scanner's buffer.
          this.put(block.index, Buffer.from(block.data), digest);
        }
      }
      this.next = block.index + 1;
    }
    await Promise.all(this.inFlight.values());
    if (this.failure) throw this.failure;
    this.req.signal?.throwIfAborted();
    this.report();
  }

  private put(index: number, data: Buffer, digest: Buffer): void {
    const put = this.ebs
      .send(
        new PutSnapshotBlockCommand({
          SnapshotId: this.snapshotId,
          BlockIndex: index,
          BlockData: data,
          DataLength: data.length,
          Checksum: digest.toString('base64'),
          ChecksumAlgorithm: 'SHA256',
        }),
        { abortSignal: this.req.signal },
      )
      .then(
        () => {
          this.bytesSent += data.length;
          this.blocksSent++;
          this.unconfirmed.delete(index);
          this.inFlight.delete(index);
          this.report();
        },
        (err: unknown) => {
          this.failure ??= err;
          this.inFlight.delete(index);
        },
      );
    this.unconfirmed.add(index);
    this.inFlight.set(index, put);
  }
}

/** CompleteSnapshot with the blocks' aggregate checksum, between the snapshot's upload marks; returns the data blocks. */
async function completeSnapshot(
  ebs: EbsDirectEbs,
  ec2: EbsDirectEc2,
  snapshotId: string,
  digests: Map<number, Buffer>,
  mark: Start['mark'],
): Promise<number> {
  // LINEAR aggregation: SHA256 over the raw SHA256 digests of the written blocks, in block index order.
  const ordered = [...digests.keys()].sort((a, b) => a - b);
  const aggregate = createHash('sha256');
  for (const i of ordered) aggregate.update(digests.get(i)!);
  await markUpload(ec2, snapshotId, 'completing');
  try {
    await ebs.send(
      new CompleteSnapshotCommand({
        SnapshotId: snapshotId,
        ChangedBlocksCount: ordered.length,
        Checksum: aggregate.digest('base64'),
        ChecksumAlgorithm: 'SHA256',
        ChecksumAggregationMethod: 'LINEAR',
      }),
    );
  } catch (err) {
    // A retry after CompleteSnapshot was accepted gets an error from the second one; the snapshot state tells.
    const s = mark === 'completing' ? await describeSnapshot(ec2, snapshotId) : undefined;
    if (!s || s.State === 'error') throw err;
  }
  await markUpload(ec2, snapshotId, 'complete');
  return ordered.length;
}
