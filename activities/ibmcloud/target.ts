// Publish target `ibmcloud`: stage the qcow2/vhd in COS once, then import one VPC custom image per configured region
// from it (docs/contracts.md#ibm-cloud-vpc). Every step finds what an earlier attempt made (object by size + sha256,
// image by name), so a retry after a worker death finishes the job without duplicates.
import { ApplicationFailure } from '@temporalio/common';
import type { Candidate, CheckResult, PublishTargetDriver } from '../types';
import { checkBucket, cosClient, cosHref, cosRegionOf, deleteCosObject, parseCosHref, previousCosUpload, uploadToCos, type IbmCloudTarget } from './cos-upload';
import { reason, withDefaults, type IbmCloudDeps, type ResolvedDeps } from './deps';
import { activityLog, activitySignal, heartbeat } from '../runtime/heartbeat';
import { ensureImage, vpcImageName } from './vpc-image';
import { sweepPrefix } from '../s3/sweep';
import { listVpcImages, vpcImageUser } from './retention';
import { FailureType } from '../failures';

export type { IbmCloudTarget };

const ACCEPTED = ['qcow2', 'vhd'] as const;

export function createIbmCloudTarget(deps: IbmCloudDeps = {}): PublishTargetDriver<IbmCloudTarget> {
  const d = withDefaults(deps);
  const fieldOf = (targetName: string) => `targets.${targetName}`;
  const vpcFor = (target: IbmCloudTarget, region: string, field: string) =>
    d.vpc({ region, apiKeyEnv: target.apiKeyEnv, endpoint: target.endpoint, iamEndpoint: target.iamEndpoint }, field);

  return {
    check: (target, ctx) => check(d, target, fieldOf(ctx.targetName)),

    async publish(request) {
      const { target, artifact, releaseId } = request;
      const field = fieldOf(request.targetName);
      if (!(ACCEPTED as readonly string[]).includes(artifact.type))
        throw ApplicationFailure.nonRetryable(
          `${field} (ibmcloud) takes qcow2 or vhd images, not ${artifact.type}; build qcow2 for ${request.arch} or drop this target from architectures.${request.arch}.targets`,
          FailureType.Config,
        );
      const signal = activitySignal();
      // Credentials first, so a missing or refused API key fails before gigabytes travel.
      const clients = target.regions.map((region) => vpcFor(target, region, field));
      await clients[0].token(signal);
      const s3 = cosClient(target, field, d.env);
      const bucket = target.cosBucket;
      const key = `${releaseId}/${request.imageName}.${artifact.type}`;
      try {
        await uploadToCos(
          s3,
          { bucket, key, file: artifact.path, size: artifact.size, sha256: artifact.sha256, metadata: { 'release-id': releaseId, arch: request.arch } },
          // A retry after a worker death continues the upload its heartbeat names.
          { field, partSize: d.cosPartSize, resume: previousCosUpload(key), signal },
        );
      } finally {
        s3.destroy();
      }
      const cosRegion = cosRegionOf(target);
      const href = cosHref(cosRegion, bucket, key);
      const name = vpcImageName(request.imageName);
      const images = await inEveryRegion(clients.map((c) => c.region), signal, (region, report) =>
        ensureImage(
          clients.find((c) => c.region === region)!,
          { name, href, operatingSystem: target.operatingSystem, resourceGroup: target.resourceGroup },
          { intervalMs: d.pollIntervalMs, timeoutMs: d.imageTimeoutMs, field, ...report },
        ),
      );
      return images.map(
        ({ region, value: image }): Candidate => ({
          arch: request.arch,
          target: request.targetName,
          kind: 'ibmcloud',
          region,
          imageId: image.id,
          name: image.name,
          type: artifact.type,
          size: artifact.size,
          sha256: artifact.sha256,
          resources: [{ kind: 'cos-object', id: href, region: cosRegion }],
        }),
      );
    },

    async delete(target, candidate) {
      const field = fieldOf(candidate.target);
      const signal = activitySignal();
      const region = candidate.region ?? target.regions[0];
      if (await vpcFor(target, region, field).deleteImage(candidate.imageId, signal))
        activityLog(`Deleted image ${candidate.name} (${candidate.imageId}) in ${region}.`);
      for (const r of candidate.resources ?? []) {
        const loc = r.kind === 'cos-object' ? parseCosHref(r.id) : undefined;
        if (!loc) continue;
        // The same object backs the image of every region; the last image to go takes it along.
        const others = target.regions.filter((other) => other !== region);
        const stillUsed = await Promise.all(
          others.map(async (other) => (await vpcFor(target, other, field).listImages(candidate.name, signal)).some((i) => i.status !== 'deleting')),
        );
        if (stillUsed.some(Boolean)) continue;
        const s3 = cosClient(target, field, d.env);
        try {
          await deleteCosObject(s3, loc.bucket, loc.key, field);
        } finally {
          s3.destroy();
        }
        activityLog(`Deleted COS object ${r.id}.`);
      }
    },

    /** VPC images by name in every region (a pending import too), then the COS objects and unfinished uploads. */
    async deleteRelease(target, scope) {
      const field = fieldOf(scope.targetName);
      const signal = activitySignal();
      const removed: string[] = [];
      for (const region of target.regions) {
        const vpc = vpcFor(target, region, field);
        for (const imageName of scope.imageNames) {
          const name = vpcImageName(imageName);
          for (const image of (await vpc.listImages(name, signal)).filter((i) => i.name === name && i.status !== 'deleting'))
            if (await vpc.deleteImage(image.id, signal)) removed.push(`VPC image ${image.id} (${name}) in ${region}`);
        }
      }
      const s3 = cosClient(target, field, d.env);
      try {
        for (const imageName of scope.imageNames)
          removed.push(...(await sweepPrefix(s3, target.cosBucket, `${scope.releaseId}/${imageName}.`)));
      } finally {
        s3.destroy();
      }
      return removed;
    },

    /** Retention: the definition's images in every region, tied to releases by their COS keys. */
    async listImages(target, targetName, definition) {
      const field = fieldOf(targetName);
      const s3 = cosClient(target, field, d.env);
      try {
        const vpcs = target.regions.map((region) => vpcFor(target, region, field));
        return await listVpcImages(s3, vpcs, target, targetName, definition, activitySignal());
      } finally {
        s3.destroy();
      }
    },

    inUse: (target, image) =>
      vpcImageUser(vpcFor(target, image.region ?? target.regions[0], fieldOf(image.target)), image, activitySignal()),
  };
}

/**
 * Runs `fn` for every region at once with one combined heartbeat ({stage, regions: {r: status}}), and stops the
 * others when one fails: an import that has failed in one region is not worth waiting hours for in the rest.
 */
async function inEveryRegion<T>(
  regions: string[],
  signal: AbortSignal | undefined,
  fn: (region: string, report: { signal: AbortSignal; onStatus: (s: { status: string }) => void }) => Promise<T>,
): Promise<{ region: string; value: T }[]> {
  const status: Record<string, unknown> = {};
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const results = await Promise.allSettled(
      regions.map((region) =>
        fn(region, {
          signal: stop.signal,
          onStatus: ({ status: s }) => {
            status[region] = s;
            heartbeat({ stage: 'vpc-images', regions: { ...status } });
          },
        }).catch((err: unknown) => {
          stop.abort(err);
          throw err;
        }),
      ),
    );
    // The first real failure, not the "aborted" of the regions stopped because of it.
    const failed = results.find((r) => r.status === 'rejected' && !(r.reason instanceof Error && r.reason.name === 'AbortError'));
    if (failed?.status === 'rejected') throw failed.reason;
    const aborted = results.find((r) => r.status === 'rejected');
    if (aborted?.status === 'rejected') throw aborted.reason;
    return results.map((r, i) => ({ region: regions[i], value: (r as PromiseFulfilledResult<T>).value }));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

async function check(d: ResolvedDeps, target: IbmCloudTarget, field: string): Promise<CheckResult> {
  const messages: string[] = [];
  const problems: string[] = [];
  messages.push(`Checking COS bucket ${target.cosBucket}…`);
  try {
    const s3 = cosClient(target, field, d.env);
    try {
      await checkBucket(s3, target.cosBucket, field);
    } finally {
      s3.destroy();
    }
  } catch (err) {
    problems.push(reason(err));
  }
  messages.push(`Exchanging the API key in ${target.apiKeyEnv} for an IAM token…`);
  try {
    const clients = target.regions.map((region) =>
      d.vpc({ region, apiKeyEnv: target.apiKeyEnv, endpoint: target.endpoint, iamEndpoint: target.iamEndpoint }, field),
    );
    await clients[0].token();
    messages.push(`Checking operating system ${target.operatingSystem} in ${target.regions.join(', ')}…`);
    await Promise.all(
      clients.map(async (vpc) => {
        try {
          if (!(await vpc.getOperatingSystem(target.operatingSystem)))
            problems.push(`${field}.operatingSystem: ${target.operatingSystem} is not an operating system VPC knows in ${vpc.region}`);
        } catch (err) {
          problems.push(reason(err));
        }
      }),
    );
  } catch (err) {
    problems.push(reason(err));
  }
  if (problems.length) return { ok: false, messages: [...messages, ...problems] };
  return { ok: true, messages: [...messages, 'Upload conditions met.'] };
}
