// Publish target `aws`: the raw disk bib writes for `--type ami` becomes an EBS snapshot (EBS direct APIs, or S3 +
// ImportSnapshot), an AMI in the target region, copies in every `copyTo` region, each shared with `shareWith`
// (publish.ts). Here the driver: its preflight check, delete, release sweep and retention calls.
import { DescribeImagesCommand, DescribeRegionsCommand } from '@aws-sdk/client-ec2';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import type { Target } from '../../config/schema';
import type { Candidate, CheckResult, PublishedImage, PublishScope, PublishTargetDriver } from '../types';
import { awsClients, type AwsClientDeps, type Sends } from './clients';
import { awsPreflight } from './preflight';
import type { EbsUploadProgress } from './ebs-direct-upload';
import { classifyAwsError, isNotFound } from './errors';
import { deleteImage } from './register-image';
import { publishAmi } from './publish';
import type { S3ImportProgress } from './s3-import';
import { listAwsReleases, sweepAwsRelease } from './release-sweep';
import { awsImageUser, deprecateAwsImage, listAwsImages, restoreAwsImage } from './retention';

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

export function createAwsTarget(deps: AwsTargetDeps = {}): PublishTargetDriver<AwsTarget> {
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
    publish: (req) => publishAmi(deps, req),
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
