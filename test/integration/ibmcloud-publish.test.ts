// Publishing to IBM Cloud: COS is moto's real S3 (COS speaks S3), IAM and VPC are the documented-contract stand-in.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, statSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ReleaseDefinition, Target } from '../../config/schema';
import { createIbmCloudTarget, type IbmCloudTarget } from '../../activities/ibmcloud/target';
import { parseCosHref } from '../../activities/ibmcloud/cos-upload';
import type { Candidate, PublishRequest, StagedArtifact } from '../../activities/types';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';

const rig = inject('rig');
const MiB = 1024 * 1024;
const env = { IBM_KEY: 'editor-key-for-tests', COS_AK: 'testing', COS_SK: 'testing' };
const s3 = new S3Client({ endpoint: rig.motoEndpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
const bucket = `ibm-images-${Date.now()}`;
let standin: IbmCloudStandin;
let target: IbmCloudTarget;
let qcow2: StagedArtifact;
const driver = () => createIbmCloudTarget({ env, pollIntervalMs: 10, cosPartSize: 5 * MiB });
const request = (imageName: string, artifact: StagedArtifact = qcow2): PublishRequest & { target: IbmCloudTarget } => ({
  releaseId: 'rel-ibm-1',
  arch: 's390x',
  targetName: 'ibm-test',
  target,
  artifact,
  imageName,
});

/** Until the stand-in has had no request for 100 ms: requests a client aborted may still arrive after it gave up. */
async function quiet() {
  for (let n = -1; n !== standin.requests.length; ) {
    n = standin.requests.length;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A 64 MiB sparse raw disk with ~12 MiB of data, converted by qemu-img: a small but real, multi-part qcow2. */
function makeQcow2(dir: string): StagedArtifact {
  const raw = path.join(dir, 'disk.raw');
  const fd = openSync(raw, 'w');
  ftruncateSync(fd, 64 * MiB);
  writeSync(fd, randomBytes(6 * MiB), 0, 6 * MiB, 0);
  writeSync(fd, randomBytes(6 * MiB), 0, 6 * MiB, 40 * MiB);
  closeSync(fd);
  const file = path.join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, file]);
  const size = statSync(file).size;
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  return { arch: 's390x', type: 'qcow2', path: file, size, dataBytes: size, sha256, stagingQueue: 'test' };
}

beforeAll(async () => {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  standin = await IbmCloudStandin.start({
    apiKeys: { [env.IBM_KEY]: 'editor' },
    regions: { 'us-east': {}, 'jp-tok': {} },
    // The import reads the object the href names, as VPC does: a wrong bucket or key fails the image.
    importCheck: async (href) => {
      const loc = parseCosHref(href)!;
      const head = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key })).catch(() => undefined);
      return head ? undefined : `cannot read ${href}`;
    },
  });
  target = Target.parse({
    kind: 'ibmcloud',
    regions: ['us-east', 'jp-tok'],
    cosBucket: bucket,
    cosEndpoint: rig.motoEndpoint,
    endpoint: standin.endpoint,
    iamEndpoint: standin.iamEndpoint,
    apiKeyEnv: 'IBM_KEY',
    cosAccessKeyEnv: 'COS_AK',
    cosSecretKeyEnv: 'COS_SK',
  }) as IbmCloudTarget;
  qcow2 = makeQcow2(mkdtempSync(path.join(rig.dir, 'ibmcloud-publish-')));
});

afterAll(async () => {
  await standin?.stop();
  s3.destroy();
});

describe('ibmcloud publish target', () => {
  it('publishes a qcow2 through COS as one available image per region, and the COS object reads back byte-identical', async () => {
    expect(await driver().check(target, { releaseId: 'rel-ibm-1', targetName: 'ibm-test' })).toMatchObject({ ok: true });
    const candidates = await driver().publish(request('copr-builder-s390x-20250101_120000'));

    expect(candidates.map((c) => c.region).sort()).toEqual(['jp-tok', 'us-east']);
    const key = `rel-ibm-1/copr-builder-s390x-20250101_120000.qcow2`;
    for (const c of candidates) {
      expect(c).toMatchObject({ kind: 'ibmcloud', target: 'ibm-test', name: 'copr-builder-s390x-20250101-120000', sha256: qcow2.sha256 });
      expect(c.resources).toEqual([{ kind: 'cos-object', id: `cos://us-east/${bucket}/${key}`, region: 'us-east' }]);
      const image = standin.images(c.region).find((i) => i.id === c.imageId)!;
      expect(image).toMatchObject({ status: 'available', file: { href: `cos://us-east/${bucket}/${key}` }, operating_system: { name: 'fedora-40-s390x' } });
    }
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    expect(object.ETag).toMatch(/-3"$/); // ~12 MiB in 5 MiB parts: the multipart path, as real images take
    expect(object.Metadata).toMatchObject({ sha256: qcow2.sha256, 'release-id': 'rel-ibm-1' });
    const bytes = Buffer.from(await object.Body!.transformToByteArray());
    expect(bytes.equals(readFileSync(qcow2.path))).toBe(true);
  });

  it('publishing again finds the COS object and the images instead of making new ones', async () => {
    const first = await driver().publish(request('twice-s390x-20250101_120000'));
    const posts = () => standin.requests.filter((r) => r.method === 'POST' && r.path === '/v1/images').length;
    const postsBefore = posts();
    const heartbeats: any[] = [];
    const activity = new MockActivityEnvironment();
    activity.on('heartbeat', (d) => heartbeats.push(d));
    const second: Candidate[] = await activity.run(() => driver().publish(request('twice-s390x-20250101_120000')));

    expect(second.map((c) => c.imageId).sort()).toEqual(first.map((c) => c.imageId).sort());
    expect(posts()).toBe(postsBefore);
    expect(standin.images().filter((i) => i.name === 'twice-s390x-20250101-120000')).toHaveLength(2);
    // No upload progress, only the one "already there" beat; then the per-region image status.
    expect(heartbeats.filter((h) => h.stage === 'cos-upload')).toEqual([
      { stage: 'cos-upload', key: 'rel-ibm-1/twice-s390x-20250101_120000.qcow2', loaded: qcow2.size, total: qcow2.size },
    ]);
    expect(heartbeats.at(-1)).toMatchObject({ stage: 'vpc-images', regions: { 'us-east': 'available', 'jp-tok': 'available' } });
  });

  it('keeps polling through 429 and 500 answers while an image imports', async () => {
    standin.failNext({ method: 'GET', path: /^\/v1\/images\/r014-/, status: 500, times: 2 });
    standin.failNext({ method: 'GET', path: /^\/v1\/images\/r014-/, status: 429, times: 1 });
    const candidates = await driver().publish(request('flaky-s390x-20250101_120000'));
    expect(candidates).toHaveLength(2);
    expect(standin.requests.filter((r) => r.status === 500 || r.status === 429).length).toBeGreaterThanOrEqual(3);
  });

  it('reports a failed import with the reason VPC gives, and removes the failed image', async () => {
    standin.failImport(/^broken-/, 'the qcow2 image has no bootable partition');
    const err = await driver()
      .publish(request('broken-s390x-20250101_120000'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ nonRetryable: true, type: 'ImageImportFailed' });
    expect((err as Error).message).toMatch(/broken-s390x-20250101-120000 in (us-east|jp-tok) ended failed: image_file_invalid: the qcow2 image has no bootable partition/);
    expect((err as Error).message).toContain('targets.ibm-test.operatingSystem');
    // The failed image is being deleted so a re-run can import under the same name; the other region was stopped
    // (a request it had in flight may still land).
    await quiet();
    const statuses = standin.images().filter((i) => i.name === 'broken-s390x-20250101-120000').map((i) => i.status);
    expect(statuses).toContain('deleting');
    expect(statuses).not.toContain('available');
  });

  it('check reports a refused API key, and publish fails on it before anything is uploaded or created', async () => {
    const badEnv = { ...env, IBM_KEY: 'not-a-key-anyone-issued' };
    const requestsBefore = standin.requests.length;
    const result = await createIbmCloudTarget({ env: badEnv }).check(target, { releaseId: 'rel-ibm-1', targetName: 'ibm-test' });
    expect(result.ok).toBe(false);
    expect(result.messages.join('\n')).toMatch(/refused the API key in IBM_KEY \(400: BXNIM0415E.*targets\.ibm-test\.apiKeyEnv/);
    expect(result.messages.join('\n')).not.toContain(badEnv.IBM_KEY);

    const err = await createIbmCloudTarget({ env: badEnv })
      .publish(request('refused-s390x-20250101_120000'))
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ nonRetryable: true, type: 'PermissionError' });
    expect(standin.requests.slice(requestsBefore).filter((r) => r.method === 'POST' && r.path !== '/identity/token')).toEqual([]);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'rel-ibm-1/refused-s390x-20250101_120000.qcow2' })).catch(() => 'absent');
    expect(head).toBe('absent');
  });

  it('refuses a raw artifact with the target and architecture to change, as the schema does', async () => {
    const raw = { ...qcow2, type: 'raw' as const };
    await expect(driver().publish(request('raw-s390x-20250101_120000', raw))).rejects.toThrow(/targets\.ibm-test \(ibmcloud\) takes qcow2 or vhd images, not raw/);
    const parsed = ReleaseDefinition.safeParse({
      name: 'copr',
      source: { image: 'quay.io/org/builder:latest' },
      architectures: { s390x: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['raw'], targets: ['ibm'] } },
      targets: { ibm: { kind: 'ibmcloud', regions: ['us-east'], cosBucket: 'images' } },
      approval: { approvers: ['admin'] },
    });
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toMatch(/target \\"ibm\\" \(ibmcloud\) takes qcow2 or vhd images, and s390x builds only raw/);
  });

  it('delete removes the image in its region, and the COS object only with the last region', async () => {
    const candidates = await driver().publish(request('gone-s390x-20250101_120000'));
    const key = 'rel-ibm-1/gone-s390x-20250101_120000.qcow2';
    const exists = () => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(() => true, () => false);
    const [a, b] = candidates;
    await driver().delete(target, a);
    expect(await exists()).toBe(true);
    await driver().delete(target, b);
    expect(await exists()).toBe(false);
    await driver().delete(target, b); // already gone: no error
    expect(standin.images().filter((i) => i.name === a.name && i.status !== 'deleting')).toEqual([]);
  });
});
