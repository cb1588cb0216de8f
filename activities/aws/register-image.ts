// From a snapshot to AMIs: register in the target region, copy to the others, share, and (for retention) delete.
// AMI names are unique per account and region, so every create first looks the name up.
import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  ModifyImageAttributeCommand,
  ModifySnapshotAttributeCommand,
  RegisterImageCommand,
  type BootModeValues,
  type Image,
} from '@aws-sdk/client-ec2';
import type { Arch } from '../../config/schema';
import { pollUntil } from '../runtime/poll';
import type { Sends } from './clients';
import { awsErrorCode, isNotFound } from './errors';
import { toTags, type TagMap } from './tags';
import { deleteUnsharedSnapshots } from './retention';

export type RegisterEc2 = Sends<DescribeImagesCommand | RegisterImageCommand | CreateTagsCommand>;
export type CopyEc2 = Sends<DescribeImagesCommand | CopyImageCommand | CreateTagsCommand>;
export type ShareEc2 = Sends<ModifyImageAttributeCommand | ModifySnapshotAttributeCommand>;
export type DeleteImageEc2 = Sends<DescribeImagesCommand | DeregisterImageCommand | DeleteSnapshotCommand>;

export const ROOT_DEVICE = '/dev/sda1';
const EC2_ARCH: Partial<Record<Arch, 'x86_64' | 'arm64'>> = { x86_64: 'x86_64', aarch64: 'arm64' };

export interface WaitOpts {
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface RegisteredAmi {
  region: string;
  imageId: string;
  /** Snapshots behind the AMI in its region (what retention deletes with it). */
  snapshotIds: string[];
}

export async function findImageByName(ec2: Sends<DescribeImagesCommand>, name: string): Promise<Image | undefined> {
  const out = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
  return (out.Images ?? []).find((i) => i.State !== 'deregistered');
}

const snapshotsOf = (image: Image) =>
  (image.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId).filter((s): s is string => !!s);

async function waitAvailable(ec2: Sends<DescribeImagesCommand>, imageId: string, region: string, opts: WaitOpts): Promise<Image> {
  return await pollUntil(
    async () => {
      const image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
      if (image?.State === 'failed' || image?.State === 'error' || image?.State === 'invalid')
        throw new Error(`AMI ${imageId} in ${region} is ${image.State}: ${image.StateReason?.Message ?? 'no reason given'}`);
      return image?.State === 'available' ? image : undefined;
    },
    { ...opts, describe: `AMI ${imageId} in ${region} to become available` },
  );
}

export interface RegisterSpec {
  region: string;
  name: string;
  description?: string;
  arch: Arch;
  bootMode: BootModeValues;
  snapshotId: string;
  tags: TagMap;
}

export async function registerImage(ec2: RegisterEc2, spec: RegisterSpec, wait: WaitOpts): Promise<RegisteredAmi> {
  const architecture = EC2_ARCH[spec.arch];
  if (!architecture) throw new Error(`EC2 has no ${spec.arch} instances; an AMI cannot be registered for it`);
  const tags = { Name: spec.name, ...spec.tags };
  let imageId = (await findImageByName(ec2, spec.name))?.ImageId;
  if (!imageId) {
    const out = await ec2.send(
      new RegisterImageCommand({
        Name: spec.name,
        Description: spec.description,
        Architecture: architecture,
        BootMode: spec.bootMode,
        EnaSupport: true,
        VirtualizationType: 'hvm',
        RootDeviceName: ROOT_DEVICE,
        BlockDeviceMappings: [{ DeviceName: ROOT_DEVICE, Ebs: { SnapshotId: spec.snapshotId, DeleteOnTermination: true, VolumeType: 'gp3' } }],
        TagSpecifications: [{ ResourceType: 'image', Tags: toTags(tags) }],
      }),
    );
    imageId = out.ImageId!;
  }
  // Tag again: an AMI found by name may come from an attempt that died before tagging.
  await ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: toTags(tags) }));
  const image = await waitAvailable(ec2, imageId, spec.region, wait);
  // The uploaded snapshot keeps its own tags (its upload look-up depends on them); any other snapshot behind the
  // AMI (AWS uses the given one; emulators may make their own) is tagged like the AMI so retention finds it.
  const others = snapshotsOf(image).filter((s) => s !== spec.snapshotId);
  if (others.length) await ec2.send(new CreateTagsCommand({ Resources: others, Tags: toTags(tags) }));
  return { region: spec.region, imageId, snapshotIds: [spec.snapshotId, ...others] };
}

export interface CopySpec {
  sourceRegion: string;
  sourceImageId: string;
  region: string;
  name: string;
  description?: string;
  tags: TagMap;
  clientToken: string;
}

export async function copyImage(ec2: CopyEc2, spec: CopySpec, wait: WaitOpts): Promise<RegisteredAmi> {
  let imageId = (await findImageByName(ec2, spec.name))?.ImageId;
  if (!imageId) {
    const out = await ec2.send(
      new CopyImageCommand({
        SourceImageId: spec.sourceImageId,
        SourceRegion: spec.sourceRegion,
        Name: spec.name,
        Description: spec.description,
        ClientToken: spec.clientToken,
      }),
    );
    imageId = out.ImageId!;
  }
  const image = await waitAvailable(ec2, imageId, spec.region, wait);
  const snapshotIds = snapshotsOf(image);
  await ec2.send(new CreateTagsCommand({ Resources: [imageId, ...snapshotIds], Tags: toTags({ Name: spec.name, ...spec.tags }) }));
  return { region: spec.region, imageId, snapshotIds };
}

/** Launch permission on the AMI and create-volume permission on its snapshots; both are no-ops when already granted. */
export async function shareImage(ec2: ShareEc2, image: RegisteredAmi, accounts: string[]): Promise<void> {
  if (!accounts.length) return;
  await ec2.send(new ModifyImageAttributeCommand({ ImageId: image.imageId, LaunchPermission: { Add: accounts.map((UserId) => ({ UserId })) } }));
  for (const SnapshotId of image.snapshotIds)
    await ec2.send(
      new ModifySnapshotAttributeCommand({ SnapshotId, Attribute: 'createVolumePermission', OperationType: 'add', UserIds: accounts }),
    );
}

/**
 * Deregisters the AMI (if still there) and deletes its snapshots and `extraSnapshots`, except a snapshot another AMI
 * still uses; safe to run twice. Returns a line per snapshot it kept.
 */
export async function deleteImage(ec2: DeleteImageEc2, imageId: string | undefined, extraSnapshots: string[] = []): Promise<string[]> {
  const snapshots = new Set(extraSnapshots);
  if (imageId) {
    let image: Image | undefined;
    try {
      image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (image && image.State !== 'deregistered') {
      snapshotsOf(image).forEach((s) => snapshots.add(s));
      try {
        await ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
      } catch (err) {
        if (!isNotFound(err) && awsErrorCode(err) !== 'InvalidAMIID.Unavailable') throw err;
      }
    }
  }
  return await deleteUnsharedSnapshots(ec2, snapshots, imageId);
}
