// `bootc-release retention plan DEFINITION` end to end: the real CLI (tsx client/cli.ts) asks the rig's Temporal
// server, a worker of this file's own queue runs the `retentionPlan` workflow and lists moto and a directory; the
// plan comes back and nothing changes (counted through moto and the file system before and after). The channel's
// state comes from the worker's wiring override: the channel workflow is not part of this test. The wiring's real
// lookups are checked against the server too: a channel never started reads as none, and no release of the
// definition runs.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { createAwsTarget, type AwsTarget } from '../../activities/aws/target';
import { AWS_TAGS } from '../../activities/aws/tags';
import type { ChannelState } from '../../activities/channels';
import { createDirectoryTarget } from '../../activities/directory/target';
import type { RetentionPlan } from '../../activities/retention/plan';
import type { Candidate, StagedArtifact } from '../../activities/types';
import { Target, type ReleaseDefinitionInput } from '../../config/schema';
import { channelLookupFrom, releaseCatalogFrom } from '../../worker/wiring';
import { connectRig, startInProcessWorker, workerDirs, type RigInfo } from '../rig/release-harness';
import { fakeCredentials } from '../integration/aws-helpers';
import { MiB, sha256, sparseRaw } from '../integration/libvirt-helpers';
import { cli as runCli } from './channel-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-retention-plan');
const taskQueue = `e2e-retention-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const DEF = `retcli${randomUUID().slice(0, 6)}`;
const REGION = 'ap-northeast-1';
const imagesDir = path.join(base, 'images');
const rels = { r1: '20260101_000001', r2: '20260201_000001' } as const;
const releaseId = (r: keyof typeof rels) => `${DEF}-${r}`;
const published: Record<keyof typeof rels, Candidate[]> = { r1: [], r2: [] };
const ec2 = new EC2Client({ region: REGION, endpoint: rig.motoEndpoint, credentials: fakeCredentials });
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

const targets = {
  'aws-prod': { kind: 'aws', region: REGION, credentials: { endpoint: rig.motoEndpoint } },
  files: { kind: 'directory', path: imagesDir },
} as const;

function production(): ChannelState {
  const history = (['r1', 'r2'] as const).map((r, i) => ({ seq: i + 1, kind: 'approve' as const, releaseId: releaseId(r), images: published[r], by: 'copr-admin', at: new Date().toISOString() }));
  return { definition: DEF, channel: 'production', current: history.at(-1), history, retention: [] };
}

const cli = (args: string[]) => runCli(rig, taskQueue, args);

/** AMIs with their tags, snapshots, and files: everything retention could change. */
async function state() {
  const filters = [{ Name: `tag:${AWS_TAGS.releaseId}`, Values: [releaseId('r1'), releaseId('r2')] }];
  const images = ((await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }))).Images ?? []).map((i) => ({ id: i.ImageId, tags: i.Tags }));
  const snapshots = ((await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters }))).Snapshots ?? []).map((s) => s.SnapshotId).sort();
  return { images, snapshots, files: readdirSync(imagesDir).sort() };
}

beforeAll(async () => {
  mkdirSync(imagesDir, { recursive: true });
  const definition: ReleaseDefinitionInput = {
    name: DEF,
    source: { image: 'quay.io/example/builder:latest' },
    architectures: {
      x86_64: {
        builder: { provider: 'static', hosts: [{ address: rig.sshHosts[0]!.address, port: rig.sshHosts[0]!.port }], ssh: { privateKeyPath: rig.privateKeyPath } },
        types: ['ami', 'raw'],
        targets: ['aws-prod', 'files'],
      },
    },
    targets,
    approval: { approvers: ['copr-admin'], allowUnsigned: true },
    channels: { production: {} },
    retention: { keep: 1, minAge: '0s', deprecateFirst: true },
  } as ReleaseDefinitionInput;
  writeFileSync(path.join(dirs.definitionsDir, `${DEF}.yaml`), stringify(definition));
  const aws = createAwsTarget({ credentials: fakeCredentials, pollIntervalMs: 20 });
  const directory = createDirectoryTarget();
  for (const r of ['r1', 'r2'] as const) {
    const file = sparseRaw(path.join(base, `${r}.raw`), 8 * MiB, [[0, MiB]]);
    const artifact = (type: StagedArtifact['type']): StagedArtifact => ({ arch: 'x86_64', type, path: file, size: statSync(file).size, dataBytes: MiB, sha256: sha256(file), stagingQueue: 'q' });
    const common = { releaseId: releaseId(r), arch: 'x86_64' as const, imageName: `${DEF}-x86_64-${rels[r]}` };
    published[r] = [
      ...(await aws.publish({ ...common, targetName: 'aws-prod', target: Target.parse(targets['aws-prod']) as AwsTarget, artifact: artifact('ami') })),
      ...(await directory.publish({ ...common, targetName: 'files', target: Target.parse(targets.files) as never, artifact: artifact('raw') })),
    ];
  }
  worker = await startInProcessWorker(rig, {
    taskQueue,
    dirs,
    overrides: {
      aws: { credentials: fakeCredentials, pollIntervalMs: 20 },
      retention: { channels: { stateOf: async (d, c) => (d === DEF && c === 'production' ? production() : undefined) } },
    },
  });
  conn = await connectRig(rig, taskQueue);
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
});

describe('bootc-release retention plan', () => {
  it('prints the plan made on the worker and changes nothing', async () => {
    const before = await state();
    expect(before.images).toHaveLength(2);

    const json = await cli(['retention', 'plan', DEF, '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const plan = JSON.parse(json.stdout) as RetentionPlan;
    const r1ami = published.r1.find((c) => c.kind === 'aws')!.imageId;
    expect(plan.protected).toEqual([{ releaseId: releaseId('r2'), why: 'current on channel production' }]);
    expect(plan.deprecate.map((i) => [i.releaseId, i.target, i.image.imageId])).toEqual([[releaseId('r1'), 'aws-prod', r1ami]]);
    expect(plan.delete).toEqual([]);
    expect(plan.kept.map((k) => [k.releaseId, k.target, k.why]).sort()).toEqual([
      [releaseId('r1'), 'files', `deprecateFirst: deleted with release ${releaseId('r1')} once its images are deprecated`],
      [releaseId('r2'), 'aws-prod', `release ${releaseId('r2')}: current on channel production`],
      [releaseId('r2'), 'files', `release ${releaseId('r2')}: current on channel production`],
    ]);

    const text = await cli(['retention', 'plan', DEF]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`Retention plan for ${DEF}`);
    expect(text.stdout).toContain('Dry run: nothing was changed.');
    expect(text.stdout).toContain('would deprecate 1, delete 0, keep 3');
    expect(text.stdout).toMatch(new RegExp(`deprecate\\s+${releaseId('r1')}\\s+aws-prod\\s+x86_64\\s+${REGION}\\s+${r1ami}`));

    expect(await state()).toEqual(before);
  });

  it('exits 2 with the worker\'s reason for a definition it does not know', async () => {
    const r = await cli(['retention', 'plan', 'no-such-definition']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no-such-definition/);
  });

  it("the wiring's lookups: a channel never started has no state, and no release of the definition runs", async () => {
    expect(await channelLookupFrom(conn.client).stateOf(DEF, 'production')).toBeUndefined();
    expect(await releaseCatalogFrom(conn.client).open(DEF)).toEqual([]);
  });
});
