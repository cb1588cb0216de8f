// Retention at an aws target (docs/retention.md): the AMIs of one definition in the target region and every copyTo
// region, found by their tags; what still runs on one; deprecation (EnableImageDeprecation, plus a tag retention
// reads back); and snapshots deleted only when no other AMI uses them.
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DisableImageDeprecationCommand,
  EnableImageDeprecationCommand,
  type Image,
} from '@aws-sdk/client-ec2';
import type { Arch } from '../../config/schema';
import type { PublishedImage } from '../types';
import { parseImageName } from '../retention/names';
import type { AwsClients, Sends } from './clients';
import { awsErrorCode, isNotFound } from './errors';
import { AWS_TAGS, fromTags, tagFilters, toTags } from './tags';
import type { AwsTarget } from './target';

/** Set when retention deprecated the AMI (its value: when); what tells "deprecated by us" from AWS's own defaults. */
export const DEPRECATED_TAG = 'bootc-release:deprecated-at';

/** Instance states in which an instance still stands on its AMI (terminated ones are gone). */
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'];
const GiB = 2 ** 30;

/**
 * An EC2 endpoint that does not implement an action: moto answers EnableImageDeprecation, DisableImageDeprecation and
 * the block-device-mapping.snapshot-id filter with a bare HTTP 500 page, not an AWS error. AWS's own 5xx errors carry
 * a code (InternalError, Unavailable) and stay retryable.
 */
export function isUnimplemented(err: unknown): boolean {
  const code = (err as { Code?: string })?.Code ?? awsErrorCode(err);
  if (code === 'NotImplemented' || code === 'InvalidAction' || code === 'UnsupportedOperation') return true;
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode ?? 0;
  return status >= 500 && !(err as { Code?: string })?.Code && (code === 'Error' || code === 'SyntaxError');
}

const snapshotsOf = (image: Image) =>
  (image.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId).filter((s): s is string => !!s);

/** The definition's AMIs at this target, one per region, each with the snapshots behind it there. */
export async function listAwsImages(clients: AwsClients, t: AwsTarget, targetName: string, definition: string): Promise<PublishedImage[]> {
  const filters = [...tagFilters({ [AWS_TAGS.target]: targetName }), { Name: 'tag-key', Values: [AWS_TAGS.releaseId] }];
  const found: PublishedImage[] = [];
  for (const region of new Set([t.region, ...t.copyTo])) {
    const ec2 = clients.ec2(region);
    const images = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }))).Images ?? [];
    const snapshots = (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters }))).Snapshots ?? [];
    for (const image of images) {
      if (image.State === 'deregistered') continue;
      const tags = fromTags(image.Tags);
      const imageName = tags[AWS_TAGS.imageName] ?? image.Name ?? '';
      const parsed = parseImageName(definition, imageName);
      if (!parsed) continue;
      // The mapping names the AMI's snapshot; the tags also find the uploaded one where an emulator made its own.
      const tagged = snapshots.filter((s) => fromTags(s.Tags)[AWS_TAGS.imageName] === imageName).map((s) => s.SnapshotId!);
      const snapshotIds = [...new Set([...snapshotsOf(image), ...tagged])];
      const volumeGiB = image.BlockDeviceMappings?.[0]?.Ebs?.VolumeSize ?? 0;
      found.push({
        arch: (tags[AWS_TAGS.arch] as Arch | undefined) ?? parsed.arch,
        target: targetName,
        kind: 'aws',
        region,
        imageId: image.ImageId!,
        name: image.Name ?? imageName,
        type: 'ami',
        size: volumeGiB * GiB,
        sha256: '',
        resources: snapshotIds.map((id) => ({ kind: 'snapshot', id, region })),
        imageName,
        releaseId: tags[AWS_TAGS.releaseId],
        ...(image.CreationDate ? { createdAt: new Date(image.CreationDate).toISOString() } : {}),
        ...(tags[DEPRECATED_TAG] ? { deprecated: true } : {}),
      });
    }
  }
  return found;
}

/** The first instance (not terminated) launched from the AMI, in a sentence. */
export async function awsImageUser(ec2: Sends<DescribeInstancesCommand>, image: PublishedImage): Promise<string | undefined> {
  const out = await ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: 'image-id', Values: [image.imageId] },
        { Name: 'instance-state-name', Values: LIVE_STATES },
      ],
    }),
  );
  const instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  if (!instances.length) return undefined;
  const [first] = instances;
  const more = instances.length > 1 ? ` and ${instances.length - 1} more` : '';
  return `instance ${first!.InstanceId} (${first!.State?.Name}) in ${image.region}${more}`;
}

/** The next whole minute at least a minute after `at`: EC2 takes no deprecation time in the past and rounds to minutes. */
export const deprecationTime = (at: string, now = Date.now()) => new Date(Math.ceil((Math.max(Date.parse(at), now) + 60_000) / 60_000) * 60_000);

type DeprecateEc2 = Sends<EnableImageDeprecationCommand | CreateTagsCommand>;

/** EnableImageDeprecation and the tag; a note when the endpoint lacks the action (moto) and only the tag was set. */
export async function deprecateAwsImage(ec2: DeprecateEc2, image: PublishedImage, at: string): Promise<string | undefined> {
  let note: string | undefined;
  try {
    await ec2.send(new EnableImageDeprecationCommand({ ImageId: image.imageId, DeprecateAt: deprecationTime(at) }));
  } catch (err) {
    if (!isUnimplemented(err)) throw err;
    note = `the EC2 endpoint does not implement EnableImageDeprecation (an emulator such as moto); marked deprecated by the tag ${DEPRECATED_TAG} only`;
  }
  await ec2.send(new CreateTagsCommand({ Resources: [image.imageId], Tags: toTags({ [DEPRECATED_TAG]: at }) }));
  return note;
}

export async function restoreAwsImage(ec2: Sends<DisableImageDeprecationCommand | DeleteTagsCommand>, image: PublishedImage): Promise<void> {
  try {
    await ec2.send(new DisableImageDeprecationCommand({ ImageId: image.imageId }));
  } catch (err) {
    if (!isUnimplemented(err)) throw err;
  }
  await ec2.send(new DeleteTagsCommand({ Resources: [image.imageId], Tags: [{ Key: DEPRECATED_TAG }] }));
}

/**
 * The AMIs (any owner's that the account can see) whose block device mappings name the snapshot. Where the endpoint
 * has no such filter (moto), the account's own AMIs are read and matched here.
 */
async function imagesUsing(ec2: Sends<DescribeImagesCommand>, snapshotId: string): Promise<Image[]> {
  try {
    const out = await ec2.send(new DescribeImagesCommand({ Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: [snapshotId] }] }));
    return out.Images ?? [];
  } catch (err) {
    if (!isUnimplemented(err)) throw err;
    const own = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'] }))).Images ?? [];
    return own.filter((i) => snapshotsOf(i).includes(snapshotId));
  }
}

/**
 * Deletes each snapshot unless an AMI other than `formerImageId` still uses it (another release's, or one someone
 * registered from it): that one stays, and a line says which AMI keeps it. Returns those lines; gone is fine.
 */
export async function deleteUnsharedSnapshots(
  ec2: Sends<DescribeImagesCommand | DeleteSnapshotCommand>,
  snapshotIds: Iterable<string>,
  formerImageId?: string,
): Promise<string[]> {
  const kept: string[] = [];
  for (const SnapshotId of snapshotIds) {
    const users = (await imagesUsing(ec2, SnapshotId)).filter((i) => i.ImageId !== formerImageId && i.State !== 'deregistered');
    if (users.length) {
      kept.push(`snapshot ${SnapshotId} kept: AMI ${users.map((i) => `${i.ImageId}${i.Name ? ` (${i.Name})` : ''}`).join(', ')} still uses it`);
      continue;
    }
    try {
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId }));
    } catch (err) {
      if (isNotFound(err)) continue;
      if (awsErrorCode(err) === 'InvalidSnapshot.InUse') kept.push(`snapshot ${SnapshotId} kept: ${(err as Error).message}`);
      else throw err;
    }
  }
  return kept;
}
