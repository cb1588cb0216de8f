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
  const { arch, host, builder } = input;
  const volume = builder.dataVolume;
  if (!volume) return { configured: false, alreadyPrepared: false, messages: ['No data volume configured.'] };
  const field = `architectures.${arch}.builder.dataVolume`;
  const where = `${arch}: builder ${host.address}`;
  const configError = (message: string) =>
    ApplicationFailure.nonRetryable(`${where}: ${message}`, FailureType.Config);
  const mp = shellQuote(volume.mountpoint);
  const marker = shellQuote(markerFile(volume.mountpoint));
  const messages: string[] = [];
  const link = new BuilderLink(host, builder, { signal: opts.signal, reconnectWindowMs: 5 * 60_000 });
  const sh = (script: string) => link.run((ssh: SshSession) => ssh.exec(script, { signal: opts.signal }));
  try {
    const state = parseFields(
      (
        await sh(
          [
            `echo "mounted=$(findmnt -n -o SOURCE --mountpoint ${mp} 2>/dev/null | head -n 1)"`,
            `echo "marker=$(cat ${marker} 2>/dev/null)"`,
            `echo "swap=$(awk 'NR > 1 && $2 == "partition" { print $1; exit }' /proc/swaps)"`,
          ].join('\n'),
        )
      ).stdout,
    );
    const device = await resolveDevice(state);
    const real =
      parseFields((await sh(`echo "real=$(readlink -f ${shellQuote(device)})"`)).stdout).real || device;
    const mountedReal = state.mounted
      ? parseFields((await sh(`echo "real=$(readlink -f ${shellQuote(state.mounted)})"`)).stdout).real
      : '';
    const alreadyPrepared = !!state.mounted && (mountedReal === real || state.mounted === device);
    if (state.mounted && !alreadyPrepared)
      throw configError(
        `${volume.mountpoint} is already a mount of ${state.mounted}, not of ${device}; change ${field}.mountpoint or ${field}.device`,
      );

    if (alreadyPrepared) messages.push(`${device} is already mounted on ${volume.mountpoint}.`);
    else {
      const dev = shellQuote(real);
      const checked = parseFields(
        (
          await sh(
            `[ -b ${dev} ] && echo block=1; echo "elsewhere=$(findmnt -n -o TARGET --source ${dev} 2>/dev/null | head -n 1)"`,
          )
        ).stdout,
      );
      if (!checked.block)
        throw configError(`${device} is not a block device; set ${field}.device to the data disk`);
      if (checked.elsewhere)
        throw configError(
          `${device} is mounted on ${checked.elsewhere}; refusing to format it (${field}.device)`,
        );
      const mkfs = volume.fsType === 'xfs' ? `mkfs.xfs -q -f ${dev}` : `mkfs.ext4 -q -F ${dev}`;
      await sh(
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
      ).catch((err: unknown) => {
        if (err instanceof SshCommandError)
          throw configError(`preparing ${device} failed: ${err.result.stderr.trim().slice(0, 300)}`);
        throw err;
      });
      messages.push(`Formatted ${device} as ${volume.fsType} and mounted it on ${volume.mountpoint}.`);
    }

    for (const [target, size] of Object.entries(volume.tmpfs)) {
      const t = shellQuote(target);
      const fields = parseFields(
        (await sh(`echo "fstype=$(findmnt -n -o FSTYPE --mountpoint ${t} 2>/dev/null)"`)).stdout,
      );
      if (fields.fstype !== 'tmpfs')
        throw configError(
          `${target} is not a tmpfs mount (${fields.fstype || 'not mounted'}); remove it from ${field}.tmpfs`,
        );
      await sh(`mount -o remount,size=${size} ${t}`);
      messages.push(`Remounted ${target} with size ${size}.`);
    }

    const freeBytes = Number(
      parseFields((await sh(`echo "free=$(df -P -B1 ${mp} | awk 'NR == 2 { print $4 }')"`)).stdout).free,
    );
    const need = volume.minFreeGiB * 2 ** 30;
    if (!(freeBytes >= need))
      throw configError(
        `${volume.mountpoint} has ${(freeBytes / 2 ** 30).toFixed(2)} GiB free, less than ${field}.minFreeGiB (${volume.minFreeGiB}); ` +
          `give ${field} a bigger device (or sizeGiB)`,
      );
    messages.push(`${(freeBytes / 2 ** 30).toFixed(1)} GiB free on ${volume.mountpoint}.`);
    return {
      configured: true,
      alreadyPrepared,
      device,
      mountpoint: volume.mountpoint,
      fsType: volume.fsType,
      freeBytes,
      messages,
    };
  } finally {
    link.drop();
  }

  async function resolveDevice(state: Record<string, string>): Promise<string> {
    const wanted = volume!.device;
    if (wanted === 'swap') {
      const device = state.marker || state.swap;
      if (!device)
        throw configError(
          `no swap partition in /proc/swaps to turn into the data volume; set ${field}.device to a device path or "attached"`,
        );
      return device;
    }
    if (wanted === 'attached') {
      const id = host.resources.find((r) => r.kind === DATA_VOLUME_RESOURCE)?.id;
      if (!id)
        throw configError(
          `the ${host.provider} provider attached no data volume; set ${field}.sizeGiB, or ${field}.device to "swap" or a path`,
        );
      if (!id.startsWith('vol-')) return id;
      // EBS volumes on Nitro instances appear as NVMe disks whose serial is the volume id without its dash.
      const byId = `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${id.replace('-', '')}`;
      // Xen instances name it after the attach point (/dev/sdf, seen as /dev/xvdf).
      const candidates = [byId, ...ATTACH_NAMES];
      const found = parseFields(
        (await sh(candidates.map((c) => `[ -b ${shellQuote(c)} ] && echo found=${shellQuote(c)} && exit 0`).join('; ') + '; true')).stdout,
      ).found;
      if (!found) throw new Error(`${where}: attached volume ${id} has not appeared as ${candidates.join(' or ')} yet`);
      return found;
    }
    return wanted;
  }
}
