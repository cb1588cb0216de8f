// What one release made at one aws target, found again by its tags (AMIs and snapshots in the target region and
// every copyTo region, pending uploads too) and by its key prefix in the import bucket (objects and unfinished
// multipart uploads), and deleted: the cleanup of a release cancelled while it published.
import { DescribeImagesCommand, DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { PublishScope } from '../types';
import type { AwsClients } from './clients';
import { deleteImage } from './register-image';
import { sweepPrefix } from '../s3/sweep';
import { AWS_TAGS, fromTags, tagFilters } from './tags';
import type { AwsTarget } from './target';

/** The import bucket's key prefix of a release (the s3-import method puts its objects there). */
export const importPrefix = (releaseId: string) => `bootc-release/${releaseId}/`;

export async function sweepAwsRelease(clients: AwsClients, t: AwsTarget, scope: PublishScope): Promise<string[]> {
  const removed: string[] = [];
  const filters = tagFilters({ [AWS_TAGS.releaseId]: scope.releaseId, [AWS_TAGS.target]: scope.targetName, [AWS_TAGS.arch]: scope.arch });
  for (const region of new Set([t.region, ...t.copyTo])) {
    const ec2: EC2Client = clients.ec2(region);
    const images = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }))).Images ?? [];
    // By name too, as the publish finds its AMI: one whose RegisterImage answer never arrived carries no tags where the
    // cloud did not apply TagSpecifications with it (moto), and nothing tagged it afterwards. Not another release's.
    for (const name of scope.imageNames) {
      const named = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }))).Images ?? [];
      for (const image of named) {
        const owner = fromTags(image.Tags)[AWS_TAGS.releaseId];
        if ((!owner || owner === scope.releaseId) && !images.some((i) => i.ImageId === image.ImageId)) images.push(image);
      }
    }
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

/** Releases with AMIs or snapshots at this target, from their tags (release, arch, image name), in every region. */
export async function listAwsReleases(clients: AwsClients, t: AwsTarget, targetName: string): Promise<PublishScope[]> {
  const scopes = new Map<string, PublishScope>();
  const filters = [...tagFilters({ [AWS_TAGS.target]: targetName }), { Name: 'tag-key', Values: [AWS_TAGS.releaseId] }];
  const add = (tags: Record<string, string>) => {
    const releaseId = tags[AWS_TAGS.releaseId];
    const arch = tags[AWS_TAGS.arch] as PublishScope['arch'] | undefined;
    if (!releaseId || !arch) return;
    const key = `${releaseId}/${arch}`;
    const scope = scopes.get(key) ?? { releaseId, arch, targetName, imageNames: [] };
    const name = tags[AWS_TAGS.imageName];
    if (name && !scope.imageNames.includes(name)) scope.imageNames.push(name);
    scopes.set(key, scope);
  };
  for (const region of new Set([t.region, ...t.copyTo])) {
    const ec2 = clients.ec2(region);
    for (const i of (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }))).Images ?? []) add(fromTags(i.Tags));
    for (const s of (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters }))).Snapshots ?? []) add(fromTags(s.Tags));
  }
  return [...scopes.values()];
}
