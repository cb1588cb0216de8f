// Builder provider `libvirt`: a VM on a hypervisor, driven with virsh over SSH. The disk is a thin qcow2 overlay on
// the base volume (vol-create-as --backing-vol: instant, no copy); the domain and its volume are named
// resourceName(releaseId, arch, 'builder'), so acquire finds what an earlier attempt made, and release and the
// janitor find what to delete by name.
import { ApplicationFailure } from '@temporalio/common';
import type { Arch, Builder } from '../../config/schema';
import { SshSession } from '../ssh/connection';
import { NAME_PREFIX, ownerOfName, parseResourceName } from '../naming';
import { resourceName, type BuilderHost, type BuilderProvider, type CheckResult, type OwnedResource, type StepContext } from '../types';
import { domainXml, releaseInMetadata } from './domain-xml';
import { openHypervisor } from './hypervisor';
import type { KnownHosts } from '../ssh/known-hosts';
import { activityLog, activitySignal, heartbeat } from '../runtime/heartbeat';
import { pollUntil } from '../runtime/poll';
import { firstLine, isNotFound, parseVolList, type HypervisorRunner } from './virsh';
import { checkPool } from './volume-upload';
import { FailureType } from '../failures';

export type LibvirtBuilder = Extract<Builder, { provider: 'libvirt' }>;

export interface LibvirtBuilderDeps {
  /** Opens virsh on the hypervisor; default: SSH to builder.host with builder.hypervisorSsh. Tests record here. */
  connect?: (builder: LibvirtBuilder, signal?: AbortSignal) => Promise<HypervisorRunner>;
  /** The worker's known_hosts file: hypervisors without a configured hostKey are pinned on first use. */
  knownHosts?: KnownHosts;
  /** `kvm` (default) on a hypervisor; `qemu` where /dev/kvm is missing. */
  domainType?: 'kvm' | 'qemu';
  /** How long the VM may take to get an address from the network's DHCP, and to answer SSH. */
  addressTimeoutMs?: number;
  sshTimeoutMs?: number;
  pollIntervalMs?: number;
}

const volumeOf = (name: string) => `${name}.qcow2`;

/**
 * The owner of a domain: from its name when that holds the whole release id; for a hashed name, from the release id
 * acquire wrote into its <metadata>, if that id names back to exactly this name (else the janitor matches the name).
 */
async function domainOwner(r: HypervisorRunner, name: string): Promise<ReturnType<typeof ownerOfName>> {
  const owner = ownerOfName(name);
  const parsed = parseResourceName(name, 'builder');
  if (!('name' in owner) || !parsed) return owner;
  const xml = await r.virsh(['dumpxml', name], { allowFailure: true });
  const releaseId = releaseInMetadata(xml.stdout);
  return releaseId !== undefined && resourceName(releaseId, parsed.arch, 'builder') === name ? { releaseId, arch: parsed.arch } : owner;
}

/** First IPv4 address in `virsh domifaddr` output. */
export function parseDomIfAddr(stdout: string): string | undefined {
  return /\bipv4\s+(\d{1,3}(?:\.\d{1,3}){3})\/\d+/.exec(stdout)?.[1];
}

export function createLibvirtBuilderProvider(deps: LibvirtBuilderDeps = {}): BuilderProvider<LibvirtBuilder> {
  const connect =
    deps.connect ??
    ((builder: LibvirtBuilder, signal?: AbortSignal) =>
      openHypervisor(builder.host, builder.hypervisorSsh, builder.uri, 'builder.hypervisorSsh', signal, deps.knownHosts));
  const interval = deps.pollIntervalMs ?? 5_000;

  async function withHypervisor<T>(builder: LibvirtBuilder, fn: (r: HypervisorRunner) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const runner = await connect(builder, signal);
    try {
      return await fn(runner);
    } finally {
      runner.close();
    }
  }

  /** Runs a virsh command whose "not found" means the job is already done. */
  async function virshIdempotent(r: HypervisorRunner, args: string[], alsoDone?: RegExp): Promise<void> {
    const res = await r.virsh(args, { allowFailure: true });
    if (res.code === 0 || isNotFound(res) || alsoDone?.test(res.stderr)) return;
    throw new Error(`${r.host}: virsh ${args.join(' ')} failed: ${firstLine(res.stderr)}`);
  }

  async function teardown(r: HypervisorRunner, pool: string, name: string): Promise<void> {
    await virshIdempotent(r, ['destroy', name], /domain is not running/i);
    await virshIdempotent(r, ['undefine', name, '--nvram']);
    await virshIdempotent(r, ['vol-delete', '--pool', pool, volumeOf(name)]);
  }

  async function baseFormat(r: HypervisorRunner, builder: LibvirtBuilder, arch: Arch): Promise<string> {
    const xml = await r.virsh(['vol-dumpxml', '--pool', builder.pool, builder.baseVolume], { allowFailure: true });
    if (isNotFound(xml))
      throw ApplicationFailure.nonRetryable(
        `${r.host}: base volume "${builder.baseVolume}" is not in pool "${builder.pool}"; upload it or change architectures.${arch}.builder.baseVolume`,
        FailureType.Config,
      );
    if (xml.code !== 0) throw new Error(`${r.host}: virsh vol-dumpxml ${builder.baseVolume} failed: ${firstLine(xml.stderr)}`);
    return /<format type=['"]([a-z0-9]+)['"]/.exec(xml.stdout)?.[1] ?? 'raw';
  }

  return {
    async check(builder, ctx): Promise<CheckResult> {
      const field = `architectures.${ctx.arch}.builder`;
      const messages = [`Checking hypervisor ${builder.host}…`];
      try {
        await withHypervisor(builder, async (r) => {
          await checkPool(r, builder.pool, `${field}.pool`);
          const format = await baseFormat(r, builder, ctx.arch);
          messages.push(`Base volume ${builder.pool}/${builder.baseVolume} (${format}) is there.`);
          const net = await r.virsh(['net-info', builder.network], { allowFailure: true });
          if (net.code !== 0 || !/^Active:\s+yes/m.test(net.stdout))
            throw ApplicationFailure.nonRetryable(
              `${builder.host}: network "${builder.network}" is ${net.code === 0 ? 'not active' : 'missing'}; start it or change ${field}.network`,
              FailureType.Config,
            );
          messages.push(`Network ${builder.network} is active.`);
        });
      } catch (err) {
        return { ok: false, messages: [...messages, (err as Error).message] };
      }
      messages.push('Builder conditions met.');
      return { ok: true, messages };
    },

    async acquire(builder, ctx: StepContext): Promise<BuilderHost> {
      const signal = activitySignal();
      const name = resourceName(ctx.releaseId, ctx.arch, 'builder');
      const volume = volumeOf(name);
      const address = await withHypervisor(
        builder,
        async (r) => {
          const vol = await r.virsh(['vol-info', '--pool', builder.pool, volume], { allowFailure: true, signal });
          if (vol.code !== 0) {
            if (!isNotFound(vol)) throw new Error(`${r.host}: virsh vol-info ${volume} failed: ${firstLine(vol.stderr)}`);
            const format = await baseFormat(r, builder, ctx.arch);
            await r.virsh(
              ['vol-create-as', '--pool', builder.pool, '--name', volume, '--capacity', `${builder.diskSizeGiB}G`, '--format', 'qcow2',
                '--backing-vol', builder.baseVolume, '--backing-vol-format', format],
              { signal },
            );
          }
          const info = await r.virsh(['dominfo', name], { allowFailure: true, signal });
          if (info.code !== 0) {
            if (!isNotFound(info)) throw new Error(`${r.host}: virsh dominfo ${name} failed: ${firstLine(info.stderr)}`);
            const xml = domainXml({ ...builder, name, arch: ctx.arch, volume, releaseId: ctx.releaseId, domainType: deps.domainType });
            await r.virsh(['define', '/dev/stdin'], { stdin: xml, signal });
          }
          const state = (await r.virsh(['domstate', name], { signal })).stdout.trim();
          if (state !== 'running') await r.virsh(['start', name], { signal });
          return await pollUntil(
            async (attempt) => {
              heartbeat({ step: 'address', name, attempt });
              // DHCP leases of libvirt's network first; the ARP table finds VMs on bridges libvirt does not serve.
              for (const source of ['lease', 'arp']) {
                const res = await r.virsh(['domifaddr', name, '--source', source], { allowFailure: true, signal });
                const ip = res.code === 0 ? parseDomIfAddr(res.stdout) : undefined;
                if (ip) return ip;
              }
              return undefined;
            },
            {
              describe: `an IPv4 address of domain ${name}`,
              intervalMs: interval,
              timeoutMs: deps.addressTimeoutMs ?? 5 * 60_000,
              signal,
              timeoutError: (tries) =>
                new Error(`${r.host}: domain ${name} has no IPv4 address after ${tries} tries; is network "${builder.network}" serving DHCP?`),
            },
          );
        },
        signal,
      );

      const endpoint = { address, port: builder.ssh.port, user: builder.ssh.user, hostKey: builder.ssh.hostKey };
      const hostKey = await pollUntil(
        async (attempt) => {
          heartbeat({ step: 'ssh', name, attempt });
          const ssh = await SshSession.connect(endpoint, { privateKeyPath: builder.ssh.privateKeyPath, privateKeyEnv: builder.ssh.privateKeyEnv }, { signal, readyTimeoutMs: 15_000 });
          ssh.close();
          return ssh.hostKey;
        },
        {
          describe: `builder ${name} to answer SSH at ${address}`,
          intervalMs: interval,
          timeoutMs: deps.sshTimeoutMs ?? 10 * 60_000,
          signal,
          transientErrors: Number.POSITIVE_INFINITY,
          timeoutError: (tries, err) => new Error(`builder ${name} at ${address}: no SSH after ${tries} tries: ${err?.message}`),
        },
      );
      activityLog(`builder ${name} answers SSH at ${address}:${endpoint.port}`);
      return {
        provider: 'libvirt',
        id: name,
        address,
        port: endpoint.port,
        user: endpoint.user,
        hostKey,
        resources: [
          { kind: 'libvirt-domain', id: name },
          { kind: 'libvirt-volume', id: `${builder.pool}/${volume}` },
        ],
      };
    },

    async release(builder, ctx): Promise<void> {
      await withHypervisor(builder, (r) => teardown(r, builder.pool, resourceName(ctx.releaseId, ctx.arch, 'builder')));
    },

    async listOwned(builder): Promise<OwnedResource[]> {
      return await withHypervisor(builder, async (r) => {
        const domains = (await r.virsh(['list', '--all', '--name'])).stdout.split('\n').map((l) => l.trim());
        const volumes = parseVolList((await r.virsh(['vol-list', '--pool', builder.pool])).stdout);
        const owners = new Map<string, ReturnType<typeof ownerOfName>>();
        for (const name of domains.filter((d) => d.startsWith(NAME_PREFIX))) owners.set(name, await domainOwner(r, name));
        const owned: OwnedResource[] = [...owners].map(([id, owner]) => ({ kind: 'libvirt-domain', id, ...owner }));
        // A disk belongs to the domain of its name; a disk whose domain is gone has only its name.
        for (const vol of volumes.filter((v) => v.startsWith(NAME_PREFIX))) {
          const name = vol.replace(/\.qcow2$/, '');
          owned.push({ kind: 'libvirt-volume', id: `${builder.pool}/${vol}`, ...(owners.get(name) ?? ownerOfName(name)) });
        }
        return owned;
      });
    },

    async deleteOwned(builder, resource): Promise<void> {
      await withHypervisor(builder, async (r) => {
        if (resource.kind === 'libvirt-domain') {
          await virshIdempotent(r, ['destroy', resource.id], /domain is not running/i);
          await virshIdempotent(r, ['undefine', resource.id, '--nvram']);
        } else if (resource.kind === 'libvirt-volume') {
          const [pool, vol] = resource.id.split('/');
          await virshIdempotent(r, ['vol-delete', '--pool', pool, vol]);
        } else throw ApplicationFailure.nonRetryable(`libvirt builder provider does not own resources of kind ${resource.kind}`, FailureType.Config);
      });
    },
  };
}
