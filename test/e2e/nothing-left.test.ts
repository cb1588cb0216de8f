// Nothing lost, nothing left behind, on the real Temporal server with moto and a real glance-api:
// - a release cancelled while it publishes deletes what it made (snapshots, AMIs, COS multipart uploads and objects,
//   VPC images, Glance images). COS is moto's S3, the VPC API the IBM stand-in; the aws S3-import path cannot run
//   on moto (no import tasks), so its multipart uploads are proven through COS, which shares the sweep;
// - a publish whose staging worker is gone fails within timeouts.stagingWait, naming that worker;
// - staged artifacts are deleted when the release ends; the build logs next to them stay.
// The clouds sit behind a relay that paces uploads (a slow uplink), so uploads are still on the wire when the test
// acts.
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { Transform } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';
import { identityHeaders, startGlance, type Glance } from '../../scripts/servers/glance';
import {
  connectRig,
  killWorker,
  rigDefinition,
  spawnWorkerProcess,
  startInProcessWorker,
  waitForStage,
  waitUntil,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-nothing-left');
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const region = 'eu-west-1';
const PROJECT = 'copr';
const bucket = `imports-${randomUUID().slice(0, 8)}`;
const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials });
const s3 = new S3Client({ region, endpoint: rig.motoEndpoint, credentials, forcePathStyle: true });
const stops: (() => unknown)[] = [];

/** Relays TCP to target, passing what clients send at bytesPerSecond (all connections share it); half-closes kept. */
async function uplinkRelay(target: URL, bytesPerSecond: number): Promise<string> {
  let next = Date.now();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const pace = new Transform({
      transform(chunk: Buffer, _enc, done) {
        next = Math.max(next, Date.now()) + (chunk.length / bytesPerSecond) * 1000;
        setTimeout(() => done(null, chunk), next - Date.now());
      },
    });
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.pipe(pace).pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  stops.push(() => server.close());
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}
const ibmEnv = { IBM_KEY: 'editor-key-for-tests', COS_AK: 'testing', COS_SK: 'testing' };
let glance: Glance;
let ibm: IbmCloudStandin;
let slowMoto = '';
let slowCos = '';
let slowGlance = '';

beforeAll(async () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  glance = await startGlance(mkdtempSync(path.join(os.tmpdir(), 'e2e-nothing-left-glance-')));
  stops.push(() => glance.stop());
  ibm = await IbmCloudStandin.start({ apiKeys: { [ibmEnv.IBM_KEY]: 'editor' }, regions: { 'us-east': {} } });
  stops.push(() => ibm.stop());
  slowMoto = await uplinkRelay(new URL(rig.motoEndpoint), 2 * 2 ** 20);
  slowCos = await uplinkRelay(new URL(rig.motoEndpoint), 2 ** 19);
  slowGlance = await uplinkRelay(new URL(glance.address), 2 * 2 ** 20);
  await s3.send(new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: region } }));
});

afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
});

function definition(name: string, diskSize: string) {
  return rigDefinition(rig, {
    name,
    arches: [{ arch: 'aarch64', host: rig.sshHosts[0]!, types: ['ami', 'raw'] }],
    builderDir: path.join(base, name, 'builders'),
    imagesDir: path.join(base, name, 'images'),
    imageMapPath: path.join(base, name, 'image-map.yaml'),
    engine: standinEngine(path.join(base, name, 'engine'), { seconds: 1, diskSize, dataMiB: 6 }, [rig.registry]),
    bibImage: ensureBibStandinImage(),
    heartbeat: '3s',
  });
}

const glanceImagesOf = async (releaseId: string) => {
  const res = await fetch(`${glance.address}/v2/images?limit=1000`, { headers: identityHeaders(PROJECT) });
  const { images } = (await res.json()) as { images: { id: string; bootc_release_id?: string }[] };
  return images.filter((i) => i.bootc_release_id === releaseId);
};
const tagged = (releaseId: string) => [{ Name: 'tag:bootc-release:release-id', Values: [releaseId] }];
const snapshotsOf = async (releaseId: string) =>
  (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: tagged(releaseId) }))).Snapshots ?? [];
const amisOf = async (releaseId: string) =>
  (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: tagged(releaseId) }))).Images ?? [];
const uploadsOf = async (releaseId: string) =>
  (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${releaseId}/` }))).Uploads ?? [];
const objectsOf = async (releaseId: string) =>
  (await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${releaseId}/` }))).Contents ?? [];

describe('nothing lost, nothing left behind', () => {
  it('a release cancelled while it publishes deletes its snapshots, AMIs, COS uploads, VPC and Glance images, and its staged files', async () => {
    const taskQueue = `e2e-nothing-left-${randomUUID().slice(0, 8)}`;
    const dirs = workerDirs(path.join(base, 'cancel-worker'));
    const worker = await startInProcessWorker(rig, {
      taskQueue,
      dirs,
      overrides: {
        aws: { credentials, pollIntervalMs: 100, blockConcurrency: 1 },
        ibmcloud: { env: ibmEnv, pollIntervalMs: 100, cosPartSize: 5 * 2 ** 20 },
      },
    });
    stops.push(() => worker.stop());
    const conn = await connectRig(rig, taskQueue);
    stops.push(() => conn.close());

    const def = definition('cancelled', '96M');
    def.architectures!.aarch64!.types = ['ami', 'raw', 'qcow2'];
    def.architectures!.aarch64!.targets = ['aws-ebs', 'ibm', 'osuosl'];
    def.targets = {
      'aws-ebs': { kind: 'aws', region, method: 'ebs-direct', credentials: { endpoint: slowMoto } },
      ibm: {
        kind: 'ibmcloud',
        regions: ['us-east'],
        cosBucket: bucket,
        cosEndpoint: slowCos,
        endpoint: ibm.endpoint,
        iamEndpoint: ibm.iamEndpoint,
        apiKeyEnv: 'IBM_KEY',
        cosAccessKeyEnv: 'COS_AK',
        cosSecretKeyEnv: 'COS_SK',
      },
      osuosl: { kind: 'openstack', imageUrl: slowGlance, testIdentityHeaders: { userId: 'copr-bot', projectId: PROJECT } },
    } as never;
    const id = await conn.releases.startFromDefinition(def);

    // Cancel once every cloud holds something of this release that is not finished: a snapshot being written and a
    // multipart upload under way.
    await waitUntil(
      'a snapshot and a multipart upload of the release',
      async () => (await snapshotsOf(id)).length > 0 && (await uploadsOf(id)).length > 0,
      180_000,
    );
    expect(await glanceImagesOf(id)).not.toEqual([]);
    await conn.releases.cancel(id);
    const ended = await waitForStage(conn.releases, id, ['cancelled', 'failed'], 180_000);
    expect(ended.stage).toBe('cancelled');
    expect(ended.error).toBeUndefined();
    await conn.client.workflow.getHandle(id).result().catch(() => undefined);

    expect(await snapshotsOf(id)).toEqual([]);
    expect(await amisOf(id)).toEqual([]);
    expect(await uploadsOf(id)).toEqual([]);
    expect(await objectsOf(id)).toEqual([]);
    expect(ibm.images().filter((i) => i.name.startsWith('cancelled-aarch64') && i.status !== 'deleting')).toEqual([]);
    expect(await glanceImagesOf(id)).toEqual([]);
    const staged = path.join(dirs.stagingDir, id, 'aarch64');
    expect(existsSync(path.join(staged, 'ami'))).toBe(false);
    expect(existsSync(path.join(staged, 'raw'))).toBe(false);
  }, 420_000);

  it('a publish whose staging worker is gone fails within timeouts.stagingWait, naming that worker', async () => {
    const taskQueue = `e2e-staging-gone-${randomUUID().slice(0, 8)}`;
    const gone: ChildProcess = spawnWorkerProcess(rig, {
      taskQueue,
      workerId: 'builder-host-7',
      dirs: workerDirs(path.join(base, 'gone-worker')),
      logFile: path.join(base, 'gone-worker.log'),
      overrides: { builder: { pollIntervalMs: 500 } },
    });
    stops.push(() => killWorker(gone));
    const conn = await connectRig(rig, taskQueue);
    stops.push(() => conn.close());

    const def = definition('gone', '128M');
    def.architectures!.aarch64!.types = ['raw'];
    def.architectures!.aarch64!.targets = ['osuosl'];
    def.targets = {
      osuosl: { kind: 'openstack', imageUrl: slowGlance, testIdentityHeaders: { userId: 'copr-bot', projectId: PROJECT } },
    } as never;
    def.timeouts = { ...def.timeouts, stagingWait: '10s' } as never;
    const id = await conn.releases.startFromDefinition(def);

    // The worker that fetched the artifact dies while it uploads; another worker carries the release on.
    await waitUntil('the Glance image of the release', async () => (await glanceImagesOf(id)).length > 0, 180_000);
    await killWorker(gone);
    const other = await startInProcessWorker(rig, { taskQueue, workerId: 'other', dirs: workerDirs(path.join(base, 'other-worker')) });
    stops.push(() => other.stop());

    const failed = await waitForStage(conn.releases, id, ['failed', 'awaiting-approval'], 120_000);
    expect(failed.stage).toBe('failed');
    expect(failed.publishFailures).toEqual([
      {
        arch: 'aarch64',
        target: 'osuosl',
        error: expect.stringMatching(/staging worker builder-host-7 \(task queue .*@builder-host-7\) did not pick the publish up within 10s/),
      },
    ]);
  }, 420_000);

  it('deletes the staged artifacts when the release ends, and keeps the build logs', async () => {
    const taskQueue = `e2e-staging-end-${randomUUID().slice(0, 8)}`;
    const dirs = workerDirs(path.join(base, 'end-worker'));
    const worker = await startInProcessWorker(rig, { taskQueue, dirs });
    stops.push(() => worker.stop());
    const conn = await connectRig(rig, taskQueue);
    stops.push(() => conn.close());

    const def = definition('ends', '64M');
    def.architectures!.aarch64!.types = ['qcow2'];
    const id = await conn.releases.startFromDefinition(def);
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 180_000);
    expect(ready.stage).toBe('awaiting-approval');
    const staged = path.join(dirs.stagingDir, id, 'aarch64');
    // While approval is pending, a retried publish may still need the file.
    expect(readdirSync(path.join(staged, 'qcow2'))).toContain('disk.qcow2');

    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');
    await conn.client.workflow.getHandle(id).result();
    expect(existsSync(path.join(staged, 'qcow2'))).toBe(false);
    expect(readdirSync(staged).filter((f) => f.endsWith('.log'))).not.toEqual([]);
  }, 300_000);
});
