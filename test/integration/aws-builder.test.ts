// The aws builder provider against moto: instances and volumes are counted through the EC2 API. Moto's instances
// run nothing, so addressOf maps each instance id to one of the rig's sshd hosts and the test logs into it.
import { DescribeInstancesCommand, DescribeSubnetsCommand, DescribeVolumesCommand, EC2Client, RegisterImageCommand, type Instance } from '@aws-sdk/client-ec2';
import { randomUUID } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { Builder } from '../../config/schema';
import { createAwsBuilderProvider, type AwsBuilder } from '../../activities/aws/builder-vm';
import { connectBuilder } from '../../activities/ssh/builder-session';
import { TAGS } from '../../activities/types';

const rig = inject('rig');
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const region = 'eu-west-1';
const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials });

async function builderConfig(extra: Record<string, unknown> = {}): Promise<AwsBuilder> {
  const ami = await ec2.send(new RegisterImageCommand({ Name: `builder-base-${randomUUID()}`, Architecture: 'x86_64' }));
  const subnets = await ec2.send(new DescribeSubnetsCommand({}));
  return Builder.parse({
    provider: 'aws',
    region,
    instanceType: 't3.micro',
    ami: ami.ImageId,
    subnet: subnets.Subnets![0].SubnetId,
    credentials: { endpoint: rig.motoEndpoint },
    ssh: { privateKeyPath: rig.privateKeyPath },
    ...extra,
  }) as AwsBuilder;
}

async function owned(releaseId: string) {
  const filters = [{ Name: `tag:${TAGS.releaseId}`, Values: [releaseId] }];
  const res = await ec2.send(new DescribeInstancesCommand({ Filters: filters }));
  const instances = (res.Reservations ?? []).flatMap((r) => r.Instances ?? []).filter((i) => i.State?.Name !== 'terminated');
  const volumes = (await ec2.send(new DescribeVolumesCommand({ Filters: filters }))).Volumes ?? [];
  return { instances, volumes };
}

// Each instance id gets the next rig host, stably.
const hostFor = new Map<string, number>();
const addressOf = (i: Instance) => {
  if (!hostFor.has(i.InstanceId!)) hostFor.set(i.InstanceId!, hostFor.size % rig.sshHosts.length);
  const h = rig.sshHosts[hostFor.get(i.InstanceId!)!];
  return { address: h.address, port: h.port, hostKey: h.hostKey };
};

const provider = createAwsBuilderProvider({ credentials, addressOf, pollIntervalMs: 50, timeoutMs: 20_000 });

describe('aws builder provider', () => {
  it('acquires one instance per release and arch, however often acquire runs, and reaches it over SSH', async () => {
    const builder = await builderConfig();
    const ctx = { releaseId: `r-${randomUUID()}`, arch: 'x86_64' as const };
    const first = await provider.acquire(builder, ctx);
    const second = await provider.acquire(builder, ctx);
    expect(second.id).toBe(first.id);
    const { instances, volumes } = await owned(ctx.releaseId);
    expect(instances.map((i) => i.InstanceId)).toEqual([first.id]);
    expect(instances[0].Tags).toEqual(expect.arrayContaining([{ Key: TAGS.arch, Value: 'x86_64' }, { Key: TAGS.step, Value: 'builder' }]));
    expect(volumes.length).toBeGreaterThan(0);
    const ssh = await connectBuilder(first, builder);
    try {
      expect((await ssh.exec(['echo', 'ok'])).stdout.trim()).toBe('ok');
    } finally {
      ssh.close();
    }
    await provider.release(builder, ctx, first);
    expect(await owned(ctx.releaseId)).toEqual({ instances: [], volumes: [] });
  });

  it('attaches a tagged data volume once, records its device, and leaves no volume after release', async () => {
    const builder = await builderConfig({ dataVolume: { device: 'attached', sizeGiB: 50 } });
    const ctx = { releaseId: `r-${randomUUID()}`, arch: 'aarch64' as const };
    const host = await provider.acquire(builder, ctx);
    const again = await provider.acquire(builder, ctx);
    const volumeId = host.resources.find((r) => r.kind === 'ebs-volume')!.id;
    expect(again.resources).toEqual(host.resources);
    // The builder finds the disk by the volume id (NVMe on Nitro) or by the attach name /dev/sdf (Xen).
    expect(host.resources).toContainEqual({ kind: 'data-volume-device', id: volumeId });
    const [volume] = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes!;
    expect(volume.Size).toBe(50);
    expect(volume.Attachments).toEqual([expect.objectContaining({ InstanceId: host.id, Device: '/dev/sdf', State: 'attached' })]);
    const dataVolumes = (await owned(ctx.releaseId)).volumes.filter((v) => v.Tags?.some((t) => t.Key === TAGS.step && t.Value === 'data-volume'));
    expect(dataVolumes.map((v) => v.VolumeId)).toEqual([volumeId]);
    await provider.release(builder, ctx, host);
    await provider.release(builder, ctx, host);
    expect(await owned(ctx.releaseId)).toEqual({ instances: [], volumes: [] });
  });

  it('lists what it owns with launch times and deletes it for the janitor', async () => {
    const builder = await builderConfig();
    const ctx = { releaseId: `r-${randomUUID()}`, arch: 'x86_64' as const };
    const host = await provider.acquire(builder, ctx);
    const mine = (await provider.listOwned!(builder)).filter((r) => r.releaseId === ctx.releaseId);
    expect(mine).toContainEqual(expect.objectContaining({ kind: 'instance', id: host.id, arch: 'x86_64', region, createdAt: expect.any(String) }));
    for (const r of mine.filter((r) => r.kind === 'instance')) await provider.deleteOwned!(builder, r);
    await provider.release(builder, ctx, host);
    expect(await owned(ctx.releaseId)).toEqual({ instances: [], volumes: [] });
  });

  it('preflight names a missing AMI and subnet with the config field to change', async () => {
    const builder = await builderConfig({ ami: 'ami-0123456789abcdef0', subnet: 'subnet-0123456789abcdef0' });
    const result = await provider.check(builder, { releaseId: 'r-check', arch: 'x86_64' });
    expect(result.ok).toBe(false);
    const text = result.messages.join('\n');
    expect(text).toMatch(/Credentials work/);
    expect(text).toMatch(/architectures\.x86_64\.builder\.ami/);
    expect(text).toMatch(/architectures\.x86_64\.builder\.subnet/);
  });

  it('preflight passes for an existing AMI and subnet', async () => {
    const builder = await builderConfig();
    const result = await provider.check(builder, { releaseId: 'r-check', arch: 'x86_64' });
    expect(result.messages.join('\n')).toMatch(/Builder conditions met/);
    expect(result.ok).toBe(true);
  });
});
