// The resumable multipart upload against moto's real S3 (multipart, ListParts, ListMultipartUploads), directly and
// through its two callers: the aws s3-import target and the ibmcloud COS upload (IAM/VPC from the stand-in).
// UploadPart requests are counted where they leave the SDK (a middleware) or, for COS, on the wire (a proxy).
import { CreateSnapshotCommand, CreateVolumeCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AwsClientDeps } from '../../activities/aws/clients';
import { createAwsTarget, type AwsPublishProgress, type AwsTarget } from '../../activities/aws/target';
import type { CosUploadBeat } from '../../activities/ibmcloud/cos-upload';
import { createIbmCloudTarget, type IbmCloudTarget } from '../../activities/ibmcloud/target';
import { fromRuns, toRuns } from '../../activities/runtime/number-runs';
import {
  uploadResumable,
  type MultipartResumeState,
  type ResumableUploadRequest,
} from '../../activities/s3/resumable-upload';
import type { Candidate, PublishRequest, StagedArtifact } from '../../activities/types';
import { Target } from '../../config/schema';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';
import { fakeCredentials, recorder, tempDir } from './aws-helpers';

const rig = inject('rig');
const MiB = 1024 * 1024;
const region = 'us-east-2';
const PARTS = 6; // 26 MiB in 5 MiB parts: five full parts and a 1 MiB last one
const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials });

/** An S3 client that records the commands it sends (UploadPart with its part number). */
function s3Client() {
  const calls: { command: string; part?: number; uploadId?: string }[] = [];
  const s3 = new S3Client({
    region,
    endpoint: rig.motoEndpoint,
    credentials: fakeCredentials,
    forcePathStyle: true,
    maxAttempts: 1,
  });
  s3.middlewareStack.add(
    (next: any, context: any) => async (args: any) => {
      calls.push({
        command: context.commandName,
        part: args.input.PartNumber,
        uploadId: args.input.UploadId,
      });
      return next(args);
    },
    { step: 'initialize', name: 'countRequests' },
  );
  return {
    s3,
    calls,
    of: (command: string) => calls.filter((c) => c.command === command),
    parts: () => calls.filter((c) => c.command === 'UploadPartCommand').map((c) => c.part!),
    clear: () => calls.splice(0),
  };
}
const plain = s3Client().s3;

async function bucket(): Promise<string> {
  const name = `resumable-${randomUUID()}`;
  await plain.send(
    new CreateBucketCommand({ Bucket: name, CreateBucketConfiguration: { LocationConstraint: region } }),
  );
  return name;
}

function file(name = 'disk.raw'): { file: string; sha256: string; bytes: Buffer } {
  const bytes = randomBytes(26 * MiB);
  const f = path.join(tempDir(rig.dir, 's3-resumable'), name);
  writeFileSync(f, bytes);
  return { file: f, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
}

/** Aborted requests may still land on the server a moment later; wait until they have. */
const settle = () => new Promise((r) => setTimeout(r, 300));

async function serverParts(Bucket: string, Key: string, UploadId: string): Promise<number[]> {
  return ((await plain.send(new ListPartsCommand({ Bucket, Key, UploadId }))).Parts ?? [])
    .map((p) => p.PartNumber!)
    .sort((a, b) => a - b);
}

async function readBack(Bucket: string, Key: string) {
  const out = await plain.send(new GetObjectCommand({ Bucket, Key }));
  return {
    bytes: Buffer.from(await out.Body!.transformToByteArray()),
    metadata: out.Metadata,
    etag: out.ETag,
  };
}

const all = Array.from({ length: PARTS }, (_, i) => i + 1);
const missingFrom = (have: number[]) => all.filter((n) => !have.includes(n));

/** Runs an upload and aborts it once `after` parts are confirmed; returns the last state it reported. */
async function abortedUpload(
  s3: S3Client,
  req: ResumableUploadRequest,
  after: number,
): Promise<MultipartResumeState> {
  const stop = new AbortController();
  let last: MultipartResumeState | undefined;
  const run = uploadResumable(s3, {
    ...req,
    signal: stop.signal,
    onProgress: (state) => {
      last = state;
      if (fromRuns(state.done).length >= after) stop.abort(new Error('worker killed'));
    },
  });
  await expect(run).rejects.toThrow('worker killed');
  await settle();
  return last!;
}

describe('resumable multipart upload', () => {
  it('resumes an aborted upload from its state, sending only the parts the server lacks, and the object reads back byte-identical', async () => {
    const Bucket = await bucket();
    const { file: f, sha256, bytes } = file();
    const rec = s3Client();
    const req = {
      bucket: Bucket,
      key: 'a/disk.raw',
      file: f,
      sha256,
      metadata: { 'release-id': 'r-1' },
      partSize: 5 * MiB,
      concurrency: 2,
    };
    const state = await abortedUpload(rec.s3, req, 2);
    expect(state).toMatchObject({ key: 'a/disk.raw', partSize: 5 * MiB, sha256 });
    expect(fromRuns(state.done).length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(state).length).toBeLessThan(300); // fits a heartbeat with room to spare
    // Not aborted on cancel: the upload is still there for the next attempt.
    const held = await serverParts(Bucket, req.key, state.uploadId);
    expect(held.length).toBeGreaterThanOrEqual(2);
    expect(held.length).toBeLessThan(PARTS);
    rec.clear();

    const out = await uploadResumable(rec.s3, { ...req, resume: state });
    expect(out).toMatchObject({
      outcome: 'uploaded',
      resumedFrom: 'state',
      uploadId: state.uploadId,
      parts: PARTS,
    });
    expect(rec.parts().sort((a, b) => a - b)).toEqual(missingFrom(held));
    expect(rec.of('CreateMultipartUploadCommand')).toEqual([]);
    expect(rec.of('AbortMultipartUploadCommand')).toEqual([]);
    const back = await readBack(Bucket, req.key);
    expect(back.bytes.equals(bytes)).toBe(true);
    expect(back.metadata).toMatchObject({ sha256, 'release-id': 'r-1' });
    expect(back.etag).toMatch(/-6"$/);
  });

  it('finds the upload by its key when the state is lost, continues it, and aborts a newer empty duplicate', async () => {
    const Bucket = await bucket();
    const { file: f, sha256, bytes } = file();
    const rec = s3Client();
    const req = { bucket: Bucket, key: 'b/disk.raw', file: f, sha256, partSize: 5 * MiB, concurrency: 2 };
    const lost = await abortedUpload(rec.s3, req, 2);
    const held = await serverParts(Bucket, req.key, lost.uploadId);
    // A duplicate, as a CreateMultipartUpload whose answer was lost leaves one: newer, but holding nothing.
    const duplicate = (await plain.send(new CreateMultipartUploadCommand({ Bucket, Key: req.key })))
      .UploadId!;
    rec.clear();

    const out = await uploadResumable(rec.s3, req); // no state
    expect(out).toMatchObject({ outcome: 'uploaded', resumedFrom: 'listing', uploadId: lost.uploadId });
    expect(rec.of('ListMultipartUploadsCommand')).toHaveLength(1);
    expect(rec.of('CreateMultipartUploadCommand')).toEqual([]);
    expect(rec.of('AbortMultipartUploadCommand').map((c) => c.uploadId)).toEqual([duplicate]);
    expect(rec.parts().sort((a, b) => a - b)).toEqual(missingFrom(held));
    expect((await readBack(Bucket, req.key)).bytes.equals(bytes)).toBe(true);
    expect(
      (await plain.send(new ListMultipartUploadsCommand({ Bucket, Prefix: req.key }))).Uploads ?? [],
    ).toEqual([]);
  });

  it('of several uploads holding nothing, continues the newest and aborts the others', async () => {
    const Bucket = await bucket();
    const { file: f, sha256 } = file();
    const rec = s3Client();
    const Key = 'e/disk.raw';
    const older = (await plain.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId!;
    const newer = (await plain.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId!;
    const out = await uploadResumable(rec.s3, {
      bucket: Bucket,
      key: Key,
      file: f,
      sha256,
      partSize: 5 * MiB,
    });
    expect(out).toMatchObject({ resumedFrom: 'listing', uploadId: newer, partsSent: PARTS });
    expect(rec.of('AbortMultipartUploadCommand').map((c) => c.uploadId)).toEqual([older]);
    expect(rec.of('CreateMultipartUploadCommand')).toEqual([]);
  });

  it('does not trust a found upload holding other bytes: every part whose MD5 differs is sent again', async () => {
    const Bucket = await bucket();
    const other = file('other.raw');
    const mine = file('mine.raw');
    const rec = s3Client();
    const req = { bucket: Bucket, key: 'c/disk.raw', partSize: 5 * MiB, concurrency: 2 };
    const stale = await abortedUpload(rec.s3, { ...req, ...other }, 3);
    rec.clear();
    // The state of the other file is ignored (other sha256); the upload found by key is reused, its parts are not.
    const out = await uploadResumable(rec.s3, { ...req, ...mine, resume: stale });
    expect(out).toMatchObject({ resumedFrom: 'listing', uploadId: stale.uploadId, partsSent: PARTS });
    expect(rec.parts().sort((a, b) => a - b)).toEqual(all);
    expect((await readBack(Bucket, req.key)).bytes.equals(mine.bytes)).toBe(true);
  });

  it('skips an object that is already complete with the same sha256, sending no part', async () => {
    const Bucket = await bucket();
    const { file: f, sha256 } = file();
    const rec = s3Client();
    const req = { bucket: Bucket, key: 'd/disk.raw', file: f, sha256, partSize: 5 * MiB };
    await uploadResumable(rec.s3, req);
    rec.clear();
    expect(await uploadResumable(rec.s3, req)).toMatchObject({
      outcome: 'exists',
      partsSent: 0,
      bytesSent: 0,
    });
    expect(rec.calls.map((c) => c.command)).toEqual(['HeadObjectCommand']);
  });

  it('keeps heartbeat state compact as part runs', () => {
    expect(toRuns([3, 1, 2, 7, 9, 8, 12])).toBe('1-3,7-9,12');
    expect(fromRuns('1-3,7-9,12')).toEqual([1, 2, 3, 7, 8, 9, 12]);
    expect(toRuns(Array.from({ length: 10_000 }, (_, i) => i + 1))).toBe('1-10000');
  });
});

describe('callers resume after a worker is cancelled mid-upload', () => {
  it('aws s3-import: a publish cancelled mid-upload resumes from its heartbeat without re-sending confirmed parts, then imports once', async () => {
    const snapshotId = await importedSnapshot();
    const rec = recorder({ onClient: importTasks(snapshotId) });
    const driver = createAwsTarget({ ...rec.deps, pollIntervalMs: 10, partSize: 5 * MiB, queueSize: 2 });
    const Bucket = await bucket();
    const target = Target.parse({
      kind: 'aws',
      region,
      method: 's3-import',
      bucket: Bucket,
      credentials: { endpoint: rig.motoEndpoint },
    }) as AwsTarget;
    const { file: f, sha256 } = file();
    const releaseId = `r-${randomUUID()}`;
    const imageName = `copr-builder-${releaseId}-x86_64-20250101_000000`;
    const req: PublishRequest & { target: AwsTarget } = {
      releaseId,
      arch: 'x86_64',
      targetName: 'aws-import',
      target,
      imageName,
      artifact: {
        arch: 'x86_64',
        type: 'ami',
        path: f,
        size: 26 * MiB,
        dataBytes: 26 * MiB,
        sha256,
        stagingQueue: 'q',
      },
    };
    const first = new MockActivityEnvironment();
    let last: AwsPublishProgress | undefined;
    first.on('heartbeat', (d: AwsPublishProgress) => {
      last = d;
      if (fromRuns(d.import?.multipart?.done ?? '').length >= 2) first.cancel();
    });
    await expect(first.run(() => driver.publish(req))).rejects.toBeInstanceOf(CancelledFailure);
    await settle();
    const multipart = last!.import!.multipart!;
    const key = `bootc-release/${releaseId}/${imageName}.raw`;
    expect(multipart.key).toBe(key);
    const held = await serverParts(Bucket, key, multipart.uploadId);
    expect(rec.of('ImportSnapshotCommand')).toEqual([]);
    rec.clear();

    const second = new MockActivityEnvironment({ heartbeatDetails: last });
    const [candidate] = (await second.run(() => driver.publish(req))) as Candidate[];
    expect(
      rec
        .of('UploadPartCommand')
        .map((c) => c.input.PartNumber)
        .sort((a, b) => a - b),
    ).toEqual(missingFrom(held));
    expect(rec.of('CreateMultipartUploadCommand')).toEqual([]);
    expect(rec.of('CompleteMultipartUploadCommand').map((c) => c.input.UploadId)).toEqual([
      multipart.uploadId,
    ]);
    expect(rec.of('ImportSnapshotCommand')).toHaveLength(1);
    expect(rec.of('RegisterImageCommand')).toHaveLength(1);
    expect(candidate.resources).toContainEqual({ kind: 'snapshot', id: snapshotId, region });
    await driver.delete(target, candidate);
  });

  describe('ibmcloud COS', () => {
    const env = { IBM_KEY: 'editor-key-for-tests', COS_AK: 'testing', COS_SK: 'testing' };
    let standin: IbmCloudStandin;
    let proxy: Awaited<ReturnType<typeof countingProxy>>;
    beforeAll(async () => {
      proxy = await countingProxy(rig.motoEndpoint);
      standin = await IbmCloudStandin.start({
        apiKeys: { [env.IBM_KEY]: 'editor' },
        regions: { 'us-east': {} },
      });
    });
    afterAll(async () => {
      await standin?.stop();
      await proxy?.close();
    });

    it('a publish cancelled mid-upload resumes from its heartbeat, sending only the parts COS lacks, and one image is made', async () => {
      const Bucket = await bucket();
      const target = Target.parse({
        kind: 'ibmcloud',
        regions: ['us-east'],
        cosBucket: Bucket,
        cosEndpoint: proxy.endpoint,
        endpoint: standin.endpoint,
        iamEndpoint: standin.iamEndpoint,
        apiKeyEnv: 'IBM_KEY',
        cosAccessKeyEnv: 'COS_AK',
        cosSecretKeyEnv: 'COS_SK',
      }) as IbmCloudTarget;
      const { file: f, sha256, bytes } = file('disk.qcow2');
      const artifact: StagedArtifact = {
        arch: 's390x',
        type: 'qcow2',
        path: f,
        size: bytes.length,
        dataBytes: bytes.length,
        sha256,
        stagingQueue: 'q',
      };
      const req: PublishRequest & { target: IbmCloudTarget } = {
        releaseId: 'rel-cos-1',
        arch: 's390x',
        targetName: 'ibm',
        target,
        artifact,
        imageName: 'resume-s390x-20250101_120000',
      };
      const driver = createIbmCloudTarget({ env, pollIntervalMs: 10, cosPartSize: 5 * MiB });

      const first = new MockActivityEnvironment();
      let last: CosUploadBeat | undefined;
      first.on('heartbeat', (d: CosUploadBeat) => {
        if (d.stage !== 'cos-upload') return;
        last = d;
        if (fromRuns(d.upload?.done ?? '').length >= 2) first.cancel();
      });
      await expect(first.run(() => driver.publish(req))).rejects.toBeInstanceOf(CancelledFailure);
      await settle();
      const upload = last!.upload!;
      const key = 'rel-cos-1/resume-s390x-20250101_120000.qcow2';
      expect(upload.key).toBe(key);
      const held = await serverParts(Bucket, key, upload.uploadId);
      expect(held.length).toBeLessThan(PARTS);
      proxy.clear();

      const second = new MockActivityEnvironment({ heartbeatDetails: last });
      const candidates = (await second.run(() => driver.publish(req))) as Candidate[];
      expect(proxy.parts().sort((a, b) => a - b)).toEqual(missingFrom(held));
      expect(proxy.creates()).toBe(0);
      expect(candidates).toHaveLength(1);
      expect(standin.images('us-east').filter((i) => i.name === 'resume-s390x-20250101-120000')).toHaveLength(
        1,
      );
      const back = await readBack(Bucket, key);
      expect(back.bytes.equals(await readFile(f))).toBe(true);
      expect(back.metadata).toMatchObject({ sha256, 'release-id': 'rel-cos-1' });
    });
  });
});

/** moto has no ImportSnapshot: answer it and the task look-ups (none running; then completed with `snapshotId`). */
function importTasks(snapshotId: string): AwsClientDeps['onClient'] {
  return (client, service) => {
    if (service !== 'ec2') return;
    client.middlewareStack.add(
      (next: any, context: any) => async (args: any) => {
        const answer = (output: object) => ({ output: { $metadata: {}, ...output }, response: {} });
        if (context.commandName === 'ImportSnapshotCommand')
          return answer({ ImportTaskId: 'import-snap-0123456789abcdef0' });
        if (context.commandName !== 'DescribeImportSnapshotTasksCommand') return next(args);
        if (!args.input.ImportTaskIds) return answer({ ImportSnapshotTasks: [] });
        const detail = { Status: 'completed', SnapshotId: snapshotId };
        return answer({
          ImportSnapshotTasks: [{ ImportTaskId: args.input.ImportTaskIds[0], SnapshotTaskDetail: detail }],
        });
      },
      { step: 'initialize', name: 'importTasks' },
    );
  };
}

async function importedSnapshot(): Promise<string> {
  const volume = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${region}a`, Size: 1 }));
  return (await ec2.send(new CreateSnapshotCommand({ VolumeId: volume.VolumeId }))).SnapshotId!;
}

/** A pass-through HTTP proxy in front of moto that notes every UploadPart and CreateMultipartUpload on the wire. */
async function countingProxy(upstream: string) {
  const up = new URL(upstream);
  const seen: { method: string; url: URL }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: new URL(req.url!, upstream) });
    const fwd = http.request(
      { host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    fwd.on('error', () => res.destroy());
    req.on('close', () => req.complete || fwd.destroy()); // a request the client aborted is aborted upstream too
    req.pipe(fwd);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    parts: () =>
      seen
        .filter((r) => r.method === 'PUT' && r.url.searchParams.has('partNumber'))
        .map((r) => Number(r.url.searchParams.get('partNumber'))),
    creates: () => seen.filter((r) => r.method === 'POST' && r.url.searchParams.has('uploads')).length,
    clear: () => seen.splice(0),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
