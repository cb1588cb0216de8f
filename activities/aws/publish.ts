// Publishing one ami artifact to an `aws` target: an EBS snapshot (EBS direct APIs, or S3 + ImportSnapshot), an AMI
// in the target region, copies in every `copyTo` region, each shared with `shareWith`. Progress lives in heartbeat
// details, so a retried publish resumes its upload, skips a finished snapshot and finds what it already made.
import { ApplicationFailure } from '@temporalio/common';
import { createHash } from 'node:crypto';
import type { Candidate, PublishRequest } from '../types';
import { activitySignal, heartbeat, previousDetails } from '../runtime/heartbeat';
import { awsClients, type AwsClients } from './clients';
import { uploadEbsDirect } from './ebs-direct-upload';
import { classifyAwsError } from './errors';
import { copyImage, registerImage, shareImage, type RegisteredAmi } from './register-image';
import { importViaS3 } from './s3-import';
import { importPrefix } from './release-sweep';
import { waitSnapshotCompleted } from './snapshots';
import { AWS_TAGS, type TagMap } from './tags';
import { FailureType } from '../failures';
import type { AwsPublishProgress, AwsTarget, AwsTargetDeps } from './target';

type AwsPublishRequest = PublishRequest & { target: AwsTarget };

const token = (...parts: string[]) => createHash('sha256').update(parts.join('/')).digest('hex').slice(0, 64);

export async function publishAmi(deps: AwsTargetDeps, req: AwsPublishRequest): Promise<Candidate[]> {
  const t = req.target;
  const where = `publishing ${req.imageName} to target ${req.targetName} (${t.region})`;
  if (req.artifact.type !== 'ami')
    throw ApplicationFailure.nonRetryable(`${where}: aws targets take ami artifacts, got ${req.artifact.type}; build ami for ${req.arch}`, FailureType.Config);
  const publish = new AwsPublish(deps, req);
  try {
    const snapshotId = publish.progress.snapshotId || (await makeSnapshot(publish));
    const images = await registerAndCopy(publish, snapshotId);
    publish.report({ phase: 'share' });
    for (const image of images) await shareImage(publish.clients.ec2(image.region), image, t.shareWith);
    publish.report({ phase: 'done' });
    return images.map((image) => candidateOf(req, image));
  } catch (err) {
    // Cancelled: surface Temporal's own reason (a CancelledFailure), not the aborted request's error.
    if (publish.ctx.signal?.aborted) throw publish.ctx.signal.reason;
    throw classifyAwsError(err, where, `targets.${req.targetName}`);
  }
}

/** One publish attempt: its clients, waits, tags and description, and the progress it heartbeats. */
class AwsPublish {
  readonly clients: AwsClients;
  readonly ctx: { intervalMs: number; timeoutMs: number; signal: AbortSignal | undefined };
  progress: AwsPublishProgress;
  readonly tags: TagMap;
  readonly description: string;

  constructor(
    readonly deps: AwsTargetDeps,
    readonly req: AwsPublishRequest,
  ) {
    this.clients = awsClients(req.target.region, req.target.credentials, deps);
    this.ctx = {
      intervalMs: deps.pollIntervalMs ?? 15_000,
      timeoutMs: deps.timeoutMs ?? 2 * 3600_000,
      signal: activitySignal(),
    };
    this.progress = previousDetails<AwsPublishProgress>() ?? { phase: 'snapshot' };
    this.tags = {
      [AWS_TAGS.releaseId]: req.releaseId,
      [AWS_TAGS.arch]: req.arch,
      [AWS_TAGS.target]: req.targetName,
      [AWS_TAGS.imageName]: req.imageName,
    };
    this.description = `${req.imageName} (bootc-release ${req.releaseId}, sha256 ${req.artifact.sha256.slice(0, 16)})`;
  }

  report(p: Partial<AwsPublishProgress>): void {
    this.progress = { ...this.progress, ...p };
    heartbeat(this.progress);
    this.deps.onProgress?.(this.progress);
  }

  /** An idempotency token for one step of this publish (the same on every retry). */
  token(step: string): string {
    const { releaseId, arch, targetName, imageName } = this.req;
    return token(releaseId, arch, targetName, imageName, step);
  }
}

/** Uploads the disk as a snapshot by the target's method and waits until it is completed. */
async function makeSnapshot(publish: AwsPublish): Promise<string> {
  const { req, clients, tags } = publish;
  const snapshotTags = { ...tags, [AWS_TAGS.step]: 'snapshot', Name: req.imageName };
  const snapshotId =
    req.target.method === 'ebs-direct'
      ? await uploadSnapshot(publish, snapshotTags)
      : await importSnapshot(publish, snapshotTags);
  await waitSnapshotCompleted(clients.ec2(), snapshotId, publish.ctx);
  publish.report({ phase: 'register', snapshotId, upload: undefined, import: undefined });
  return snapshotId;
}

async function uploadSnapshot(publish: AwsPublish, tags: TagMap): Promise<string> {
  const { req, clients, deps } = publish;
  const up = await uploadEbsDirect(clients.ebs(), clients.ec2(), {
    file: req.artifact.path,
    tags,
    description: publish.description,
    clientToken: publish.token('snapshot'),
    resume: publish.progress.upload,
    onProgress: (upload) => publish.report({ upload }),
    signal: publish.ctx.signal,
    concurrency: deps.blockConcurrency,
  });
  return up.snapshotId;
}

async function importSnapshot(publish: AwsPublish, tags: TagMap): Promise<string> {
  const { req, clients, deps } = publish;
  const out = await importViaS3(clients.s3(), clients.ec2(), {
    file: req.artifact.path,
    sha256: req.artifact.sha256,
    bucket: req.target.bucket!,
    key: `${importPrefix(req.releaseId)}${req.imageName}.raw`,
    tags,
    description: publish.description,
    clientToken: publish.token('import'),
    roleName: deps.importRoleName,
    resume: publish.progress.import,
    onProgress: (p) => publish.report({ import: p }),
    signal: publish.ctx.signal,
    partSize: deps.partSize,
    queueSize: deps.queueSize,
    intervalMs: publish.ctx.intervalMs,
    timeoutMs: deps.importTimeoutMs ?? 24 * 3600_000,
  });
  return out.snapshotId;
}

/** The AMI in the target region, then its copies in the other `copyTo` regions, in parallel. */
async function registerAndCopy(publish: AwsPublish, snapshotId: string): Promise<RegisteredAmi[]> {
  const { req, clients, description, ctx } = publish;
  const t = req.target;
  const imageTags = { ...publish.tags, [AWS_TAGS.step]: 'image' };
  const home = await registerImage(
    clients.ec2(),
    { region: t.region, name: req.imageName, description, arch: req.arch, bootMode: t.bootMode, snapshotId, tags: imageTags },
    ctx,
  );
  publish.report({ phase: 'copy' });
  const copies = await Promise.all(
    t.copyTo
      .filter((r) => r !== t.region)
      .map((region) =>
        copyImage(
          clients.ec2(region),
          {
            sourceRegion: t.region,
            sourceImageId: home.imageId,
            region,
            name: req.imageName,
            description,
            tags: imageTags,
            clientToken: publish.token(region),
          },
          ctx,
        ),
      ),
  );
  return [home, ...copies];
}

const candidateOf = (req: AwsPublishRequest, image: RegisteredAmi): Candidate => ({
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
});
