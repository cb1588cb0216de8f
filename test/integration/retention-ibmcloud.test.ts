// Retention at an ibmcloud target: COS is moto's real S3, IAM and VPC the documented-contract stand-in
// (test/standins/ibm-cloud-api.ts). Images are tied to their release by the COS key they were imported from; an
// image an instance was booted from is kept and reported; the COS object goes with the last region's image.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, statSync, writeFileSync, writeSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { withDefaults } from '../../activities/ibmcloud/deps';
import { createIbmCloudTarget, type IbmCloudTarget } from '../../activities/ibmcloud/target';
import type { ChannelState } from '../../activities/channels';
import { createRetentionActivities } from '../../activities/retention/activities';
import { NO_RELEASES } from '../../activities/retention/lookup';
import type { Candidate, StagedArtifact } from '../../activities/types';
import { Target, type ReleaseDefinitionInput } from '../../config/schema';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';

const rig = inject('rig');
const MiB = 1024 * 1024;
const env = { IBM_KEY: 'editor-key-for-tests', COS_AK: 'testing', COS_SK: 'testing' };
const s3 = new S3Client({ endpoint: rig.motoEndpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
const bucket = `ibm-retention-${Date.now()}`;
const DEF = 'copr-ibm';
const stamps = { r1: '20260101_000001', r2: '20260201_000001' } as const;
const published: Record<keyof typeof stamps, Candidate[]> = { r1: [], r2: [] };
let standin: IbmCloudStandin;
let targetInput: Record<string, unknown>;
let dir: string;

const driver = () => createIbmCloudTarget({ env, pollIntervalMs: 10, cosPartSize: 5 * MiB });

function retention() {
  const history = (['r1', 'r2'] as const).map((r, i) => ({ seq: i + 1, kind: 'approve' as const, releaseId: r, images: published[r], by: 'copr-admin', at: new Date().toISOString() }));
  const state: ChannelState = { definition: DEF, channel: 'production', current: history.at(-1), history, retention: [] };
  return createRetentionActivities({
    definitionsDir: path.join(dir, 'definitions'),
    targets: { ibmcloud: driver() },
    channels: { stateOf: async (d, c) => (d === DEF && c === 'production' ? state : undefined) },
    releases: NO_RELEASES,
    stagingDir: path.join(dir, 'staging'),
    stagingQueue: 'q',
  });
}

const objects = async () => ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key).sort();
const live = (region: string) => standin.images(region).filter((i) => i.status !== 'deleting').map((i) => i.name).sort();

beforeAll(async () => {
  dir = mkdtempSync(path.join(rig.dir, 'retention-ibmcloud-'));
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  standin = await IbmCloudStandin.start({
    apiKeys: { [env.IBM_KEY]: 'editor' },
    regions: {
      'us-east': { vpcs: ['vpc-1'], subnets: [{ id: 'subnet-1', zone: 'us-east-1', vpc: 'vpc-1' }], keys: ['key-1'] },
      'jp-tok': {},
    },
    pendingReads: 1,
  });
  targetInput = {
    kind: 'ibmcloud',
    regions: ['us-east', 'jp-tok'],
    cosBucket: bucket,
    cosEndpoint: rig.motoEndpoint,
    endpoint: standin.endpoint,
    iamEndpoint: standin.iamEndpoint,
    apiKeyEnv: 'IBM_KEY',
    cosAccessKeyEnv: 'COS_AK',
    cosSecretKeyEnv: 'COS_SK',
  };
  const raw = path.join(dir, 'disk.raw');
  const fd = openSync(raw, 'w');
  ftruncateSync(fd, 8 * MiB);
  writeSync(fd, randomBytes(MiB), 0, MiB, 0);
  closeSync(fd);
  const file = path.join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, file]);
  const artifact: StagedArtifact = {
    arch: 's390x',
    type: 'qcow2',
    path: file,
    size: statSync(file).size,
    dataBytes: statSync(file).size,
    sha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
    stagingQueue: 'q',
  };
  for (const r of ['r1', 'r2'] as const)
    published[r] = await driver().publish({
      releaseId: r,
      arch: 's390x',
      targetName: 'ibm',
      target: Target.parse(targetInput) as IbmCloudTarget,
      artifact,
      imageName: `${DEF}-s390x-${stamps[r]}`,
    });
  mkdirSync(path.join(dir, 'definitions'));
  const definition = {
    name: DEF,
    source: { image: 'quay.io/example/builder:latest' },
    architectures: { s390x: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }], ssh: { privateKeyPath: rig.privateKeyPath } }, types: ['qcow2'], targets: ['ibm'] } },
    targets: { ibm: targetInput },
    approval: { approvers: ['copr-admin'], allowUnsigned: true },
    channels: { production: {} },
    retention: { keep: 1, minAge: '0s', deprecateFirst: true },
  } as unknown as ReleaseDefinitionInput;
  writeFileSync(path.join(dir, 'definitions', `${DEF}.yaml`), stringify(definition));
}, 120_000);

afterAll(async () => {
  await standin?.stop();
  s3.destroy();
});

describe('retention at an ibmcloud target', () => {
  it('deletes the images of the release no channel uses in every region, keeps one an instance runs, and the COS object with the last', async () => {
    const r1east = published.r1.find((c) => c.region === 'us-east')!;
    const vpc = withDefaults({ env }).vpc({ region: 'us-east', apiKeyEnv: 'IBM_KEY', endpoint: standin.endpoint, iamEndpoint: standin.iamEndpoint }, 'targets.ibm');
    const instance = await vpc.createInstance({
      name: 'someone-s390x-1',
      profile: { name: 'bz2-2x8' },
      image: { id: r1east.imageId },
      vpc: { id: 'vpc-1' },
      zone: { name: 'us-east-1' },
      primary_network_interface: { subnet: { id: 'subnet-1' } },
      keys: [{ id: 'key-1' }],
    });

    const acts = retention();
    const plan = await acts.planRetention({ definition: DEF, now: new Date().toISOString() });
    // No deprecation at this target: deprecateFirst has nothing to wait for.
    expect(plan.deprecate).toEqual([]);
    expect(plan.delete.map((i) => [i.releaseId, i.image.region, i.image.imageId])).toEqual([['r1', 'jp-tok', published.r1.find((c) => c.region === 'jp-tok')!.imageId]]);
    expect(plan.kept.map((k) => [k.releaseId, k.image.region, k.why]).sort()).toEqual([
      ['r1', 'us-east', `in use: instance someone-s390x-1 (${instance.id}, running) in us-east`],
      ['r2', 'jp-tok', 'release r2: current on channel production'],
      ['r2', 'us-east', 'release r2: current on channel production'],
    ]);

    for (const item of plan.delete) expect(await acts.applyRetention({ definition: DEF, item })).toMatchObject({ outcome: 'ok' });
    expect(live('jp-tok')).toEqual([`${DEF}-s390x-20260201-000001`]);
    expect(live('us-east')).toEqual([`${DEF}-s390x-20260101-000001`, `${DEF}-s390x-20260201-000001`]);
    // us-east still imports nothing from it, but its image stands: the object stays.
    expect(await objects()).toEqual([`r1/${DEF}-s390x-${stamps.r1}.qcow2`, `r2/${DEF}-s390x-${stamps.r2}.qcow2`]);

    await vpc.deleteInstance(instance.id);
    while ((await vpc.listInstances()).length) await new Promise((r) => setTimeout(r, 20));
    const next = await acts.planRetention({ definition: DEF, now: new Date().toISOString() });
    expect(next.delete.map((i) => [i.releaseId, i.image.region])).toEqual([['r1', 'us-east']]);
    for (const item of next.delete) expect(await acts.applyRetention({ definition: DEF, item })).toMatchObject({ outcome: 'ok' });
    expect(live('us-east')).toEqual([`${DEF}-s390x-20260201-000001`]);
    expect(await objects()).toEqual([`r2/${DEF}-s390x-${stamps.r2}.qcow2`]);
  });
});
