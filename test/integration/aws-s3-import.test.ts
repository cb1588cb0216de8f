// The S3 + ImportSnapshot path and the target's preflight. moto stores the S3 upload faithfully but has no
// ImportSnapshot (HTTP 500), so: the upload and the ImportSnapshot request are checked on moto and on the recorded
// request; the wait loop runs against a middleware that answers ImportSnapshot/DescribeImportSnapshotTasks with a
// scripted sequence (fault injection), while everything else goes to moto.
import { CreateSnapshotCommand, CreateVolumeCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Target } from '../../config/schema';
import { awsClients, type AwsClientDeps } from '../../activities/aws/clients';
import { importViaS3 } from '../../activities/aws/s3-import';
import { AWS_TAGS } from '../../activities/aws/tags';
import { createAwsTarget, type AwsPublishProgress, type AwsTarget } from '../../activities/aws/target';
import type { Candidate, PublishRequest } from '../../activities/types';
import { createAwsBuilderProvider, type AwsBuilder } from '../../activities/aws/builder-vm';
import { Builder } from '../../config/schema';
import { startMoto } from '../../scripts/servers/moto';
import type { Service } from '../../scripts/servers/process';
import { fakeCredentials, recorder, sparseImage, tempDir } from './aws-helpers';

const rig = inject('rig');
const region = 'us-east-2';
const MiB = 1024 * 1024;
const s3 = new S3Client({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials, forcePathStyle: true });
const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials });

async function bucket(): Promise<string> {
  const name = `images-${randomUUID()}`;
  await s3.send(new CreateBucketCommand({ Bucket: name, CreateBucketConfiguration: { LocationConstraint: region } }));
  return name;
}

function image() {
  return sparseImage(path.join(tempDir(rig.dir, 'aws-s3'), 'disk.raw'), 24 * MiB, [{ offset: 3 * MiB, length: 2 * MiB }]);
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Answers the import calls moto lacks: each DescribeImportSnapshotTasks by id returns the next scripted state. */
function importTasks(states: { Status: string; Progress?: string; StatusMessage?: string; withSnapshot?: boolean }[], snapshotId: string) {
  let i = 0;
  const onClient: AwsClientDeps['onClient'] = (client, service) => {
    if (service !== 'ec2') return;
    client.middlewareStack.add(
      (next: any, context: any) => async (args: any) => {
        if (context.commandName === 'ImportSnapshotCommand') return { output: { $metadata: {}, ImportTaskId: 'import-snap-0123456789abcdef0' }, response: {} };
        if (context.commandName !== 'DescribeImportSnapshotTasksCommand') return next(args);
        if (!args.input.ImportTaskIds) return { output: { $metadata: {}, ImportSnapshotTasks: [] }, response: {} };
        const { withSnapshot, ...state } = states[Math.min(i++, states.length - 1)];
        const detail = { ...state, SnapshotId: withSnapshot ? snapshotId : undefined };
        return { output: { $metadata: {}, ImportSnapshotTasks: [{ ImportTaskId: args.input.ImportTaskIds[0], SnapshotTaskDetail: detail }] }, response: {} };
      },
      { step: 'initialize', name: 'importTaskScript' },
    );
  };
  return onClient;
}

/** moto has no DescribeImportSnapshotTasks either: answer the look-up with "no tasks", let ImportSnapshot reach moto. */
const noImportTasks: AwsClientDeps['onClient'] = (client, service) => {
  if (service !== 'ec2') return;
  client.middlewareStack.add(
    (next: any, context: any) => async (args: any) =>
      context.commandName === 'DescribeImportSnapshotTasksCommand' ? { output: { $metadata: {}, ImportSnapshotTasks: [] }, response: {} } : next(args),
    { step: 'initialize', name: 'noImportTasks' },
  );
};

async function importedSnapshot(): Promise<string> {
  const volume = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${region}a`, Size: 1 }));
  return (await ec2.send(new CreateSnapshotCommand({ VolumeId: volume.VolumeId }))).SnapshotId!;
}

function request(target: AwsTarget): PublishRequest & { target: AwsTarget } {
  const file = image();
  const releaseId = `r-${randomUUID()}`;
  return {
    releaseId,
    arch: 'x86_64',
    targetName: 'aws-import',
    target,
    imageName: `copr-builder-${releaseId}-x86_64-20250101_000000`,
    artifact: { arch: 'x86_64', type: 'ami', path: file, size: statSync(file).size, dataBytes: 2 * MiB, sha256: sha256(file), stagingQueue: 'q' },
  };
}

const awsTarget = (extra: Record<string, unknown>) =>
  Target.parse({ kind: 'aws', region, method: 's3-import', credentials: { endpoint: rig.motoEndpoint }, ...extra }) as AwsTarget;

describe('aws s3-import', () => {
  it('uploads the whole image to S3 and asks ImportSnapshot for a RAW disk from that object', async () => {
    const rec = recorder({ onClient: noImportTasks });
    const clients = awsClients(region, { endpoint: rig.motoEndpoint }, rec.deps);
    const file = image();
    const Bucket = await bucket();
    const Key = 'bootc-release/r-1/disk.raw';
    const tags = { [AWS_TAGS.releaseId]: `r-${randomUUID()}`, [AWS_TAGS.step]: 'snapshot' };
    const req = { file, sha256: sha256(file), bucket: Bucket, key: Key, tags, clientToken: 'tok', roleName: 'vmimport', partSize: 5 * MiB, intervalMs: 10, timeoutMs: 5_000 };
    await expect(importViaS3(clients.s3(), clients.ec2(), req)).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key }));
    expect(head.ContentLength).toBe(24 * MiB);
    expect(head.Metadata?.sha256).toBe(sha256(file));
    expect(rec.of('UploadPartCommand')).toHaveLength(5);
    expect(rec.of('ImportSnapshotCommand').map((c) => c.input)).toEqual([
      expect.objectContaining({
        DiskContainer: expect.objectContaining({ Format: 'RAW', UserBucket: { S3Bucket: Bucket, S3Key: Key } }),
        ClientToken: 'tok',
        RoleName: 'vmimport',
        TagSpecifications: [{ ResourceType: 'import-snapshot-task', Tags: expect.arrayContaining([{ Key: AWS_TAGS.releaseId, Value: tags[AWS_TAGS.releaseId] }]) }],
      }),
    ]);
    rec.clear();
    // A retry finds the object already there (same size and sha256) and does not upload it again.
    await expect(importViaS3(clients.s3(), clients.ec2(), req)).rejects.toThrow();
    expect(rec.of('UploadPartCommand')).toEqual([]);
    expect(rec.of('CreateMultipartUploadCommand')).toEqual([]);
  });

  it('waits for the import task, registers the AMI from its snapshot, tags the snapshot and deletes the object', async () => {
    const snapshotId = await importedSnapshot();
    const rec = recorder({ onClient: importTasks([{ Status: 'active', Progress: '10' }, { Status: 'active', Progress: '60' }, { Status: 'completed', withSnapshot: true }], snapshotId) });
    const seen: string[] = [];
    const driver = createAwsTarget({ ...rec.deps, pollIntervalMs: 10, partSize: 5 * MiB, onProgress: (p) => p.import?.percent && seen.push(p.import.percent) });
    const target = awsTarget({ bucket: await bucket() });
    const req = request(target);
    const [candidate] = await driver.publish(req);
    expect([...new Set(seen)]).toEqual(['10', '60']);
    expect(rec.of('RegisterImageCommand')[0].input.BlockDeviceMappings[0].Ebs.SnapshotId).toBe(snapshotId);
    expect(candidate.resources).toContainEqual({ kind: 'snapshot', id: snapshotId, region });
    await expect(s3.send(new HeadObjectCommand({ Bucket: target.bucket, Key: `bootc-release/${req.releaseId}/${req.imageName}.raw` }))).rejects.toThrow();
    const [snap] = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots!;
    expect(snap.Tags).toEqual(expect.arrayContaining([{ Key: AWS_TAGS.upload, Value: 'complete' }, { Key: AWS_TAGS.releaseId, Value: req.releaseId }]));
    await driver.delete(target, candidate);
  });

  it('resumes waiting on the import task named in its heartbeat without uploading or importing again', async () => {
    const snapshotId = await importedSnapshot();
    const rec = recorder({ onClient: importTasks([{ Status: 'active', Progress: '80' }, { Status: 'completed', withSnapshot: true }], snapshotId) });
    const driver = createAwsTarget({ ...rec.deps, pollIntervalMs: 10 });
    const target = awsTarget({ bucket: await bucket() });
    const req = request(target);
    const heartbeat: AwsPublishProgress = { phase: 'snapshot', import: { phase: 'import', importTaskId: 'import-snap-0123456789abcdef0', bytesSent: req.artifact.size } };
    const env = new MockActivityEnvironment({ heartbeatDetails: heartbeat });
    const [candidate] = (await env.run(() => driver.publish(req))) as Candidate[];
    for (const cmd of ['PutObjectCommand', 'CreateMultipartUploadCommand', 'UploadPartCommand', 'ImportSnapshotCommand']) expect(rec.of(cmd)).toEqual([]);
    expect(candidate.resources).toContainEqual({ kind: 'snapshot', id: snapshotId, region });
    await driver.delete(target, candidate);
  });

  it('fails the publish with the message of an import task that AWS gave up on', async () => {
    const rec = recorder({ onClient: importTasks([{ Status: 'active' }, { Status: 'deleted', StatusMessage: 'ClientError: Disk validation failed [Unsupported format]' }], 'snap-0') });
    const driver = createAwsTarget({ ...rec.deps, pollIntervalMs: 10, partSize: 5 * MiB });
    const req = request(awsTarget({ bucket: await bucket() }));
    await expect(driver.publish(req)).rejects.toMatchObject({ message: expect.stringMatching(/Disk validation failed/), nonRetryable: true });
    expect(rec.of('RegisterImageCommand')).toEqual([]);
  });
});

describe('aws preflight', () => {
  let strict: Service;
  beforeAll(async () => {
    // A moto that checks credentials: unknown access keys are refused as AWS refuses them.
    strict = await startMoto(tempDir(rig.dir, 'moto-strict'), { INITIAL_NO_AUTH_ACTION_COUNT: '0' }, 'moto-strict.log');
  });
  afterAll(async () => strict?.stop());

  const created = (calls: { command: string }[]) => calls.filter((c) => !/^(Get|Describe|Head|List)/.test(c.command));

  it('reports a missing bucket by its config field before anything is created', async () => {
    const rec = recorder();
    const result = await createAwsTarget(rec.deps).check(awsTarget({ bucket: `missing-${randomUUID()}` }), { releaseId: 'r', targetName: 'aws-import' });
    expect(result.ok).toBe(false);
    expect(result.messages.join('\n')).toMatch(/targets\.aws-import\.bucket/);
    expect(created(rec.calls)).toEqual([]);
  });

  it('passes for an existing bucket and known regions', async () => {
    const result = await createAwsTarget(recorder().deps).check(awsTarget({ bucket: await bucket(), copyTo: ['eu-west-1'] }), { releaseId: 'r', targetName: 't' });
    expect(result.messages.at(-1)).toBe('Upload conditions met.');
    expect(result.ok).toBe(true);
  });

  it('reports refused credentials for the target and the builder before anything is created', async () => {
    const rec = recorder();
    const target = Target.parse({ kind: 'aws', region, credentials: { endpoint: strict.address } }) as AwsTarget;
    const result = await createAwsTarget(rec.deps).check(target, { releaseId: 'r', targetName: 'aws-prod' });
    expect(result.ok).toBe(false);
    expect(result.messages.join('\n')).toMatch(/refused the credentials.*targets\.aws-prod\.credentials/s);
    const builder = Builder.parse({ provider: 'aws', region, instanceType: 't3.micro', ami: 'ami-0123456789abcdef0', credentials: { endpoint: strict.address } }) as AwsBuilder;
    const b = await createAwsBuilderProvider(rec.deps).check(builder, { releaseId: 'r', arch: 'x86_64' });
    expect(b.ok).toBe(false);
    expect(b.messages.join('\n')).toMatch(/refused the credentials.*architectures\.x86_64\.builder\.credentials/s);
    expect(created(rec.calls)).toEqual([]);
    expect(rec.calls.map((c) => c.command)).toEqual(['GetCallerIdentityCommand', 'GetCallerIdentityCommand']);
  });
});
