// Builder provider `aws`: one EC2 instance per (release, architecture), found again by its tags before any launch,
// so a retried or re-run acquire never starts a second one; release terminates it and sweeps its volumes.
import {
  DeleteVolumeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  TerminateInstancesCommand,
  type Filter,
  type Instance,
} from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import type { Builder } from '../../config/schema';
import type { BuilderHost, BuilderProvider, CheckResult, OwnedResource, StepContext } from '../types';
import { resourceName, TAGS } from '../types';
import { activitySignal, heartbeat } from '../runtime/heartbeat';
import { pollUntil } from '../runtime/poll';
import { awsClients, type AwsClientDeps, type Sends } from './clients';
import { awsPreflight } from './preflight';
import { consoleHostKey } from './console-host-keys';
import { DEFAULT_DATA_VOLUME_GIB, ensureDataVolume, type DataVolumeEc2 } from './data-volume';
import { awsErrorCode, classifyAwsError, isNotFound } from './errors';
import { fromTags, tagFilters, toTags, type TagMap } from './tags';

export type AwsBuilder = Extract<Builder, { provider: 'aws' }>;

export type BuilderEc2 = DataVolumeEc2 &
  Sends<
    | DescribeInstancesCommand
    | RunInstancesCommand
    | StartInstancesCommand
    | TerminateInstancesCommand
    | DescribeVolumesCommand
    | DeleteVolumeCommand
    | DescribeImagesCommand
    | DescribeSubnetsCommand
    | DescribeSecurityGroupsCommand
    | DescribeKeyPairsCommand
    | GetConsoleOutputCommand
  >;

export interface AwsBuilderDeps extends AwsClientDeps {
  /**
   * Where SSH reaches an instance. Production: its public, else private, IP. The test rig maps instance ids to its
   * sshd hosts here, because emulated instances run nothing.
   */
  addressOf?: (instance: Instance) => { address: string; port?: number; hostKey?: string } | undefined;
  /** Poll interval and limit for state transitions (instance running, volume attached, terminated). */
  pollIntervalMs?: number;
  timeoutMs?: number;
}

const ARCH_TO_EC2: Record<string, string> = { x86_64: 'x86_64', aarch64: 'arm64' };
const LIVE_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped'];
const BUILDER_STEPS = ['builder', 'data-volume'];

const stepTags = (ctx: StepContext, step: string): TagMap => ({
  [TAGS.releaseId]: ctx.releaseId,
  [TAGS.arch]: ctx.arch,
  [TAGS.step]: step,
  Name: resourceName(ctx.releaseId, ctx.arch, step),
});
const ownerFilters = (ctx: StepContext) => tagFilters({ [TAGS.releaseId]: ctx.releaseId, [TAGS.arch]: ctx.arch });

export function createAwsBuilderProvider(deps: AwsBuilderDeps = {}): BuilderProvider<AwsBuilder> {
  const intervalMs = deps.pollIntervalMs ?? 5_000;
  const timeoutMs = deps.timeoutMs ?? 10 * 60_000;
  const ec2Of = (b: AwsBuilder): BuilderEc2 => awsClients(b.region, b.credentials, deps).ec2();
  const field = (ctx: StepContext, f: string) => `architectures.${ctx.arch}.builder.${f}`;

  async function instances(ec2: BuilderEc2, filters: Filter[]): Promise<Instance[]> {
    const found: Instance[] = [];
    let NextToken: string | undefined;
    do {
      const out = await ec2.send(new DescribeInstancesCommand({ Filters: filters, NextToken }));
      for (const r of out.Reservations ?? []) found.push(...(r.Instances ?? []));
      NextToken = out.NextToken;
    } while (NextToken);
    return found;
  }

  async function launch(ec2: BuilderEc2, b: AwsBuilder, ctx: StepContext): Promise<Instance> {
    // The token makes a RunInstances whose response was lost return the same instance; it changes once that
    // instance is gone, so a later acquire (after a release) launches a fresh one.
    const gone = await instances(ec2, [...ownerFilters(ctx), { Name: 'instance-state-name', Values: ['shutting-down', 'terminated'] }]);
    const token = createHash('sha256').update(`${ctx.releaseId}/${ctx.arch}/builder/${gone.length}`).digest('hex').slice(0, 64);
    const tags = toTags(stepTags(ctx, 'builder'));
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: b.ami,
        InstanceType: b.instanceType as never,
        MinCount: 1,
        MaxCount: 1,
        KeyName: b.keyName,
        SubnetId: b.subnet,
        SecurityGroupIds: b.securityGroups.length ? b.securityGroups : undefined,
        IamInstanceProfile: b.instanceProfile
          ? b.instanceProfile.startsWith('arn:') ? { Arn: b.instanceProfile } : { Name: b.instanceProfile }
          : undefined,
        InstanceInitiatedShutdownBehavior: 'terminate',
        MetadataOptions: { HttpTokens: 'required' },
        ClientToken: token,
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tags },
          { ResourceType: 'volume', Tags: tags },
        ],
      }),
    );
    const instance = out.Instances?.[0];
    if (!instance?.InstanceId) throw new Error(`RunInstances in ${b.region} returned no instance`);
    return instance;
  }

  async function waitRunning(ec2: BuilderEc2, id: string, signal?: AbortSignal): Promise<Instance> {
    heartbeat({ instanceId: id });
    return await pollUntil(
      async () => {
        const [i] = await instances(ec2, [{ Name: 'instance-id', Values: [id] }]);
        const state = i?.State?.Name;
        if (state === 'shutting-down' || state === 'terminated')
          throw new Error(`builder instance ${id} is ${state} (${i?.StateReason?.Message ?? 'no reason given'})`);
        return state === 'running' ? i : undefined;
      },
      { describe: `instance ${id} to run`, intervalMs, timeoutMs, signal },
    );
  }

  async function acquire(b: AwsBuilder, ctx: StepContext): Promise<BuilderHost> {
    const ec2 = ec2Of(b);
    const signal = activitySignal();
    try {
      const existing = await instances(ec2, [
        ...ownerFilters(ctx),
        { Name: `tag:${TAGS.step}`, Values: ['builder'] },
        { Name: 'instance-state-name', Values: LIVE_INSTANCE_STATES },
      ]);
      let instance = existing.find((i) => i.State?.Name === 'running' || i.State?.Name === 'pending') ?? existing[0];
      if (!instance) instance = await launch(ec2, b, ctx);
      const id = instance.InstanceId!;
      if (instance.State?.Name === 'stopped') await ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
      instance = await waitRunning(ec2, id, signal);
      const resources: BuilderHost['resources'] = [{ kind: 'instance', id, region: b.region }];
      if (b.dataVolume?.device === 'attached') {
        const volumeId = await ensureDataVolume(ec2, {
          instance,
          sizeGiB: b.dataVolume.sizeGiB ?? DEFAULT_DATA_VOLUME_GIB,
          tags: stepTags(ctx, 'data-volume'),
          intervalMs,
          timeoutMs,
          signal,
        });
        // The volume id, not the attach name: on Nitro instances the disk shows up as NVMe, found by the id.
        resources.push({ kind: 'ebs-volume', id: volumeId, region: b.region }, { kind: 'data-volume-device', id: volumeId });
      }
      const mapped = deps.addressOf?.(instance);
      const address = mapped?.address ?? instance.PublicIpAddress ?? instance.PrivateIpAddress;
      if (!address) throw new Error(`builder instance ${id} has no IP address yet`);
      return {
        provider: 'aws',
        id,
        address,
        port: mapped?.port ?? b.ssh.port,
        user: b.ssh.user,
        // Without one here, the activity pins the first key the builder presents (activities/ssh/host-key-pinning.ts).
        hostKey: mapped?.hostKey ?? b.ssh.hostKey ?? (await consoleHostKey(ec2, id)),
        resources,
      };
    } catch (err) {
      throw classifyAwsError(err, `${ctx.arch} builder in ${b.region}`, field(ctx, 'ami / subnet / securityGroups / credentials'));
    }
  }

  async function release(b: AwsBuilder, ctx: StepContext, host: BuilderHost): Promise<void> {
    const ec2 = ec2Of(b);
    const signal = activitySignal();
    const tagged = await instances(ec2, [...ownerFilters(ctx), { Name: `tag:${TAGS.step}`, Values: ['builder'] }]);
    const ids = new Set(tagged.filter((i) => i.State?.Name !== 'terminated').map((i) => i.InstanceId!));
    if (host.id.startsWith('i-')) ids.add(host.id);
    if (ids.size) {
      try {
        await ec2.send(new TerminateInstancesCommand({ InstanceIds: [...ids] }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      heartbeat({ terminating: [...ids] });
      await pollUntil(
        async () => {
          const left = await instances(ec2, [{ Name: 'instance-id', Values: [...ids] }]);
          return left.every((i) => i.State?.Name === 'terminated') ? true : undefined;
        },
        { describe: `instances ${[...ids].join(', ')} to terminate`, intervalMs, timeoutMs, signal },
      );
    }
    // Volumes whose DeleteOnTermination did not take (an acquire that died before setting it) are swept here.
    const extra = host.resources.filter((r) => r.kind === 'ebs-volume').map((r) => r.id);
    await pollUntil(
      async () => {
        const byTag = await ec2.send(
          new DescribeVolumesCommand({ Filters: [...ownerFilters(ctx), { Name: `tag:${TAGS.step}`, Values: BUILDER_STEPS }] }),
        );
        const volumes = [...(byTag.Volumes ?? [])];
        for (const id of extra.filter((v) => !volumes.some((x) => x.VolumeId === v))) {
          try {
            volumes.push(...((await ec2.send(new DescribeVolumesCommand({ VolumeIds: [id] }))).Volumes ?? []));
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
        const live = volumes.filter((v) => v.State !== 'deleted' && v.State !== 'deleting');
        for (const v of live.filter((v) => v.State === 'available')) await deleteVolume(ec2, v.VolumeId!);
        return live.some((v) => v.State !== 'available') ? undefined : true;
      },
      { describe: `volumes of ${ctx.arch} builder to detach and delete`, intervalMs, timeoutMs, signal },
    );
  }

  async function deleteVolume(ec2: BuilderEc2, id: string) {
    try {
      await ec2.send(new DeleteVolumeCommand({ VolumeId: id }));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async function check(b: AwsBuilder, ctx: StepContext): Promise<CheckResult> {
    const clients = awsClients(b.region, b.credentials, deps);
    const ec2: BuilderEc2 = clients.ec2();
    const { result, probe, credentials } = awsPreflight(`${ctx.arch} builder`, (f) => field(ctx, f));
    await credentials(clients);
    if (!result.ok) return result;
    await probe(`Checking AMI ${b.ami} in ${b.region}…`, 'ami', async () => {
      const out = await ec2.send(new DescribeImagesCommand({ ImageIds: [b.ami] }));
      const image = out.Images?.[0];
      if (!image) throw Object.assign(new Error(`${b.ami} not found in ${b.region}`), { name: 'InvalidAMIID.NotFound' });
      const want = ARCH_TO_EC2[ctx.arch];
      if (want && image.Architecture && image.Architecture !== want)
        throw Object.assign(new Error(`${b.ami} is ${image.Architecture}, the ${ctx.arch} builder needs ${want}`), { name: 'InvalidParameterValue' });
      return `AMI ${b.ami} exists (${image.Name ?? 'unnamed'}).`;
    });
    if (b.subnet)
      await probe(`Checking subnet ${b.subnet}…`, 'subnet', async () => {
        await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [b.subnet!] }));
        return `Subnet ${b.subnet} exists.`;
      });
    if (b.securityGroups.length)
      await probe(`Checking security groups ${b.securityGroups.join(', ')}…`, 'securityGroups', async () => {
        await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: b.securityGroups }));
        return 'Security groups exist.';
      });
    if (b.keyName)
      await probe(`Checking key pair ${b.keyName}…`, 'keyName', async () => {
        await ec2.send(new DescribeKeyPairsCommand({ KeyNames: [b.keyName!] }));
        return `Key pair ${b.keyName} exists.`;
      });
    await probe('Checking permission to launch instances…', 'credentials', async () => {
      try {
        await ec2.send(new RunInstancesCommand({ DryRun: true, ImageId: b.ami, InstanceType: b.instanceType as never, MinCount: 1, MaxCount: 1, SubnetId: b.subnet }));
      } catch (err) {
        if (awsErrorCode(err) !== 'DryRunOperation') throw err;
      }
      return 'RunInstances is allowed.';
    });
    if (result.ok) result.messages.push('Builder conditions met.');
    return result;
  }

  async function listOwned(b: AwsBuilder): Promise<OwnedResource[]> {
    const ec2 = ec2Of(b);
    const owned: OwnedResource[] = [];
    const live = await instances(ec2, [
      { Name: 'tag-key', Values: [TAGS.releaseId] },
      { Name: 'instance-state-name', Values: [...LIVE_INSTANCE_STATES, 'shutting-down'] },
    ]);
    for (const i of live) {
      const t = fromTags(i.Tags);
      owned.push({ kind: 'instance', id: i.InstanceId!, releaseId: t[TAGS.releaseId], arch: t[TAGS.arch], region: b.region, createdAt: i.LaunchTime?.toISOString() });
    }
    const vols = await ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'tag-key', Values: [TAGS.releaseId] }, { Name: `tag:${TAGS.step}`, Values: BUILDER_STEPS }] }),
    );
    for (const v of vols.Volumes ?? []) {
      const t = fromTags(v.Tags);
      owned.push({ kind: 'volume', id: v.VolumeId!, releaseId: t[TAGS.releaseId], arch: t[TAGS.arch], region: b.region, createdAt: v.CreateTime?.toISOString() });
    }
    return owned;
  }

  async function deleteOwned(b: AwsBuilder, r: OwnedResource): Promise<void> {
    const ec2 = ec2Of(b);
    if (r.kind === 'instance') {
      try {
        await ec2.send(new TerminateInstancesCommand({ InstanceIds: [r.id] }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    } else if (r.kind === 'volume') await deleteVolume(ec2, r.id);
    else throw new Error(`aws builder provider does not own resources of kind ${r.kind}`);
  }

  return { check, acquire, release, listOwned, deleteOwned };
}
