// Publishing inside a release on the real Temporal server: a target that cannot work is refused by the preflight
// before any builder VM exists, and a target that fails while publishing neither loses the other targets' candidates
// nor the release: it is retried alone.
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DescribeInstancesCommand, EC2Client, RegisterImageCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { connectRig, rigDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-publish');
const taskQueue = `e2e-publish-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const ec2 = new EC2Client({ region: 'us-east-2', endpoint: rig.motoEndpoint, credentials });
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

function definition(name: string) {
  return rigDefinition(rig, {
    name,
    arches: [{ arch: 'ppc64le', host: rig.sshHosts[1]!, types: ['qcow2'] }],
    builderDir: path.join(base, name, 'builders'),
    imagesDir: path.join(base, name, 'images'),
    imageMapPath: path.join(base, name, 'image-map.yaml'),
    engine: standinEngine(path.join(base, 'engine'), { seconds: 2, diskSize: '256M', dataMiB: 4 }, [rig.registry]),
    bibImage: ensureBibStandinImage(),
  });
}

beforeAll(async () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  worker = await startInProcessWorker(rig, {
    taskQueue,
    dirs,
    overrides: { aws: { credentials, pollIntervalMs: 100, addressOf: () => ({ address: rig.sshHosts[1]!.address, port: rig.sshHosts[1]!.port }) } },
  });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
});

describe('publishing in a release', () => {
  it('reports a target whose bucket is missing in the preflight, before any builder VM starts', async () => {
    const def = definition('preflight');
    const ami = await ec2.send(new RegisterImageCommand({ Name: `preflight-base-${randomUUID()}`, Architecture: 'x86_64' }));
    def.architectures = {
      x86_64: {
        builder: { provider: 'aws', region: 'us-east-2', instanceType: 't3.micro', ami: ami.ImageId!, credentials: { endpoint: rig.motoEndpoint } },
        types: ['ami'],
        targets: ['aws-prod'],
      },
    } as never;
    def.targets = {
      'aws-prod': { kind: 'aws', region: 'us-east-2', method: 's3-import', bucket: `no-such-bucket-${randomUUID().slice(0, 8)}`, credentials: { endpoint: rig.motoEndpoint } },
    } as never;
    const id = await conn.releases.startFromDefinition(def);
    const failed = await waitForStage(conn.releases, id, ['failed', 'awaiting-approval']);
    expect(failed.stage).toBe('failed');
    expect(failed.error).toMatch(/preflight failed; nothing was created/);
    expect(failed.error).toMatch(/targets\.aws-prod \(aws\): .*no-such-bucket/);
    expect(Object.keys(failed.arches)).toEqual([]);
    const tagged = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:bootc-release:release-id', Values: [id] }] }));
    expect(tagged.Reservations ?? []).toEqual([]);
  });

  it('keeps the candidates of the targets that worked when one fails, and retries the failed one alone', async () => {
    const def = definition('retry');
    def.architectures!.ppc64le!.targets = ['good', 'flaky'];
    def.targets = {
      good: { kind: 'directory', path: path.join(base, 'retry', 'good') },
      flaky: { kind: 'directory', path: path.join(base, 'retry', 'flaky') },
    };
    def.timeouts = { ...def.timeouts, maxAttempts: 2 };
    const id = await conn.releases.startFromDefinition(def);
    // The image's final path in the flaky target is taken by a directory: every publish there fails until it goes.
    const stamp = id.slice('retry-'.length).replace('-', '_');
    const blocker = path.join(base, 'retry', 'flaky', `retry-ppc64le-${stamp}.qcow2`);
    mkdirSync(path.join(blocker, 'in-the-way'), { recursive: true });

    const waiting = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed']);
    expect(waiting.stage).toBe('awaiting-approval');
    expect(waiting.candidates.map((c) => c.target)).toEqual(['good']);
    expect(waiting.publishFailures).toEqual([{ arch: 'ppc64le', target: 'flaky', error: expect.stringMatching(/EISDIR|directory/i) }]);
    await expect(conn.releases.retry(id, { target: 'good' })).rejects.toThrow(/has no failed publish to retry/);

    rmSync(blocker, { recursive: true });
    const retried = await conn.releases.retry(id, { target: 'flaky', arch: 'ppc64le' });
    expect(retried.publishFailures).toEqual([]);
    expect(retried.candidates.map((c) => c.target).sort()).toEqual(['flaky', 'good']);
    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');
    expect(Object.keys(done.activation!.imageMap).sort()).toEqual(['flaky', 'good']);
  });
});
