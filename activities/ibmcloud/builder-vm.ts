// Builder VMs on IBM Cloud VPC (Fedora Copr's farm builds s390x there). The instance is named
// resourceName(releaseId, arch, 'builder'), and that name is how a retried or resumed acquire finds it again and how
// the janitor recognises what we own; a floating IP, when configured, carries the same name.
import { ApplicationFailure } from '@temporalio/common';
import type { Builder } from '../../config/schema';
import { NAME_PREFIX, ownerOfName } from '../naming';
import { resourceName, type BuilderHost, type BuilderProvider, type CheckResult, type OwnedResource, type StepContext } from '../types';
import { reason, TRANSIENT_POLL_ERRORS, withDefaults, type IbmCloudDeps, type ResolvedDeps } from './deps';
import { activityLog, activitySignal, heartbeat } from '../runtime/heartbeat';
import { pollUntil } from '../runtime/poll';
import type { VpcClient, VpcFloatingIp, VpcInstance } from './vpc-client';
import { FailureType } from '../failures';

export type IbmCloudBuilder = Extract<Builder, { provider: 'ibmcloud' }>;

const WAITABLE = new Set(['pending', 'starting', 'restarting', 'running']);

/** Every wait for an instance or its floating IP: the configured interval and limit, a few bad polls in a row survived. */
const polls = (d: ResolvedDeps) => ({ intervalMs: d.pollIntervalMs, timeoutMs: d.instanceTimeoutMs, transientErrors: TRANSIENT_POLL_ERRORS });

export function createIbmCloudBuilderProvider(deps: IbmCloudDeps = {}): BuilderProvider<IbmCloudBuilder> {
  const d = withDefaults(deps);
  const field = (ctx?: StepContext) => (ctx ? `architectures.${ctx.arch}.builder` : 'builder');

  return {
    check: (builder, ctx) => check(d, builder, field(ctx)),

    async acquire(builder, ctx) {
      const signal = activitySignal();
      const vpc = d.vpc(builder, field(ctx));
      const name = resourceName(ctx.releaseId, ctx.arch, 'builder');
      let instance = await findInstance(vpc, name, signal);
      if (instance && !WAITABLE.has(instance.status)) {
        // A stopped or failed builder from an earlier attempt is not worth reviving; a fresh one is cheap.
        if (instance.status !== 'deleting') await vpc.deleteInstance(instance.id, signal);
        throw new Error(`ibmcloud: builder ${name} (${instance.id}) in ${vpc.region} was ${instance.status}; it is being deleted and a new one is created on retry`);
      }
      if (instance) activityLog(`Found builder ${name} (${instance.id}) from an earlier attempt.`);
      else {
        activityLog(`Creating builder ${name} in ${builder.zone}…`);
        instance = await vpc.createInstance(
          {
            name,
            profile: { name: builder.profile },
            image: { id: builder.image },
            vpc: { id: builder.vpc },
            zone: { name: builder.zone },
            primary_network_interface: { name: 'eth0', subnet: { id: builder.subnet } },
            keys: builder.keys.map((id) => ({ id })),
            ...(builder.resourceGroup ? { resource_group: { id: builder.resourceGroup } } : {}),
          },
          signal,
        );
      }
      const running = await waitRunning(d, vpc, instance, signal);
      const resources: BuilderHost['resources'] = [{ kind: 'instance', id: running.id, region: vpc.region }];
      let address = running.primary_network_interface?.primary_ip?.address ?? running.primary_network_interface?.primary_ipv4_address;
      if (builder.floatingIp) {
        const fip = await ensureFloatingIp(d, vpc, name, running, builder, signal);
        resources.push({ kind: 'floating-ip', id: fip.id, region: vpc.region });
        address = fip.address;
      }
      let port = builder.ssh.port;
      if (d.addressOf) {
        const mapped = await d.addressOf(running, vpc.region);
        address = mapped.address;
        port = mapped.port ?? port;
      }
      if (!address) throw new Error(`ibmcloud: builder ${name} (${running.id}) is running but has no IP address yet`);
      return { provider: 'ibmcloud', id: running.id, address, port, user: builder.ssh.user, hostKey: builder.ssh.hostKey, resources };
    },

    async release(builder, ctx, host) {
      const signal = activitySignal();
      const vpc = d.vpc(builder, field(ctx));
      const name = resourceName(ctx.releaseId, ctx.arch, 'builder');
      // By id from the host, and by name too: an acquire that died mid-way may have created things it never returned.
      const fipIds = new Set(host.resources.filter((r) => r.kind === 'floating-ip').map((r) => r.id));
      for (const fip of await vpc.listFloatingIps(signal)) if (fip.name === name) fipIds.add(fip.id);
      for (const id of fipIds) await vpc.deleteFloatingIp(id, signal);
      const instanceIds = new Set(host.id ? [host.id] : []);
      for (const i of await vpc.listInstances(name, signal)) instanceIds.add(i.id);
      for (const id of instanceIds) await vpc.deleteInstance(id, signal);
      for (const id of instanceIds)
        await pollUntil(
          async () => {
            const i = await vpc.getInstance(id, signal);
            heartbeat({ stage: 'release', instance: id, status: i?.status ?? 'gone' });
            return i === undefined ? true : undefined;
          },
          { describe: `builder ${name} (${id}) to be deleted`, ...polls(d), signal },
        );
      activityLog(`Released builder ${name}.`);
    },

    async listOwned(builder) {
      const vpc = d.vpc(builder, field());
      const owned: OwnedResource[] = [];
      for (const i of await vpc.listInstances())
        if (i.name.startsWith(NAME_PREFIX)) owned.push({ kind: 'instance', id: i.id, region: vpc.region, createdAt: i.created_at, ...ownerOfName(i.name) });
      for (const f of await vpc.listFloatingIps())
        if (f.name.startsWith(NAME_PREFIX)) owned.push({ kind: 'floating-ip', id: f.id, region: vpc.region, createdAt: f.created_at, ...ownerOfName(f.name) });
      return owned;
    },

    async deleteOwned(builder, resource) {
      const vpc = d.vpc(builder, field());
      if (resource.kind === 'instance') await vpc.deleteInstance(resource.id);
      else if (resource.kind === 'floating-ip') await vpc.deleteFloatingIp(resource.id);
      else throw ApplicationFailure.nonRetryable(`ibmcloud: cannot delete a resource of kind ${resource.kind}`, FailureType.Config);
    },
  };
}

async function check(d: ResolvedDeps, builder: IbmCloudBuilder, field: string): Promise<CheckResult> {
  const messages: string[] = [];
  const problems: string[] = [];
  let vpc: VpcClient;
  try {
    vpc = d.vpc(builder, field);
    messages.push(`Exchanging the API key in ${builder.apiKeyEnv} for an IAM token…`);
    await vpc.token();
  } catch (err) {
    return { ok: false, messages: [...messages, reason(err)] };
  }
  messages.push(`Checking image, profile, VPC, subnet and keys in ${builder.region}…`);
  const need = async (what: string, path: string, lookup: () => Promise<unknown>) => {
    try {
      if ((await lookup()) === undefined) problems.push(`${field}.${path}: ${what} not found in ${builder.region}`);
    } catch (err) {
      problems.push(reason(err));
    }
  };
  let subnetZone: string | undefined;
  let subnetVpc: string | undefined;
  await Promise.all([
    need(`image ${builder.image}`, 'image', () => vpc.getImage(builder.image)),
    need(`instance profile ${builder.profile}`, 'profile', () => vpc.getProfile(builder.profile)),
    need(`VPC ${builder.vpc}`, 'vpc', () => vpc.getVpc(builder.vpc)),
    need(`subnet ${builder.subnet}`, 'subnet', async () => {
      const subnet = await vpc.getSubnet(builder.subnet);
      subnetZone = subnet?.zone?.name;
      subnetVpc = subnet?.vpc?.id;
      return subnet;
    }),
    ...builder.keys.map((key, i) => need(`SSH key ${key}`, `keys.${i}`, () => vpc.getKey(key))),
  ]);
  if (subnetZone && subnetZone !== builder.zone)
    problems.push(`${field}.zone: subnet ${builder.subnet} is in ${subnetZone}, not ${builder.zone}`);
  if (subnetVpc && subnetVpc !== builder.vpc) problems.push(`${field}.subnet: subnet ${builder.subnet} belongs to VPC ${subnetVpc}, not ${builder.vpc}`);
  if (problems.length) return { ok: false, messages: [...messages, ...problems] };
  return { ok: true, messages: [...messages, 'Builder conditions met.'] };
}

async function findInstance(vpc: VpcClient, name: string, signal?: AbortSignal) {
  return (await vpc.listInstances(name, signal)).find((i) => i.name === name);
}

async function waitRunning(d: ResolvedDeps, vpc: VpcClient, instance: VpcInstance, signal?: AbortSignal): Promise<VpcInstance> {
  const found = await pollUntil(
    async () => {
      const i = (await vpc.getInstance(instance.id, signal)) ?? ({ ...instance, status: 'gone' } as VpcInstance);
      heartbeat({ stage: 'acquire', instance: i.id, status: i.status });
      return !WAITABLE.has(i.status) || i.status === 'running' ? i : undefined;
    },
    { describe: `builder ${instance.name} (${instance.id}) to be running`, ...polls(d), signal },
  );
  if (found.status === 'running') return found;
  const why = (found.status_reasons ?? []).map((r) => `${r.code}: ${r.message}`).join('; ');
  if (found.status !== 'gone' && found.status !== 'deleting') await vpc.deleteInstance(found.id, signal);
  throw new Error(`ibmcloud: builder ${instance.name} (${instance.id}) in ${vpc.region} became ${found.status}${why ? ` (${why})` : ''}; a new one is created on retry`);
}

async function ensureFloatingIp(
  d: ResolvedDeps,
  vpc: VpcClient,
  name: string,
  instance: VpcInstance,
  builder: IbmCloudBuilder,
  signal?: AbortSignal,
): Promise<VpcFloatingIp> {
  const nic = instance.primary_network_interface?.id;
  if (!nic) throw new Error(`ibmcloud: builder ${name} (${instance.id}) reports no primary network interface yet`);
  let fip = (await vpc.listFloatingIps(signal)).find((f) => f.name === name);
  if (!fip) {
    activityLog(`Reserving floating IP ${name}…`);
    fip = await vpc.createFloatingIp(
      { name, target: { id: nic }, ...(builder.resourceGroup ? { resource_group: { id: builder.resourceGroup } } : {}) },
      signal,
    );
  }
  const id = fip.id;
  const ready = await pollUntil(
    async () => {
      const f = (await vpc.getFloatingIp(id, signal)) ?? ({ id, name, address: '', status: 'gone' } as VpcFloatingIp);
      heartbeat({ stage: 'acquire', floatingIp: id, status: f.status });
      return f.status !== 'pending' ? f : undefined;
    },
    { describe: `floating IP ${name} (${id})`, ...polls(d), signal },
  );
  if (ready.status !== 'available') throw new Error(`ibmcloud: floating IP ${name} (${id}) became ${ready.status}`);
  return ready;
}
