// One release publishing what the (stand-in) bootc-image-builder really produced to two clouds at once, through
// the production wiring: an AMI made with the EBS direct APIs on moto, and a Glance image on a real glance-api. The
// bytes are read back from both and compared with the artifact the release fetched.
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { EBSClient, GetSnapshotBlockCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { identityHeaders, startGlance, type Glance } from '../../scripts/servers/glance';
import { connectRig, rigDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-clouds');
const taskQueue = `e2e-clouds-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const region = 'us-west-1';
const PROJECT = 'copr';
let glance: Glance;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

const sha256 = async (chunks: AsyncIterable<Buffer | Uint8Array>) => {
  const h = createHash('sha256');
  for await (const c of chunks) h.update(c);
  return h.digest('hex');
};

/** The snapshot's bytes as EBS direct serves them: listed blocks from GetSnapshotBlock, the rest zeros. */
async function* snapshotBytes(ebs: EBSClient, snapshotId: string, size: number): AsyncGenerator<Buffer> {
  const blocks = new Map<number, string>();
  let NextToken: string | undefined;
  // EBS direct blocks are always 512 KiB (moto reports BlockSize 512, which is not the unit it stores).
  const blockSize = 512 * 1024;
  do {
    const page = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, NextToken }));
    for (const b of page.Blocks ?? []) blocks.set(b.BlockIndex!, b.BlockToken!);
    NextToken = page.NextToken;
  } while (NextToken);
  const zeros = Buffer.alloc(blockSize);
  for (let i = 0; i * blockSize < size; i++) {
    const token = blocks.get(i);
    const take = Math.min(blockSize, size - i * blockSize);
    if (!token) {
      yield zeros.subarray(0, take);
      continue;
    }
    const got = await ebs.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: i, BlockToken: token }));
    yield Buffer.from(await got.BlockData!.transformToByteArray()).subarray(0, take);
  }
}

beforeAll(async () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  glance = await startGlance(mkdtempSync(path.join(os.tmpdir(), 'e2e-glance-')));
  worker = await startInProcessWorker(rig, { taskQueue, dirs, overrides: { aws: { credentials, pollIntervalMs: 100 } } });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
  await glance?.stop();
});

describe('a release publishing to two clouds', () => {
  it('registers an AMI from the ami build and a Glance image from the raw build, both byte-identical to what was fetched', async () => {
    const def = rigDefinition(rig, {
      name: 'clouds',
      arches: [{ arch: 'aarch64', host: rig.sshHosts[0]!, types: ['ami', 'raw'] }],
      builderDir: path.join(base, 'builders'),
      imagesDir: path.join(base, 'images'),
      imageMapPath: path.join(base, 'image-map.yaml'),
      engine: standinEngine(path.join(base, 'engine'), { seconds: 1, diskSize: '64M', dataMiB: 6 }, [rig.registry]),
      bibImage: ensureBibStandinImage(),
    });
    def.architectures!.aarch64!.targets = ['aws-prod', 'osuosl'];
    def.targets = {
      'aws-prod': { kind: 'aws', region, method: 'ebs-direct', credentials: { endpoint: rig.motoEndpoint } },
      osuosl: { kind: 'openstack', imageUrl: glance.address, testIdentityHeaders: { userId: 'copr-bot', projectId: PROJECT } },
    } as never;
    const id = await conn.releases.startFromDefinition(def);
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 120_000);
    expect(ready.publishFailures).toEqual([]);
    expect(ready.stage).toBe('awaiting-approval');
    const ami = ready.candidates.find((c) => c.kind === 'aws')!;
    const image = ready.candidates.find((c) => c.kind === 'openstack')!;
    expect(ami.imageId).toMatch(/^ami-/);
    expect(ami.type).toBe('ami');
    expect(image.type).toBe('raw');

    // What the release fetched into staging is the reference.
    const staged = (type: string) => path.join(dirs.stagingDir, id, 'aarch64', type, 'disk.raw');
    const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials });
    const [registered] = (await ec2.send(new DescribeImagesCommand({ ImageIds: [ami.imageId] }))).Images!;
    expect(registered!.Tags).toContainEqual({ Key: 'bootc-release:release-id', Value: id });
    const snapshotId = ami.resources!.find((r) => r.kind === 'snapshot')!.id;
    const ebs = new EBSClient({ region, endpoint: rig.motoEndpoint, credentials });
    expect(await sha256(snapshotBytes(ebs, snapshotId, ami.size))).toBe(await sha256(createReadStream(staged('ami'))));

    const download = await fetch(`${glance.address}/v2/images/${image.imageId}/file`, { headers: identityHeaders(PROJECT) });
    expect(download.status).toBe(200);
    expect(await sha256(download.body as unknown as AsyncIterable<Uint8Array>)).toBe(await sha256(createReadStream(staged('raw'))));

    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');
    expect(done.activation!.imageMap).toEqual({ 'aws-prod': { aarch64: ami.imageId }, osuosl: { aarch64: image.imageId } });
  });
});
