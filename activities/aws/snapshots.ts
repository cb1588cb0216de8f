// Finding, waiting for and marking the EBS snapshot an upload produces. The `upload` tag records how far the upload
// got, so a retry after a lost heartbeat knows whether to resume, complete, or reuse the snapshot.
import { CreateTagsCommand, DescribeSnapshotsCommand, type Snapshot } from '@aws-sdk/client-ec2';
import type { Sends } from './clients';
import { pollUntil } from '../runtime/poll';
import { AWS_TAGS, fromTags, tagFilters, toTags, type TagMap } from './tags';
import { isNotFound } from './errors';

export type SnapshotEc2 = Sends<DescribeSnapshotsCommand | CreateTagsCommand>;

/** `completing`: every block is confirmed and CompleteSnapshot may have been sent; `complete`: it was accepted. */
export type UploadMark = 'completing' | 'complete';

export const uploadMark = (s: Snapshot): UploadMark | undefined => fromTags(s.Tags)[AWS_TAGS.upload] as UploadMark | undefined;

export async function findSnapshot(ec2: SnapshotEc2, tags: TagMap): Promise<Snapshot | undefined> {
  const out = await ec2.send(
    new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [...tagFilters(tags), { Name: 'status', Values: ['pending', 'completed'] }] }),
  );
  // Prefer the one that got furthest, should an earlier race have left two.
  const rank = (s: Snapshot) => ({ complete: 2, completing: 1, none: 0 })[uploadMark(s) ?? 'none'];
  return (out.Snapshots ?? []).sort((a, b) => rank(b) - rank(a))[0];
}

export async function describeSnapshot(ec2: SnapshotEc2, id: string): Promise<Snapshot | undefined> {
  try {
    return (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }))).Snapshots?.[0];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function markUpload(ec2: SnapshotEc2, id: string, mark: UploadMark, extra: TagMap = {}) {
  await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: toTags({ ...extra, [AWS_TAGS.upload]: mark }) }));
}

export async function waitSnapshotCompleted(
  ec2: SnapshotEc2,
  id: string,
  opts: { intervalMs: number; timeoutMs: number; signal?: AbortSignal },
): Promise<Snapshot> {
  return await pollUntil(
    async () => {
      const s = await describeSnapshot(ec2, id);
      if (!s) throw new Error(`snapshot ${id} disappeared`);
      if (s.State === 'error') throw new Error(`snapshot ${id} failed: ${s.StateMessage ?? 'no message'}`);
      return s.State === 'completed' ? s : undefined;
    },
    { ...opts, describe: `snapshot ${id} to complete` },
  );
}
