// Publish target `libvirt`: one volume per configured hypervisor, in parallel, each reached over SSH where virsh
// runs next to libvirtd. The image is prepared once on the worker (converted when the pool wants another format)
// and its data extents are streamed to every host; a Candidate per host names it `<host>:<pool>/<name>`.
import { ApplicationFailure } from '@temporalio/common';
import type { Target } from '../../config/schema';
import type { Candidate, CheckResult, PublishedImage, PublishRequest, PublishTargetDriver } from '../types';
import { prepareImage } from '../artifacts/convert';
import { openHypervisor } from './hypervisor';
import type { KnownHosts } from '../ssh/known-hosts';
import { cachedScanExtents, type ExtentMap, type ScanOptions } from '../artifacts/zero-blocks';
import { activityLog, activitySignal, heartbeat, previousDetails } from '../runtime/heartbeat';
import { firstLine, isNotFound, type HypervisorRunner } from './virsh';
import { checkPool, uploadVolume, type HostProgress } from './volume-upload';
import { listVolumes, volumeUser } from './retention';
import { FailureType } from '../failures';

export type LibvirtTarget = Extract<Target, { kind: 'libvirt' }>;

export interface LibvirtTargetDeps {
  /** Opens the runner for one hypervisor; default: SSH with `target.ssh`, then virsh -c `target.uri`. */
  connect?: (host: string, target: LibvirtTarget, targetName: string, signal?: AbortSignal) => Promise<HypervisorRunner>;
  qemuImg?: string;
  scan?: Omit<ScanOptions, 'signal'>;
  /** The worker's known_hosts file: hypervisors without a configured hostKey are pinned on first use. */
  knownHosts?: KnownHosts;
}

export const connectHypervisor = (host: string, target: LibvirtTarget, targetName: string, signal?: AbortSignal, knownHosts?: KnownHosts) =>
  openHypervisor(host, target.ssh, target.uri, `targets.${targetName}.ssh`, signal, knownHosts);

/** `<host>:<pool>/<name>`; hosts may be IPv6 addresses, pools and names never hold ':' or '/'. */
export function parseImageId(imageId: string): { host: string; pool: string; name: string } {
  const slash = imageId.lastIndexOf('/');
  const colon = imageId.lastIndexOf(':', slash);
  if (slash < 0 || colon < 0) throw ApplicationFailure.nonRetryable(`"${imageId}" is not a libvirt image id (<host>:<pool>/<name>)`, FailureType.Config);
  return { host: imageId.slice(0, colon), pool: imageId.slice(colon + 1, slash), name: imageId.slice(slash + 1) };
}

export function createLibvirtTarget(deps: LibvirtTargetDeps = {}): PublishTargetDriver<LibvirtTarget> {
  const connect =
    deps.connect ?? ((host: string, target: LibvirtTarget, targetName: string, signal?: AbortSignal) => connectHypervisor(host, target, targetName, signal, deps.knownHosts));

  async function withHost<T>(host: string, target: LibvirtTarget, targetName: string, fn: (r: HypervisorRunner) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const runner = await connect(host, target, targetName, signal);
    try {
      return await fn(runner);
    } finally {
      runner.close();
    }
  }

  return {
    async check(target, { targetName }): Promise<CheckResult> {
      const messages = [`Checking storage pool "${target.pool}" on ${target.hosts.join(', ')}…`];
      const field = `targets.${targetName}.pool`;
      const results = await Promise.allSettled(
        target.hosts.map((host) => withHost(host, target, targetName, (r) => checkPool(r, target.pool, field))),
      );
      let ok = true;
      results.forEach((res, i) => {
        if (res.status === 'fulfilled')
          messages.push(`${target.hosts[i]}: pool "${target.pool}" (${res.value.type}) is active with ${(res.value.available / 2 ** 30).toFixed(1)} GiB available.`);
        else {
          ok = false;
          messages.push((res.reason as Error).message);
        }
      });
      if (ok) messages.push('Upload conditions met.');
      return { ok, messages };
    },

    async publish(request: PublishRequest & { target: LibvirtTarget }): Promise<Candidate[]> {
      const { target, targetName, artifact, imageName } = request;
      const signal = activitySignal();
      const where = `targets.${targetName}`;
      const image = await prepareImage(artifact, target.format, { qemuImg: deps.qemuImg, signal, where });
      let scanned: Promise<ExtentMap> | undefined;
      const scan = () => (scanned ??= cachedScanExtents(image.path, { ...deps.scan, signal }));

      const resumed = previousDetails<{ hosts?: Record<string, HostProgress> }>()?.hosts ?? {};
      const hosts: Record<string, HostProgress> = { ...resumed };
      const beat = () => heartbeat({ hosts });

      const results = await Promise.allSettled(
        target.hosts.map((host) =>
          withHost(
            host,
            target,
            targetName,
            async (runner) => {
              const res = await uploadVolume(
                {
                  runner,
                  pool: target.pool,
                  name: imageName,
                  image,
                  scan,
                  poolField: `${where}.pool`,
                  resume: resumed[host],
                  signal,
                  onProgress: (p) => {
                    hosts[host] = p;
                    beat();
                  },
                },
              );
              activityLog(
                res.reused
                  ? `${host}: volume ${target.pool}/${imageName} already holds this image; reused it`
                  : `${host}: uploaded ${res.bytesSent} bytes in ${res.extents} extents to ${target.pool}/${imageName}`,
              );
              return res;
            },
            signal,
          ),
        ),
      );
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Error);
      if (failures.length) {
        // A config error on one host outranks a transient one elsewhere: retrying will not fix it.
        throw failures.find((e) => e instanceof ApplicationFailure && e.nonRetryable) ?? failures[0];
      }
      return target.hosts.map((host) => ({
        arch: request.arch,
        target: targetName,
        kind: 'libvirt',
        region: host,
        imageId: `${host}:${target.pool}/${imageName}`,
        name: imageName,
        type: image.format,
        size: image.size,
        sha256: image.sha256,
      }));
    },

    async delete(target, candidate): Promise<void> {
      const { host, pool, name } = parseImageId(candidate.imageId);
      await withHost(host, target, candidate.target, (runner) => deleteVolume(runner, host, pool, name));
    },

    /** The release's volumes are named by its image names on every host; a half-uploaded one goes too. */
    async deleteRelease(target, scope): Promise<string[]> {
      const removed: string[] = [];
      for (const host of target.hosts)
        await withHost(host, target, scope.targetName, async (runner) => {
          for (const name of scope.imageNames)
            if (await deleteVolume(runner, host, target.pool, name)) removed.push(`volume ${host}:${target.pool}/${name}`);
        });
      return removed;
    },

    /** Retention: the definition's volumes on every host, by name (activities/libvirt/retention.ts). */
    async listImages(target, targetName, definition): Promise<PublishedImage[]> {
      const lists = await Promise.all(target.hosts.map((host) => withHost(host, target, targetName, (r) => listVolumes(r, target.pool, definition, targetName))));
      return lists.flat();
    },

    async inUse(target, image): Promise<string | undefined> {
      const { host, pool, name } = parseImageId(image.imageId);
      return await withHost(host, target, image.target, (r) => volumeUser(r, pool, name));
    },
  };

  /** True when there was a volume to delete. */
  async function deleteVolume(runner: HypervisorRunner, host: string, pool: string, name: string): Promise<boolean> {
    const res = await runner.virsh(['vol-delete', '--pool', pool, name], { allowFailure: true });
    if (res.code !== 0 && !isNotFound(res)) throw new Error(`${host}: virsh vol-delete ${pool}/${name} failed: ${firstLine(res.stderr)}`);
    return res.code === 0;
  }
}
