// Publish target `aws`: the raw disk bib writes for `--type ami` becomes an EBS snapshot (EBS direct APIs, or S3 +
// ImportSnapshot), an AMI in the target region, copies in every `copyTo` region, each shared with `shareWith`.
// Progress lives in heartbeat details, so a retried publish resumes its upload and finds what it already made.
import { DescribeImagesCommand, DescribeRegionsCommand } from '@aws-sdk/client-ec2';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { createHash } from 'node:crypto';
import type { Target } from '../../config/schema';
import type { Candidate, CheckResult, PublishedImage, PublishRequest, PublishScope, PublishTargetDriver } from '../types';
import { activitySignal, heartbeat, previousDetails } from '../runtime/heartbeat';
import { awsClients, type AwsClientDeps, type Sends } from './clients';
import { awsPreflight } from './preflight';
import { uploadEbsDirect, type EbsUploadProgress } from './ebs-direct-upload';
import { classifyAwsError, isNotFound } from './errors';
import { copyImage, deleteImage, registerImage, shareImage, type RegisteredAmi } from './register-image';
import { importViaS3, type S3ImportProgress } from './s3-import';
import { importPrefix, listAwsReleases, sweepAwsRelease } from './release-sweep';
import { waitSnapshotCompleted } from './snapshots';
import { AWS_TAGS, type TagMap } from './tags';
import { awsImageUser, deprecateAwsImage, listAwsImages, restoreAwsImage } from './retention';
import { FailureType } from '../failures';

export type AwsTarget = Extract<Target, { kind: 'aws' }>;

export interface AwsTargetDeps extends AwsClientDeps {
  /** Poll interval and limit while AMIs, copies and snapshots become available (defaults 15 s, 2 h). */
  pollIntervalMs?: number;
  timeoutMs?: number;
  /** Limit for an ImportSnapshot task (default 24 h, as `image-builder upload` allows). */
  importTimeoutMs?: number;
  /** EBS blocks in flight (default 16) and S3 part size / parts in flight (64 MiB, 4). */
  blockConcurrency?: number;
  partSize?: number;
  queueSize?: number;
  /** ImportSnapshot's service role (default: AWS's `vmimport`). */
  importRoleName?: string;
  /** Every progress update, also outside an activity (benches, tests). */
  onProgress?: (p: AwsPublishProgress) => void;
}

/** Heartbeat details of a publish: small, secret-free. */
export interface AwsPublishProgress {
  phase: 'snapshot' | 'register' | 'copy' | 'share' | 'done';
  upload?: EbsUploadProgress;
  import?: S3ImportProgress;
  snapshotId?: string;
}

const token = (...parts: string[]) => createHash('sha256').update(parts.join('/')).digest('hex').slice(0, 64);

export function createAwsTarget(deps: AwsTargetDeps = {}): PublishTargetDriver<AwsTarget> {
  const wait = { intervalMs: deps.pollIntervalMs ?? 15_000, timeoutMs: deps.timeoutMs ?? 2 * 3600_000 };

  async function publish(req: PublishRequest & { target: AwsTarget }): Promise<Candidate[]> {
    const t = req.target;
    const where = `publishing ${req.imageName} to target ${req.targetName} (${t.region})`;
    if (req.artifact.type !== 'ami')
      throw ApplicationFailure.nonRetryable(`${where}: aws targets take ami artifacts, got ${req.artifact.type}; build ami for ${req.arch}`, FailureType.Config);
    const clients = awsClients(t.region, t.credentials, deps);
    const signal = activitySignal();
    const ctx = { ...wait, signal };
    let progress: AwsPublishProgress = previousDetails<AwsPublishProgress>() ?? { phase: 'snapshot' };
    const report = (p: Partial<AwsPublishProgress>) => {
      progress = { ...progress, ...p };
      heartbeat(progress);
      deps.onProgress?.(progress);
    };
    const tags: TagMap = {
      [AWS_TAGS.releaseId]: req.releaseId,
      [AWS_TAGS.arch]: req.arch,
      [AWS_TAGS.target]: req.targetName,
      [AWS_TAGS.imageName]: req.imageName,
    };
    const description = `${req.imageName} (bootc-release ${req.releaseId}, sha256 ${req.artifact.sha256.slice(0, 16)})`;
    try {
      let snapshotId = progress.snapshotId;
      if (!snapshotId) {
        const snapshotTags = { ...tags, [AWS_TAGS.step]: 'snapshot', Name: req.imageName };
        if (t.method === 'ebs-direct') {
          const up = await uploadEbsDirect(clients.ebs(), clients.ec2(), {
            file: req.artifact.path,
            tags: snapshotTags,
            description,
            clientToken: token(req.releaseId, req.arch, req.targetName, req.imageName, 'snapshot'),
            resume: progress.upload,
            onProgress: (upload) => report({ upload }),
            signal,
            concurrency: deps.blockConcurrency,
          });
          snapshotId = up.snapshotId;
        } else {
          const out = await importViaS3(clients.s3(), clients.ec2(), {
            file: req.artifact.path,
            sha256: req.artifact.sha256,
            bucket: t.bucket!,
            key: `${importPrefix(req.releaseId)}${req.imageName}.raw`,
            tags: snapshotTags,
            description,
            clientToken: token(req.releaseId, req.arch, req.targetName, req.imageName, 'import'),
            roleName: deps.importRoleName,
            resume: progress.import,
            onProgress: (p) => report({ import: p }),
            signal,
            partSize: deps.partSize,
            queueSize: deps.queueSize,
            intervalMs: wait.intervalMs,
            timeoutMs: deps.importTimeoutMs ?? 24 * 3600_000,
          });
          snapshotId = out.snapshotId;
        }
        await waitSnapshotCompleted(clients.ec2(), snapshotId, ctx);
        report({ phase: 'register', snapshotId, upload: undefined, import: undefined });
      }
      const images: RegisteredAmi[] = [];
      const imageTags = { ...tags, [AWS_TAGS.step]: 'image' };
      images.push(
        await registerImage(
          clients.ec2(),
          { region: t.region, name: req.imageName, description, arch: req.arch, bootMode: t.bootMode, snapshotId, tags: imageTags },
          ctx,
        ),
      );
      report({ phase: 'copy' });
      images.push(
        ...(await Promise.all(
          t.copyTo
            .filter((r) => r !== t.region)
            .map((region) =>
              copyImage(
                clients.ec2(region),
                {
                  sourceRegion: t.region,
                  sourceImageId: images[0].imageId,
                  region,
                  name: req.imageName,
                  description,
                  tags: imageTags,
                  clientToken: token(req.releaseId, req.arch, req.targetName, req.imageName, region),
                },
                ctx,
              ),
            ),
        )),
      );
      report({ phase: 'share' });
      for (const image of images) await shareImage(clients.ec2(image.region), image, t.shareWith);
      report({ phase: 'done' });
      return images.map((image) => ({
        arch: req.arch,
        target: req.targetName,
        kind: 'aws',
        region: image.region,
        imageId: image.imageId,
        name: req.imageName,
        type: 'ami',
        size: req.artifact.size,
        sha256: req.artifact.sha256,
        resources: image.snapshotIds.map((id) => ({ kind: 'snapshot', id, region: image.region })),
      }));
    } catch (err) {
      // Cancelled: surface Temporal's own reason (a CancelledFailure), not the aborted request's error.
      if (signal?.aborted) throw signal.reason;
      throw classifyAwsError(err, where, `targets.${req.targetName}`);
    }
  }

  async function check(t: AwsTarget, ctx: { releaseId: string; targetName: string }): Promise<CheckResult> {
    const clients = awsClients(t.region, t.credentials, deps);
    const { result, probe, credentials } = awsPreflight(`target ${ctx.targetName}`, (f) => `targets.${ctx.targetName}.${f}`);
    await credentials(clients);
    if (!result.ok) return result;
    const regions = [t.region, ...t.copyTo];
    await probe(`Checking regions ${regions.join(', ')}…`, 'region / copyTo', async () => {
      const out = await (clients.ec2() as Sends<DescribeRegionsCommand>).send(new DescribeRegionsCommand({ AllRegions: true }));
      const known = new Set((out.Regions ?? []).map((r) => r.RegionName));
      const missing = regions.filter((r) => !known.has(r));
      if (missing.length) throw Object.assign(new Error(`unknown or disabled region(s) ${missing.join(', ')}`), { name: 'InvalidParameterValue' });
      const disabled = (out.Regions ?? []).filter((r) => regions.includes(r.RegionName!) && r.OptInStatus === 'not-opted-in');
      if (disabled.length) throw Object.assign(new Error(`region(s) ${disabled.map((r) => r.RegionName).join(', ')} not enabled for this account`), { name: 'OptInRequired' });
      return 'Regions are enabled.';
    });
    for (const region of regions)
      await probe(`Checking permission to list AMIs in ${region}…`, 'credentials', async () => {
        await (clients.ec2(region) as Sends<DescribeImagesCommand>).send(new DescribeImagesCommand({ Owners: ['self'], MaxResults: 5 }));
        return `AMIs in ${region} can be listed.`;
      });
    if (t.method === 's3-import')
      await probe(`Checking bucket ${t.bucket}…`, 'bucket', async () => {
        try {
          await (clients.s3() as Sends<HeadBucketCommand>).send(new HeadBucketCommand({ Bucket: t.bucket }));
        } catch (err) {
          if (isNotFound(err)) throw Object.assign(new Error(`bucket ${t.bucket} does not exist; create it in ${t.region}`), { name: 'NoSuchBucket' });
          throw err;
        }
        return `Bucket ${t.bucket} is reachable.`;
      });
    if (result.ok) result.messages.push('Upload conditions met.');
    return result;
  }

  async function remove(t: AwsTarget, candidate: Candidate): Promise<string[]> {
    const clients = awsClients(t.region, t.credentials, deps);
    const home = candidate.region ?? t.region;
    const byRegion = new Map<string, { images: string[]; snapshots: string[] }>();
    const at = (r: string) => byRegion.get(r) ?? byRegion.set(r, { images: [], snapshots: [] }).get(r)!;
    at(home).images.push(candidate.imageId);
    for (const r of candidate.resources ?? []) {
      if (r.kind === 'snapshot') at(r.region ?? home).snapshots.push(r.id);
      else if (r.kind === 'image') at(r.region ?? home).images.push(r.id);
    }
    const kept: string[] = [];
    try {
      for (const [region, { images, snapshots }] of byRegion) {
        const ec2 = clients.ec2(region);
        for (const imageId of images) kept.push(...(await deleteImage(ec2, imageId)));
        kept.push(...(await deleteImage(ec2, undefined, snapshots)));
      }
      return [...new Set(kept)];
    } catch (err) {
      throw classifyAwsError(err, `deleting ${candidate.name} (${candidate.imageId}) from target ${candidate.target}`, `targets.${candidate.target}.credentials`);
    }
  }

  async function deleteRelease(t: AwsTarget, scope: PublishScope): Promise<string[]> {
    try {
      return await sweepAwsRelease(awsClients(t.region, t.credentials, deps), t, scope);
    } catch (err) {
      throw classifyAwsError(err, `deleting what release ${scope.releaseId} made at target ${scope.targetName}`, `targets.${scope.targetName}.credentials`);
    }
  }

  async function listReleases(t: AwsTarget, targetName: string): Promise<PublishScope[]> {
    try {
      return await listAwsReleases(awsClients(t.region, t.credentials, deps), t, targetName);
    } catch (err) {
      throw classifyAwsError(err, `listing what releases left at target ${targetName}`, `targets.${targetName}.credentials`);
    }
  }

  /** Retention's calls (activities/aws/retention.ts), with errors that name the image and the credentials field. */
  async function classified<R>(what: string, targetName: string, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (err) {
      throw classifyAwsError(err, what, `targets.${targetName}.credentials`);
    }
  }
  const ec2Of = (t: AwsTarget, image: PublishedImage) => awsClients(t.region, t.credentials, deps).ec2(image.region);
  const about = (image: PublishedImage) => `${image.name} (${image.imageId}) in ${image.region} at target ${image.target}`;

  return {
    check,
    publish,
    delete: remove,
    deleteRelease,
    listReleases,
    listImages: (t, targetName, definition) =>
      classified(`listing the AMIs of ${definition} at target ${targetName}`, targetName, () =>
        listAwsImages(awsClients(t.region, t.credentials, deps), t, targetName, definition),
      ),
    inUse: (t, image) => classified(`looking for instances of ${about(image)}`, image.target, () => awsImageUser(ec2Of(t, image), image)),
    deprecate: (t, image, at) => classified(`deprecating ${about(image)}`, image.target, () => deprecateAwsImage(ec2Of(t, image), image, at)),
    restore: (t, image) => classified(`restoring ${about(image)}`, image.target, () => restoreAwsImage(ec2Of(t, image), image)),
  };
}
