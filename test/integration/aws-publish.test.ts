// The aws publish target on moto, EBS direct path: AMIs, copies, shares and deletes are counted through the EC2 API;
// RegisterImage's parameters are asserted on the recorded request, because moto keeps only the name.
import {
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotAttributeCommand,
  DescribeSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { Target, type Arch } from '../../config/schema';
import { createAwsTarget, type AwsPublishProgress, type AwsTarget } from '../../activities/aws/target';
import { AWS_TAGS } from '../../activities/aws/tags';
import type { Candidate, PublishRequest } from '../../activities/types';
import { fakeCredentials, recorder, sparseImage, tempDir } from './aws-helpers';

const rig = inject('rig');
const MiB = 1024 * 1024;
const ec2 = (region: string) => new EC2Client({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials });

function request(target: AwsTarget, arch: Arch = 'x86_64'): PublishRequest & { target: AwsTarget } {
  const file = sparseImage(path.join(tempDir(rig.dir, 'aws-publish'), 'disk.raw'), 64 * MiB, [
    { offset: 0, length: 2 * MiB },
    { offset: 30 * MiB, length: 1 * MiB },
  ]);
  const releaseId = `r-${randomUUID()}`;
  return {
    releaseId,
    arch,
    targetName: 'aws-prod',
    target,
    imageName: `copr-builder-${releaseId}-${arch}-20250101_000000`,
    artifact: {
      arch,
      type: 'ami',
      path: file,
      size: statSync(file).size,
      dataBytes: 3 * MiB,
      sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
      stagingQueue: 'staging',
    },
  };
}

const awsTarget = (extra: Record<string, unknown> = {}) =>
  Target.parse({ kind: 'aws', region: 'us-east-2', credentials: { endpoint: rig.motoEndpoint }, ...extra }) as AwsTarget;

async function leftovers(req: PublishRequest, regions: string[]) {
  let images = 0;
  let snapshots = 0;
  for (const region of regions) {
    const c = ec2(region);
    images += (await c.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [req.imageName] }] }))).Images!.length;
    snapshots += (
      await c.send(new DescribeSnapshotsCommand({ Filters: [{ Name: `tag:${AWS_TAGS.releaseId}`, Values: [req.releaseId] }] }))
    ).Snapshots!.length;
  }
  return { images, snapshots };
}

describe('aws publish target (ebs-direct)', () => {
  it('registers the AMI with the parameters EC2 needs, copies it, shares it, and finds it all again on a second publish', async () => {
    const rec = recorder();
    const driver = createAwsTarget({ ...rec.deps, pollIntervalMs: 20 });
    const target = awsTarget({ copyTo: ['eu-central-1'], shareWith: ['123456789012'], bootMode: 'uefi' });
    const req = request(target);
    const candidates = await driver.publish(req);
    expect(candidates.map((c) => c.region)).toEqual(['us-east-2', 'eu-central-1']);
    const [source, copy] = candidates;
    const snapshotId = rec.of('StartSnapshotCommand').length ? rec.of('PutSnapshotBlockCommand')[0].input.SnapshotId : undefined;
    expect(rec.of('RegisterImageCommand').map((c) => c.input)).toEqual([
      expect.objectContaining({
        Name: req.imageName,
        Architecture: 'x86_64',
        BootMode: 'uefi',
        EnaSupport: true,
        VirtualizationType: 'hvm',
        RootDeviceName: '/dev/sda1',
        BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { SnapshotId: snapshotId, DeleteOnTermination: true, VolumeType: 'gp3' } }],
      }),
    ]);
    expect(source.resources).toContainEqual({ kind: 'snapshot', id: snapshotId, region: 'us-east-2' });
    expect(rec.of('CopyImageCommand').map((c) => c.input)).toEqual([
      expect.objectContaining({ SourceImageId: source.imageId, SourceRegion: 'us-east-2', Name: req.imageName }),
    ]);
    expect(candidates.every((c) => c.type === 'ami' && c.sha256 === req.artifact.sha256 && c.name === req.imageName)).toBe(true);

    for (const c of candidates) {
      const perms = await ec2(c.region!).send(new DescribeImageAttributeCommand({ ImageId: c.imageId, Attribute: 'launchPermission' }));
      expect(perms.LaunchPermissions).toEqual([{ UserId: '123456789012' }]);
      for (const r of c.resources!) {
        const attr = await ec2(c.region!).send(new DescribeSnapshotAttributeCommand({ SnapshotId: r.id, Attribute: 'createVolumePermission' }));
        expect(attr.CreateVolumePermissions).toEqual([{ UserId: '123456789012' }]);
      }
    }
    const copied = (await ec2('eu-central-1').send(new DescribeImagesCommand({ ImageIds: [copy.imageId] }))).Images![0];
    expect(copied.Tags).toContainEqual({ Key: AWS_TAGS.releaseId, Value: req.releaseId });

    rec.clear();
    const again = await driver.publish(req);
    expect(again.map((c) => c.imageId)).toEqual(candidates.map((c) => c.imageId));
    for (const cmd of ['StartSnapshotCommand', 'PutSnapshotBlockCommand', 'RegisterImageCommand', 'CopyImageCommand'])
      expect(rec.of(cmd)).toEqual([]);
    expect((await leftovers(req, ['us-east-2', 'eu-central-1'])).images).toBe(2);

    for (const c of candidates) await driver.delete(target, c);
    for (const c of candidates) await driver.delete(target, c);
    expect(await leftovers(req, ['us-east-2', 'eu-central-1'])).toEqual({ images: 0, snapshots: 0 });
  });

  it('registers aarch64 images as arm64', async () => {
    const rec = recorder();
    const driver = createAwsTarget({ ...rec.deps, pollIntervalMs: 20 });
    const target = awsTarget();
    const [candidate] = await driver.publish(request(target, 'aarch64'));
    expect(rec.of('RegisterImageCommand')[0].input).toMatchObject({ Architecture: 'arm64', BootMode: 'uefi-preferred' });
    await driver.delete(target, candidate);
  });

  it('resumes a cancelled publish from its heartbeat without re-sending confirmed blocks or making a second snapshot or AMI', async () => {
    const rec = recorder();
    const driver = createAwsTarget({ ...rec.deps, pollIntervalMs: 20, blockConcurrency: 2 });
    const target = awsTarget();
    const req = request(target);
    const first = new MockActivityEnvironment();
    let last: AwsPublishProgress | undefined;
    first.on('heartbeat', (d: AwsPublishProgress) => {
      last = d;
      if ((d.upload?.bytesSent ?? 0) >= 2 * MiB) first.cancel();
    });
    await expect(first.run(() => driver.publish(req))).rejects.toBeInstanceOf(CancelledFailure);
    expect(last?.upload?.snapshotId).toBeDefined();
    const confirmed = new Set(rec.of('PutSnapshotBlockCommand').filter((c) => c.ok).map((c) => c.input.BlockIndex));
    expect(confirmed.size).toBeGreaterThanOrEqual(4);
    expect(rec.of('RegisterImageCommand')).toEqual([]);
    rec.clear();

    const second = new MockActivityEnvironment({ heartbeatDetails: last });
    const [candidate] = (await second.run(() => driver.publish(req))) as Candidate[];
    expect(rec.of('PutSnapshotBlockCommand').filter((c) => confirmed.has(c.input.BlockIndex))).toEqual([]);
    expect(rec.of('StartSnapshotCommand')).toEqual([]);
    expect(rec.of('RegisterImageCommand')).toHaveLength(1);
    expect(candidate.resources).toContainEqual({ kind: 'snapshot', id: last!.upload!.snapshotId, region: 'us-east-2' });
    expect(await leftovers(req, ['us-east-2'])).toEqual({ images: 1, snapshots: candidate.resources!.length });
    await driver.delete(target, candidate);
    expect(await leftovers(req, ['us-east-2'])).toEqual({ images: 0, snapshots: 0 });
  });

  it('refuses an artifact that is not an ami without touching AWS', async () => {
    const rec = recorder();
    const driver = createAwsTarget(rec.deps);
    const req = request(awsTarget());
    await expect(driver.publish({ ...req, artifact: { ...req.artifact, type: 'qcow2' } })).rejects.toThrow(/aws targets take ami artifacts/);
    expect(rec.calls).toEqual([]);
  });
});
