// The extra EBS volume a builder gets when `dataVolume.device: attached`: created in the instance's zone, tagged,
// attached, and set to go away with the instance (DeleteOnTermination) so a lost worker cannot leak it.
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeVolumesCommand,
  ModifyInstanceAttributeCommand,
  type Instance,
  type Volume,
} from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import type { Sends } from './clients';
import { pollUntil } from '../runtime/poll';
import { tagFilters, toTags, type TagMap } from './tags';

export type DataVolumeEc2 = Sends<DescribeVolumesCommand | CreateVolumeCommand | AttachVolumeCommand | ModifyInstanceAttributeCommand>;

/** The block device name the volume is attached under; Nitro instances show it as an NVMe disk whose serial is the volume id. */
export const DATA_VOLUME_DEVICE = '/dev/sdf';
export const DEFAULT_DATA_VOLUME_GIB = 100;

const LIVE_STATES = ['creating', 'available', 'in-use'];

export interface DataVolumeRequest {
  instance: Instance;
  sizeGiB: number;
  tags: TagMap;
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

async function findVolume(ec2: DataVolumeEc2, tags: TagMap): Promise<Volume | undefined> {
  const out = await ec2.send(
    new DescribeVolumesCommand({ Filters: [...tagFilters(tags), { Name: 'status', Values: LIVE_STATES }] }),
  );
  return out.Volumes?.[0];
}

async function describeVolume(ec2: DataVolumeEc2, id: string): Promise<Volume> {
  const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [id] }));
  const v = out.Volumes?.[0];
  if (!v) throw new Error(`volume ${id} disappeared`);
  return v;
}

/** Creates (or finds) and attaches the data volume; returns its id. */
export async function ensureDataVolume(ec2: DataVolumeEc2, req: DataVolumeRequest): Promise<string> {
  const instanceId = req.instance.InstanceId!;
  let volume = await findVolume(ec2, req.tags);
  if (!volume) {
    const token = createHash('sha256').update(`${instanceId}/data-volume`).digest('hex').slice(0, 64);
    volume = await ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: req.instance.Placement?.AvailabilityZone,
        Size: req.sizeGiB,
        VolumeType: 'gp3',
        ClientToken: token,
        TagSpecifications: [{ ResourceType: 'volume', Tags: toTags(req.tags) }],
      }),
    );
  }
  const volumeId = volume.VolumeId!;
  const wait = { intervalMs: req.intervalMs, timeoutMs: req.timeoutMs, signal: req.signal };
  volume = await pollUntil(
    async () => {
      const v = await describeVolume(ec2, volumeId);
      const attachedHere = v.Attachments?.some((a) => a.InstanceId === instanceId);
      return v.State === 'available' || attachedHere ? v : undefined;
    },
    { ...wait, describe: `volume ${volumeId} to become available` },
  );
  if (!volume.Attachments?.some((a) => a.InstanceId === instanceId))
    await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: DATA_VOLUME_DEVICE }));
  await pollUntil(
    async () => {
      const v = await describeVolume(ec2, volumeId);
      return v.Attachments?.some((a) => a.InstanceId === instanceId && a.State === 'attached') ? v : undefined;
    },
    { ...wait, describe: `volume ${volumeId} to attach to ${instanceId}` },
  );
  await ec2.send(
    new ModifyInstanceAttributeCommand({
      InstanceId: instanceId,
      BlockDeviceMappings: [{ DeviceName: DATA_VOLUME_DEVICE, Ebs: { DeleteOnTermination: true } }],
    }),
  );
  return volumeId;
}
