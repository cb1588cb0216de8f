// What one release made at one aws target, found again by its tags (AMIs and snapshots in the target region and
// every copyTo region, pending uploads too) and by its key prefix in the import bucket (objects and unfinished
// multipart uploads), and deleted: the cleanup of a release cancelled while it published.
import { DescribeImagesCommand, DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { PublishScope } from '../types';
import type { AwsClients } from './clients';
import { deleteImage } from './register-image';
import { sweepPrefix } from '../s3/sweep';
import { AWS_TAGS, tagFilters } from './tags';
import type { AwsTarget } from './target';

/** The import bucket's key prefix of a release (the s3-import method puts its objects there). */
export const importPrefix = (releaseId: string) => `bootc-release/${releaseId}/`;

export async function sweepAwsRelease(clients: AwsClients, t: AwsTarget, scope: PublishScope): Promise<string[]> {
  const removed: string[] = [];
  const filters = tagFilters({ [AWS_TAGS.releaseId]: scope.releaseId, [AWS_TAGS.target]: scope.targetName, [AWS_TAGS.arch]: scope.arch });
  for (const region of new Set([t.region, ...t.copyTo])) {
    const ec2: EC2Client = clients.ec2(region);
    const images = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }))).Images ?? [];
    for (const image of images) {
      await deleteImage(ec2, image.ImageId);
      removed.push(`AMI ${image.ImageId} (${image.Name}) in ${region}`);
    }
    // After the AMIs: their snapshots (a copy's too), and snapshots no AMI was registered from yet, pending included.
    const snapshots = (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters }))).Snapshots ?? [];
    for (const s of snapshots) {
      await deleteImage(ec2, undefined, [s.SnapshotId!]);
      removed.push(`snapshot ${s.SnapshotId} (${s.State}) in ${region}`);
    }
  }
  if (t.method === 's3-import' && t.bucket) {
    const names = scope.imageNames.map((n) => `${importPrefix(scope.releaseId)}${n}.`);
    const s3 = clients.s3();
    for (const prefix of names) removed.push(...(await sweepPrefix(s3, t.bucket, prefix)));
  }
  return removed;
}
