// The builder's data volume (docs/contracts.md#data-volume): bootc-image-builder fills /var/lib/containers,
// /var/tmp and small tmpfs mounts; Fedora Copr's farm turned the swap partition into an ext4 volume mounted on
// /var/lib/containers and grew /run and /tmp. Here the device is that swap partition, the volume the provider
// attached, or a configured path.
// Idempotent: a host where the volume is already mounted is only re-checked (tmpfs sizes, free space).
import { ApplicationFailure } from '@temporalio/common';
import type { Arch, Builder } from '../../config/schema';
import type { BuilderHost } from '../types';
import { SshCommandError, shellQuote, type SshSession } from '../ssh/connection';
import { parseFields } from '../ssh/detached';
import { BuilderLink } from '../ssh/link';
import { FailureType } from '../failures';

export interface PrepareDataVolumeInput {
  releaseId: string;
  arch: Arch;
  host: BuilderHost;
  builder: Builder;
}

export interface DataVolumeResult {
  /** False when builder.dataVolume is not configured: nothing was done. */
  configured: boolean;
  /** True when the volume was already mounted by an earlier attempt. */
  alreadyPrepared: boolean;
  device?: string;
  mountpoint?: string;
  fsType?: string;
  freeBytes?: number;
  messages: string[];
}

/** The provider's extra volume arrives as this resource kind: a device path, or an EBS volume id. */
export const DATA_VOLUME_RESOURCE = 'data-volume-device';

/** Where a cloud volume attached as /dev/sdf appears on instances without NVMe. */
const ATTACH_NAMES = ['/dev/sdf', '/dev/xvdf'];

/** Survives reboots and a failed attempt between swapoff and mount, when /proc/swaps no longer names the device. */
const markerFile = (mountpoint: string) =>
  `/var/lib/bootc-release/data-volume${mountpoint.replace(/\//g, '_')}`;

export async function prepareDataVolume(
  input: PrepareDataVolumeInput,
  opts: { signal?: AbortSignal } = {},
): Promise<DataVolumeResult> {
  const volume = input.builder.dataVolume;
  if (!volume) return { configured: false, alreadyPrepared: false, messages: ['No data volume configured.'] };
  const setup = new VolumeSetup(input, volume, opts.signal);
  try {
    const state = await setup.fields(mountStateScript(volume.mountpoint));
    const device = await resolveDevice(setup, state);
    const { alreadyPrepared, real } = await checkMount(setup, state, device);
    if (alreadyPrepared) setup.messages.push(`${device} is already mounted on ${volume.mountpoint}.`);
    else await formatAndMount(setup, device, real);
    await resizeTmpfs(setup);
    const freeBytes = await checkFreeSpace(setup);
    return {
      configured: true,
      alreadyPrepared,
      device,
      mountpoint: volume.mountpoint,
      fsType: volume.fsType,
      freeBytes,
      messages: setup.messages,
    };
  } finally {
    setup.link.drop();
  }
}

type DataVolume = NonNullable<Builder['dataVolume']>;

/** One builder's data volume: the link to it, how errors name it and its config, the messages for the result. */
class VolumeSetup {
  readonly link: BuilderLink;
  /** The config path errors point at. */
  readonly field: string;
  readonly where: string;
  readonly host: BuilderHost;
  /** The mountpoint, shell-quoted. */
  readonly mp: string;
  readonly messages: string[] = [];

  constructor(
    input: PrepareDataVolumeInput,
    readonly volume: DataVolume,
    private readonly signal?: AbortSignal,
  ) {
    const { arch, host, builder } = input;
    this.host = host;
    this.field = `architectures.${arch}.builder.dataVolume`;
    this.where = `${arch}: builder ${host.address}`;
    this.mp = shellQuote(volume.mountpoint);
    this.link = new BuilderLink(host, builder, { signal, reconnectWindowMs: 5 * 60_000 });
  }

  configError(message: string): ApplicationFailure {
    return ApplicationFailure.nonRetryable(`${this.where}: ${message}`, FailureType.Config);
  }

  sh(script: string) {
    return this.link.run((ssh: SshSession) => ssh.exec(script, { signal: this.signal }));
  }

  /** The `name=value` lines the script prints. */
  async fields(script: string): Promise<Record<string, string>> {
    return parseFields((await this.sh(script)).stdout);
  }

  /** The device's real path (symlinks such as /dev/disk/by-id resolved); empty when it cannot be read. */
  async realPath(device: string): Promise<string | undefined> {
    return (await this.fields(`echo "real=$(readlink -f ${shellQuote(device)})"`)).real;
  }
}

/** What is mounted on the mountpoint, the device an earlier attempt marked, the first swap partition. */
const mountStateScript = (mountpoint: string) =>
  [
    `echo "mounted=$(findmnt -n -o SOURCE --mountpoint ${shellQuote(mountpoint)} 2>/dev/null | head -n 1)"`,
    `echo "marker=$(cat ${shellQuote(markerFile(mountpoint))} 2>/dev/null)"`,
    `echo "swap=$(awk 'NR > 1 && $2 == "partition" { print $1; exit }' /proc/swaps)"`,
  ].join('\n');

async function resolveDevice(setup: VolumeSetup, state: Record<string, string>): Promise<string> {
  const { field, host, where } = setup;
  const wanted = setup.volume.device;
  if (wanted === 'swap') {
    const device = state.marker || state.swap;
    if (!device)
      throw setup.configError(
        `no swap partition in /proc/swaps to turn into the data volume; set ${field}.device to a device path or "attached"`,
      );
    return device;
  }
  if (wanted !== 'attached') return wanted;
  const id = host.resources.find((r) => r.kind === DATA_VOLUME_RESOURCE)?.id;
  if (!id)
    throw setup.configError(
      `the ${host.provider} provider attached no data volume; set ${field}.sizeGiB, or ${field}.device to "swap" or a path`,
    );
  if (!id.startsWith('vol-')) return id;
  // EBS volumes on Nitro instances appear as NVMe disks whose serial is the volume id without its dash.
  const byId = `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${id.replace('-', '')}`;
  // Xen instances name it after the attach point (/dev/sdf, seen as /dev/xvdf).
  const candidates = [byId, ...ATTACH_NAMES];
  const { found } = await setup.fields(
    candidates.map((c) => `[ -b ${shellQuote(c)} ] && echo found=${shellQuote(c)} && exit 0`).join('; ') + '; true',
  );
  if (!found) throw new Error(`${where}: attached volume ${id} has not appeared as ${candidates.join(' or ')} yet`);
  return found;
}

/** Whether an earlier attempt mounted this device already; a mount of anything else is the config's to fix. */
async function checkMount(
  setup: VolumeSetup,
  state: Record<string, string>,
  device: string,
): Promise<{ alreadyPrepared: boolean; real: string }> {
  const { field, volume } = setup;
  const real = (await setup.realPath(device)) || device;
  const mountedReal = state.mounted ? await setup.realPath(state.mounted) : '';
  const alreadyPrepared = !!state.mounted && (mountedReal === real || state.mounted === device);
  if (state.mounted && !alreadyPrepared)
    throw setup.configError(
      `${volume.mountpoint} is already a mount of ${state.mounted}, not of ${device}; change ${field}.mountpoint or ${field}.device`,
    );
  return { alreadyPrepared, real };
}

/** Marks the device, turns its swap off, formats and mounts it; refuses anything but an unmounted block device. */
async function formatAndMount(setup: VolumeSetup, device: string, real: string): Promise<void> {
  const { field, volume, mp } = setup;
  const dev = shellQuote(real);
  const marker = shellQuote(markerFile(volume.mountpoint));
  const checked = await setup.fields(
    `[ -b ${dev} ] && echo block=1; echo "elsewhere=$(findmnt -n -o TARGET --source ${dev} 2>/dev/null | head -n 1)"`,
  );
  if (!checked.block) throw setup.configError(`${device} is not a block device; set ${field}.device to the data disk`);
  if (checked.elsewhere)
    throw setup.configError(`${device} is mounted on ${checked.elsewhere}; refusing to format it (${field}.device)`);
  const mkfs = volume.fsType === 'xfs' ? `mkfs.xfs -q -f ${dev}` : `mkfs.ext4 -q -F ${dev}`;
  await setup
    .sh(
      [
        'set -e',
        `mkdir -p "$(dirname ${marker})" && echo ${shellQuote(device)} > ${marker}`,
        `if awk 'NR > 1 { print $1 }' /proc/swaps | grep -qxF -- ${dev}; then swapoff ${dev}; fi`,
        mkfs,
        `mkdir -p ${mp}`,
        `mount ${dev} ${mp}`,
        // restorecon prints every relabelled file: keep it out of the activity's output.
        `if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then restorecon -RvF ${mp} > /dev/null; fi`,
      ].join('\n'),
    )
    .catch((err: unknown) => {
      if (err instanceof SshCommandError)
        throw setup.configError(`preparing ${device} failed: ${err.result.stderr.trim().slice(0, 300)}`);
      throw err;
    });
  setup.messages.push(`Formatted ${device} as ${volume.fsType} and mounted it on ${volume.mountpoint}.`);
}

async function resizeTmpfs(setup: VolumeSetup): Promise<void> {
  for (const [target, size] of Object.entries(setup.volume.tmpfs)) {
    const t = shellQuote(target);
    const { fstype } = await setup.fields(`echo "fstype=$(findmnt -n -o FSTYPE --mountpoint ${t} 2>/dev/null)"`);
    if (fstype !== 'tmpfs')
      throw setup.configError(
        `${target} is not a tmpfs mount (${fstype || 'not mounted'}); remove it from ${setup.field}.tmpfs`,
      );
    await setup.sh(`mount -o remount,size=${size} ${t}`);
    setup.messages.push(`Remounted ${target} with size ${size}.`);
  }
}

/** The free bytes on the volume; fewer than `minFreeGiB` is the config's to fix. */
async function checkFreeSpace(setup: VolumeSetup): Promise<number> {
  const { field, volume } = setup;
  const freeBytes = Number((await setup.fields(`echo "free=$(df -P -B1 ${setup.mp} | awk 'NR == 2 { print $4 }')"`)).free);
  const need = volume.minFreeGiB * 2 ** 30;
  if (!(freeBytes >= need))
    throw setup.configError(
      `${volume.mountpoint} has ${(freeBytes / 2 ** 30).toFixed(2)} GiB free, less than ${field}.minFreeGiB (${volume.minFreeGiB}); ` +
        `give ${field} a bigger device (or sizeGiB)`,
    );
  setup.messages.push(`${(freeBytes / 2 ** 30).toFixed(1)} GiB free on ${volume.mountpoint}.`);
  return freeBytes;
}
