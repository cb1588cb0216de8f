// One image into one pool on one hypervisor: look up, create sparse, stream the data extents through the SSH exec
// channel into `virsh vol-upload --offset/--length` (nothing is copied to the hypervisor first), verify the sha256
// on the hypervisor. Re-runnable at any point: a complete volume is reused, a partial one resumed or replaced.
import { createReadStream } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import type { PreparedImage } from '../artifacts/convert';
import { wholeFile, type ExtentMap } from '../artifacts/zero-blocks';
import { FILE_POOL_TYPES, firstLine, isNotFound, poolType, parsePoolInfo, parseVolInfo, unusableHypervisor, type HypervisorRunner } from './virsh';
import { FailureType } from '../failures';

/** Resume state per host, carried in heartbeat details (small: counts, never paths or logs). */
export interface HostProgress {
  name: string;
  extents: number;
  extentsDone: number;
  bytesDone: number;
  dataBytes: number;
  state: 'checking' | 'uploading' | 'verifying' | 'done';
}

export interface VolumeUploadInput {
  runner: HypervisorRunner;
  pool: string;
  name: string;
  image: PreparedImage;
  /** Extent map of image.path, computed once per publish and shared by every host. */
  scan: () => Promise<ExtentMap>;
  /** Config path named in errors, e.g. `targets.hypervisors.pool`. */
  poolField: string;
  resume?: HostProgress;
  onProgress?: (p: HostProgress) => void;
  signal?: AbortSignal;
}

export interface VolumeUploadResult {
  reused: boolean;
  path: string;
  extents: number;
  /** Bytes that crossed the network. */
  bytesSent: number;
}

/**
 * pool-info, with "missing" and "inactive" turned into errors that say which config field to change. One SSH round
 * trip for both virsh calls: on a hypervisor each exec costs a login shell.
 */
export async function checkPool(runner: HypervisorRunner, pool: string, poolField: string): Promise<{ type: string; available: number }> {
  const script = 'virsh -q -c "$1" pool-info --bytes "$2" && virsh -q -c "$1" pool-dumpxml "$2"';
  const info = await runner.run(['sh', '-c', script, 'sh', runner.uri, pool], { allowFailure: true });
  if (info.code !== 0) {
    const unusable = unusableHypervisor(runner.host, info, poolField.replace(/\.pool$/, '.hosts'));
    if (unusable) throw unusable;
    if (isNotFound(info))
      throw ApplicationFailure.nonRetryable(`${runner.host}: storage pool "${pool}" does not exist; create it there or change ${poolField}`, FailureType.Config);
    throw new Error(`${runner.host}: virsh pool-info ${pool} failed: ${firstLine(info.stderr)}`);
  }
  const { state, available } = parsePoolInfo(info.stdout);
  if (state !== 'running')
    throw ApplicationFailure.nonRetryable(`${runner.host}: storage pool "${pool}" is ${state || 'not active'}; start it (virsh pool-start ${pool}) or change ${poolField}`, FailureType.Config);
  return { type: poolType(info.stdout), available };
}

/**
 * sha256 of a volume, computed on the hypervisor (nothing crosses the network): from its file or device when it has
 * one (openssl uses the CPU's SHA instructions, coreutils' sha256sum often does not), else read through libvirt.
 */
export async function remoteSha256(runner: HypervisorRunner, pool: string, name: string, signal?: AbortSignal): Promise<{ sha256: string; path: string }> {
  const script = [
    'set -e',
    'p=$(virsh -q -c "$1" vol-path --pool "$2" "$3")',
    'echo "$p"',
    'if [ -f "$p" ] || [ -b "$p" ]; then openssl dgst -sha256 -r "$p" 2>/dev/null || sha256sum -- "$p"',
    'else set -o pipefail 2>/dev/null; virsh -q -c "$1" vol-download --pool "$2" "$3" /dev/stdout | sha256sum; fi',
  ].join('\n');
  const out = (await runner.run(['sh', '-c', script, 'sh', runner.uri, pool, name], { signal })).stdout.trim().split('\n');
  const sha256 = /^([0-9a-f]{64})\b/.exec(out[1] ?? '')?.[1];
  if (!sha256) throw new Error(`${runner.host}: could not read the sha256 of volume ${pool}/${name}`);
  return { sha256, path: out[0] };
}

export async function uploadVolume(input: VolumeUploadInput): Promise<VolumeUploadResult> {
  const { runner, pool, name, image, signal } = input;
  const progress: HostProgress = { name, extents: 0, extentsDone: 0, bytesDone: 0, dataBytes: 0, state: 'checking' };
  const report = () => input.onProgress?.({ ...progress });
  report();

  const { type } = await checkPool(runner, pool, input.poolField);
  const sparse = FILE_POOL_TYPES.has(type);
  let start = 0;
  const existing = await runner.virsh(['vol-info', '--bytes', '--pool', pool, name], { allowFailure: true, signal });
  if (existing.code === 0) {
    const remote = await remoteSha256(runner, pool, name, signal);
    if (remote.sha256 === image.sha256) {
      Object.assign(progress, { state: 'done' });
      report();
      return { reused: true, path: remote.path, extents: 0, bytesSent: 0 };
    }
    const info = parseVolInfo(existing.stdout);
    const resumable = input.resume?.name === name && input.resume.extentsDone > 0 && (!sparse || info.capacity === image.size);
    if (resumable) start = input.resume!.extentsDone;
    else {
      // A volume of this name with other content is a partial upload of ours (the name carries release, arch and
      // time) that we cannot resume: start it again from nothing.
      await runner.virsh(['vol-delete', '--pool', pool, name], { signal });
      await createVolume(runner, pool, name, image.size, sparse, signal);
    }
  } else if (isNotFound(existing)) {
    await createVolume(runner, pool, name, image.size, sparse, signal);
  } else throw new Error(`${runner.host}: virsh vol-info ${pool}/${name} failed: ${firstLine(existing.stderr)}`);

  const map = sparse ? await input.scan() : wholeFile(image.size);
  if (start > map.extents.length) start = 0;
  Object.assign(progress, {
    state: 'uploading',
    extents: map.extents.length,
    extentsDone: start,
    dataBytes: map.dataBytes,
    bytesDone: map.extents.slice(0, start).reduce((n, e) => n + e.length, 0),
  });
  report();
  let bytesSent = 0;
  for (let i = start; i < map.extents.length; i++) {
    const { offset, length } = map.extents[i];
    const stream = createReadStream(image.path, { start: offset, end: offset + length - 1, highWaterMark: 1 << 20 });
    const onBytes = (n: number) => {
      progress.bytesDone += n;
      bytesSent += n;
      report();
    };
    await runner.virshStream(['vol-upload', '--pool', pool, name, '/dev/stdin', '--offset', String(offset), '--length', String(length)], stream, { signal, onBytes });
    progress.extentsDone = i + 1;
    report();
  }

  progress.state = 'verifying';
  report();
  const remote = await remoteSha256(runner, pool, name, signal);
  if (remote.sha256 !== image.sha256) {
    await runner.virsh(['vol-delete', '--pool', pool, name], { allowFailure: true });
    throw new Error(`${runner.host}: volume ${pool}/${name} has sha256 ${remote.sha256.slice(0, 12)}… after upload, expected ${image.sha256.slice(0, 12)}…; deleted it, the retry uploads again`);
  }
  progress.state = 'done';
  report();
  return { reused: false, path: remote.path, extents: map.extents.length - start, bytesSent };
}

async function createVolume(runner: HypervisorRunner, pool: string, name: string, size: number, sparse: boolean, signal?: AbortSignal) {
  // The content decides the format: libvirt probes file volumes after the upload (a qcow2 upload shows as qcow2).
  const args = ['vol-create-as', '--pool', pool, '--name', name, '--capacity', `${Math.max(size, 1)}b`];
  if (sparse) args.push('--allocation', '0', '--format', 'raw');
  await runner.virsh(args, { signal });
}
