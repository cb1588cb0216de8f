// Retention against the real peers: three releases published to AWS (moto, two regions), libvirt (libvirtd through
// a real sshd), Glance (a real glance-api) and a directory, plus a staged artifact; the channel's state protects the
// current release (keep 1). Everything is counted through the peers' own APIs (DescribeImages/DescribeSnapshots,
// virsh vol-list, the Glance image list, the file system). moto implements neither the block-device-mapping filter
// nor RegisterImage's mappings, so where the test needs "an AMI registered on release 1's snapshot" a middleware
// answers that filter as EC2 would, from moto's own images plus the mapping moto dropped; the other region goes
// through moto's refusal and the account-wide fallback.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Image,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { createAwsTarget, type AwsTarget } from '../../activities/aws/target';
import { AWS_TAGS } from '../../activities/aws/tags';
import { DEPRECATED_TAG } from '../../activities/aws/retention';
import type { ChannelState } from '../../activities/channels';
import { createDirectoryTarget } from '../../activities/directory/target';
import { domainXml } from '../../activities/libvirt/domain-xml';
import { createLibvirtTarget, type LibvirtTarget } from '../../activities/libvirt/target';
import { createOpenstackTarget, type OpenstackTarget } from '../../activities/openstack/target';
import { createRetentionActivities } from '../../activities/retention/activities';
import { NO_RELEASES } from '../../activities/retention/lookup';
import type { RetentionItem } from '../../activities/retention/plan';
import type { Candidate, StagedArtifact } from '../../activities/types';
import { Target, type ReleaseDefinitionInput } from '../../config/schema';
import { identityHeaders, startGlance, type Glance } from '../../scripts/servers/glance';
import { createPool, startLibvirtd, virsh, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { fakeCredentials, recorder } from './aws-helpers';
import { MiB, sha256, sparseRaw } from './libvirt-helpers';

const rig = inject('rig');
const host = rig.sshHosts[0]!;
const DEF = `ret${Math.random().toString(36).slice(2, 8)}`;
const STAMPS = { r1: '20260101_000001', r2: '20260201_000001', r3: '20260301_000001' } as const;
type Rel = keyof typeof STAMPS;
const RELS: Rel[] = ['r1', 'r2', 'r3'];
const releaseId = (r: Rel) => `${DEF}-${r}`;
const imageName = (r: Rel) => `${DEF}-x86_64-${STAMPS[r]}`;
const HOME = 'us-east-2';
const COPY = 'eu-central-1';
const PROJECT = 'proj-retention';

let dir: string;
let libvirtd: Libvirtd;
let pool: RigPool;
let glance: Glance;
let definitionsDir: string;
let stagingDir: string;
let imagesDir: string;
const domains: string[] = [];
const instances: { region: string; id: string }[] = [];
let holder: ChildProcess | undefined;
const published: Record<Rel, Candidate[]> = { r1: [], r2: [], r3: [] };

const ec2 = (region: string) => new EC2Client({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials });
const awsTarget = () => Target.parse({ kind: 'aws', region: HOME, copyTo: [COPY], credentials: { endpoint: rig.motoEndpoint } }) as AwsTarget;
const libvirtTarget = () =>
  Target.parse({ kind: 'libvirt', hosts: [host.address], ssh: { port: host.port, privateKeyPath: rig.privateKeyPath }, pool: pool.name, format: 'raw' }) as LibvirtTarget;
const glanceTarget = () =>
  Target.parse({ kind: 'openstack', imageUrl: glance.address, testIdentityHeaders: { userId: 'u1', projectId: PROJECT, roles: ['member', 'reader'] } }) as OpenstackTarget;

/** Snapshot id → a foreign AMI registered on it: what EC2 would report through the block-device-mapping filter. */
const foreignUses = new Map<string, string>();
const snapshotsOf = (i: Image) => (i.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId);

const awsRecorder = recorder({
  onClient: (client, service) => {
    if (service !== 'ec2') return;
    const region = (client as unknown as { config: { region: () => Promise<string> } }).config.region();
    client.middlewareStack.add(
      (next: any, context: any) => async (args: any) => {
        const filter = args.input?.Filters?.find((f: { Name: string }) => f.Name === 'block-device-mapping.snapshot-id');
        if (context.commandName !== 'DescribeImagesCommand' || !filter || (await region) !== HOME) return next(args);
        const snapshot = filter.Values[0];
        const out = await next({ ...args, input: { Owners: ['self'] } });
        const images = (out.output.Images as Image[]).filter((i) => snapshotsOf(i).includes(snapshot) || foreignUses.get(snapshot) === i.ImageId);
        return { ...out, output: { ...out.output, Images: images } };
      },
      { step: 'initialize', name: 'ec2SnapshotFilterAsAws' },
    );
  },
});

const drivers = () => ({
  aws: createAwsTarget({ ...awsRecorder.deps, pollIntervalMs: 20 }),
  libvirt: createLibvirtTarget(),
  openstack: createOpenstackTarget({ pollIntervalMs: 100 }),
  directory: createDirectoryTarget(),
});

/** production: r1, r2, r3 assigned in turn; r3 is current. */
function productionState(): ChannelState {
  const history = RELS.map((r, i) => ({ seq: i + 1, kind: 'approve' as const, releaseId: releaseId(r), images: published[r], by: 'copr-admin', at: new Date().toISOString() }));
  return { definition: DEF, channel: 'production', current: history.at(-1), history, retention: [] };
}

function retention() {
  return createRetentionActivities({
    definitionsDir,
    targets: drivers(),
    channels: { stateOf: async (d, c) => (d === DEF && c === 'production' ? productionState() : undefined) },
    releases: NO_RELEASES,
    stagingDir,
    stagingQueue: 'retention@w1',
  });
}

function writeDefinition(settings: { keep?: number; minAge?: string; deprecateFirst?: boolean }) {
  const definition: ReleaseDefinitionInput = {
    name: DEF,
    source: { image: 'quay.io/example/builder:latest' },
    architectures: {
      x86_64: {
        builder: { provider: 'static', hosts: [{ address: host.address, port: host.port }], ssh: { privateKeyPath: rig.privateKeyPath } },
        types: ['ami', 'raw'],
        targets: ['aws-prod', 'hypervisors', 'osuosl', 'files'],
      },
    },
    targets: {
      'aws-prod': { kind: 'aws', region: HOME, copyTo: [COPY], credentials: { endpoint: rig.motoEndpoint } },
      hypervisors: { kind: 'libvirt', hosts: [host.address], ssh: { port: host.port, privateKeyPath: rig.privateKeyPath }, pool: pool.name, format: 'raw' },
      osuosl: { kind: 'openstack', imageUrl: glance.address, testIdentityHeaders: { userId: 'u1', projectId: PROJECT, roles: ['member', 'reader'] } },
      files: { kind: 'directory', path: imagesDir },
    },
    approval: { approvers: ['copr-admin'], allowUnsigned: true },
    channels: { production: {} },
    retention: { keep: 1, minAge: '0s', deprecateFirst: false, ...settings },
  } as ReleaseDefinitionInput;
  writeFileSync(path.join(definitionsDir, `${DEF}.yaml`), stringify(definition));
}

async function publishRelease(r: Rel) {
  const file = sparseRaw(path.join(dir, `${r}.raw`), 16 * MiB, [[0, MiB]]);
  const artifact = (type: StagedArtifact['type']): StagedArtifact => ({
    arch: 'x86_64',
    type,
    path: file,
    size: statSync(file).size,
    dataBytes: MiB,
    sha256: sha256(file),
    stagingQueue: 'retention@w1',
  });
  const d = drivers();
  const common = { releaseId: releaseId(r), arch: 'x86_64' as const, imageName: imageName(r) };
  published[r] = [
    ...(await d.aws.publish({ ...common, targetName: 'aws-prod', target: awsTarget(), artifact: artifact('ami') })),
    ...(await d.libvirt.publish({ ...common, targetName: 'hypervisors', target: libvirtTarget(), artifact: artifact('raw') })),
    ...(await d.openstack.publish({ ...common, targetName: 'osuosl', target: glanceTarget(), artifact: artifact('raw') })),
    ...(await d.directory.publish({ ...common, targetName: 'files', target: Target.parse({ kind: 'directory', path: imagesDir }) as never, artifact: artifact('raw') })),
  ];
}

/** What each peer holds of each release now. */
async function counts() {
  const amis: Record<string, string[]> = {};
  const snapshots: Record<string, string[]> = {};
  for (const region of [HOME, COPY]) {
    const filters = [{ Name: `tag:${AWS_TAGS.releaseId}`, Values: RELS.map(releaseId) }];
    for (const i of (await ec2(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }))).Images ?? [])
      (amis[`${region}/${i.Tags!.find((t) => t.Key === AWS_TAGS.releaseId)!.Value}`] ??= []).push(i.ImageId!);
    for (const s of (await ec2(region).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters }))).Snapshots ?? [])
      (snapshots[`${region}/${s.Tags!.find((t) => t.Key === AWS_TAGS.releaseId)!.Value}`] ??= []).push(s.SnapshotId!);
  }
  const volumes = (await virsh('vol-list', '--pool', pool.name)).split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean).sort();
  const res = await fetch(`${glance.address}/v2/images?limit=100`, { headers: identityHeaders(PROJECT) });
  const glanceImages = ((await res.json()) as { images: { name: string }[] }).images.map((i) => i.name).sort();
  const files = readdirSync(imagesDir).filter((f) => !f.endsWith('.sha256')).sort();
  const staged = readdirSync(stagingDir, { recursive: true, encoding: 'utf8' }).filter((p) => p.split(path.sep).length === 3).sort();
  return { amis, snapshots, volumes, glanceImages, files, staged };
}

const byRelease = (items: RetentionItem[]) =>
  items.map((i) => `${i.releaseId.replace(`${DEF}-`, '')} ${i.target} ${i.image.region ?? ''}`.trim()).sort();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-retention-'));
  definitionsDir = path.join(dir, 'definitions');
  stagingDir = path.join(dir, 'staging');
  imagesDir = path.join(dir, 'images');
  for (const d of [definitionsDir, stagingDir, imagesDir]) mkdirSync(d, { recursive: true });
  libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
  pool = await createPool(dir, 'retention');
  glance = await startGlance(path.join(dir, 'glance'));
  for (const r of RELS) await publishRelease(r);
  // Release 1's staged artifact, kept on the worker (staging.keep) after the release.
  mkdirSync(path.join(stagingDir, releaseId('r1'), 'x86_64', 'raw'), { recursive: true });
  writeFileSync(path.join(stagingDir, releaseId('r1'), 'x86_64', 'raw', 'disk.raw'), 'staged');
}, 300_000);

afterAll(async () => {
  holder?.kill('SIGKILL');
  for (const { region, id } of instances) await ec2(region).send(new TerminateInstancesCommand({ InstanceIds: [id] })).catch(() => undefined);
  for (const name of domains) await virsh('undefine', name).catch(() => undefined);
  for (const id of foreignUses.values()) await ec2(HOME).send(new DeregisterImageCommand({ ImageId: id })).catch(() => undefined);
  await pool?.remove();
  await libvirtd?.stop();
  await glance?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('retention on every backend', () => {
  it('changes nothing while planning, and minAge keeps every image made less than minAge ago', async () => {
    writeDefinition({ minAge: '1d' });
    const before = await counts();
    const plan = await retention().planRetention({ definition: DEF, now: new Date().toISOString() });
    expect(plan.delete).toEqual([]);
    expect(plan.deprecate).toEqual([]);
    expect(plan.kept.filter((k) => k.releaseId !== releaseId('r3')).every((k) => k.why?.startsWith('younger than minAge 1d'))).toBe(true);
    expect(plan.protected).toEqual([{ releaseId: releaseId('r3'), why: 'current on channel production' }]);
    expect(await counts()).toEqual(before);
  });

  it('deprecateFirst deprecates the AMIs of releases 1 and 2 (seen through DescribeImages) and keeps the rest; restore re-enables', async () => {
    writeDefinition({ deprecateFirst: true });
    const acts = retention();
    const plan = await acts.planRetention({ definition: DEF, now: new Date().toISOString() });
    expect(byRelease(plan.deprecate)).toEqual([`r1 aws-prod ${COPY}`, `r1 aws-prod ${HOME}`, `r2 aws-prod ${COPY}`, `r2 aws-prod ${HOME}`]);
    expect(plan.delete).toEqual([]);
    expect(plan.kept.filter((k) => k.why?.startsWith('deprecateFirst')).map((k) => k.target).sort()).toEqual(
      ['(staged)', 'files', 'files', 'hypervisors', 'hypervisors', 'osuosl', 'osuosl'],
    );

    awsRecorder.clear();
    for (const item of plan.deprecate) {
      const record = await acts.applyRetention({ definition: DEF, item });
      expect(record).toMatchObject({ action: 'deprecate', outcome: 'ok', imageId: item.image.imageId });
      // moto has no EnableImageDeprecation: the record says the tag alone marks it.
      expect(record.detail).toMatch(/does not implement EnableImageDeprecation/);
    }
    expect(awsRecorder.of('EnableImageDeprecationCommand').map((c) => c.input.ImageId).sort()).toEqual(plan.deprecate.map((i) => i.image.imageId).sort());
    for (const c of awsRecorder.of('EnableImageDeprecationCommand')) expect(c.input.DeprecateAt.getTime()).toBeGreaterThan(Date.now());
    const deprecated = async (region: string) =>
      ((await ec2(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'tag-key', Values: [DEPRECATED_TAG] }] }))).Images ?? [])
        .map((i) => i.ImageId!)
        .filter((id) => RELS.some((r) => published[r].some((c) => c.imageId === id)));
    expect([...(await deprecated(HOME)), ...(await deprecated(COPY))].sort()).toEqual(plan.deprecate.map((i) => i.image.imageId).sort());

    // A rollback to release 2 re-enables its AMIs; release 1's stay deprecated, so the next run deletes all of release 1.
    const restored = await acts.restoreImages({ definition: DEF, releaseId: releaseId('r2') });
    expect(restored.map((r) => [r.action, r.outcome, r.region]).sort()).toEqual([['restore', 'ok', COPY], ['restore', 'ok', HOME]]);
    expect(awsRecorder.of('DisableImageDeprecationCommand')).toHaveLength(2);
    const r1amis = published.r1.filter((c) => c.kind === 'aws').map((c) => c.imageId).sort();
    expect([...(await deprecated(HOME)), ...(await deprecated(COPY))].sort()).toEqual(r1amis);
    const next = await acts.planRetention({ definition: DEF, now: new Date().toISOString() });
    expect(byRelease(next.deprecate)).toEqual([`r2 aws-prod ${COPY}`, `r2 aws-prod ${HOME}`]);
    expect(byRelease(next.delete)).toEqual(['r1 (staged) retention@w1', `r1 aws-prod ${COPY}`, `r1 aws-prod ${HOME}`, 'r1 files', `r1 hypervisors ${host.address}`, 'r1 osuosl']);
  });

  it('keep 1 deletes only what no channel uses, everywhere, keeps a shared snapshot and what an instance, a domain or a process uses', async () => {
    writeDefinition({ deprecateFirst: false });
    const r1ami = published.r1.find((c) => c.kind === 'aws' && c.region === HOME)!;
    const r1uploaded = r1ami.resources!.find((r) => r.kind === 'snapshot' && r.region === HOME)!.id;
    // Someone registered an AMI of their own on release 1's snapshot (no bootc-release tags).
    const foreign = (await ec2(HOME).send(new RegisterImageCommand({ Name: `foreign-${DEF}`, RootDeviceName: '/dev/sda1' }))).ImageId!;
    foreignUses.set(r1uploaded, foreign);
    // A running instance of release 2's copy, a defined domain on release 2's volume, a process reading release 1's file.
    const r2copy = published.r2.find((c) => c.kind === 'aws' && c.region === COPY)!;
    const run = await ec2(COPY).send(new RunInstancesCommand({ ImageId: r2copy.imageId, MinCount: 1, MaxCount: 1 }));
    instances.push({ region: COPY, id: run.Instances![0]!.InstanceId! });
    const domain = `${DEF}-user`;
    writeFileSync(path.join(dir, 'domain.xml'), domainXml({ name: domain, arch: 'x86_64', memoryMiB: 128, vcpus: 1, pool: pool.name, volume: imageName('r2'), network: 'default', releaseId: 'someone', domainType: 'qemu' }));
    await virsh('define', path.join(dir, 'domain.xml'));
    domains.push(domain);
    const r1file = path.join(imagesDir, `${imageName('r1')}.raw`);
    holder = spawn('sh', ['-c', 'exec sleep 600 < "$0"', r1file], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));

    const acts = retention();
    const before = await counts();
    const plan = await acts.planRetention({ definition: DEF, now: new Date().toISOString() });
    expect(await counts()).toEqual(before);
    expect(byRelease(plan.delete)).toEqual([
      'r1 (staged) retention@w1',
      `r1 aws-prod ${COPY}`,
      `r1 aws-prod ${HOME}`,
      `r1 hypervisors ${host.address}`,
      'r1 osuosl',
      `r2 aws-prod ${HOME}`,
      'r2 files',
      'r2 osuosl',
    ]);
    const why = (imageId: string) => plan.kept.find((k) => k.image.imageId === imageId)?.why;
    expect(why(r2copy.imageId)).toBe(`in use: instance ${instances[0]!.id} (running) in ${COPY}`);
    expect(why(`${host.address}:${pool.name}/${imageName('r2')}`)).toBe(`in use: domain ${domain} (shut off) on ${host.address}`);
    expect(why(r1file)).toMatch(/^in use: process \d+ \(sleep\) on this worker has it open$/);
    for (const c of published.r3) expect(why(c.imageId)).toBe(`release ${releaseId('r3')}: current on channel production`);

    awsRecorder.clear();
    const records = [];
    for (const item of plan.delete) records.push(await acts.applyRetention({ definition: DEF, item }));
    expect(records.map((r) => r.outcome)).toEqual(plan.delete.map(() => 'ok'));
    expect(records.find((r) => r.imageId === r1ami.imageId)!.detail).toBe(`snapshot ${r1uploaded} kept: AMI ${foreign} (foreign-${DEF}) still uses it`);
    // The copy region asked moto the EC2 way, was refused, and matched the account's own AMIs instead.
    expect(awsRecorder.of('DescribeImagesCommand').some((c) => c.ok === false && c.input.Filters?.[0]?.Name === 'block-device-mapping.snapshot-id')).toBe(true);

    const after = await counts();
    expect(Object.keys(after.amis).sort()).toEqual([`${COPY}/${releaseId('r2')}`, `${COPY}/${releaseId('r3')}`, `${HOME}/${releaseId('r3')}`]);
    expect(after.amis[`${COPY}/${releaseId('r2')}`]).toEqual([r2copy.imageId]);
    // Release 1 keeps only the snapshot the foreign AMI stands on; release 2 only its copy's, under the running instance.
    expect(after.snapshots[`${HOME}/${releaseId('r1')}`]).toEqual([r1uploaded]);
    expect(after.snapshots[`${COPY}/${releaseId('r1')}`]).toBeUndefined();
    expect(after.snapshots[`${HOME}/${releaseId('r2')}`]).toBeUndefined();
    expect(after.snapshots[`${COPY}/${releaseId('r2')}`]).toEqual(before.snapshots[`${COPY}/${releaseId('r2')}`]);
    expect(after.snapshots[`${HOME}/${releaseId('r3')}`]).toEqual(before.snapshots[`${HOME}/${releaseId('r3')}`]);
    expect(after.volumes).toEqual([imageName('r2'), imageName('r3')]);
    expect(after.glanceImages).toEqual(before.glanceImages.filter((n) => n === imageName('r3') || !n.startsWith(DEF)));
    expect(after.files).toEqual([`${imageName('r1')}.raw`, `${imageName('r3')}.raw`]);
    // The artifact directory goes; the release's directory (where build logs stay) does not.
    expect(before.staged).toEqual([path.join(releaseId('r1'), 'x86_64', 'raw')]);
    expect(after.staged).toEqual([]);

    // At apply time the checks run again: a delete of an image an instance uses, or of the current release, is kept.
    const asDelete = (imageId: string) => ({ ...plan.kept.find((k) => k.image.imageId === imageId)!, action: 'delete' as const });
    expect(await acts.applyRetention({ definition: DEF, item: asDelete(r2copy.imageId) })).toMatchObject({
      action: 'delete',
      outcome: 'kept',
      detail: `in use: instance ${instances[0]!.id} (running) in ${COPY}`,
    });
    const r3volume = published.r3.find((c) => c.kind === 'libvirt')!.imageId;
    expect(await acts.applyRetention({ definition: DEF, item: asDelete(r3volume) })).toMatchObject({
      outcome: 'kept',
      detail: `release ${releaseId('r3')}: current on channel production (since the plan)`,
    });
    expect(await counts()).toEqual(after);

    // Applying the same items again finds them gone: done, not failed.
    for (const item of plan.delete) expect((await acts.applyRetention({ definition: DEF, item })).outcome).toBe('ok');
    expect(await counts()).toEqual(after);
  });

  it('a deletion that cannot reach its host fails retryably (Temporal retries it), never as done', async () => {
    const acts = retention();
    const gone = `127.0.0.99:${pool.name}/${imageName('r3')}`;
    const item: RetentionItem = {
      action: 'delete',
      target: 'hypervisors',
      releaseId: `${DEF}-r0`,
      image: { ...published.r3.find((c) => c.kind === 'libvirt')!, imageId: gone, region: '127.0.0.99', imageName: `${DEF}-x86_64-20250101_000000` },
    };
    const failure = await acts.applyRetention({ definition: DEF, item }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(Error);
    expect(failure instanceof ApplicationFailure && failure.nonRetryable).toBe(false);
    expect((await virsh('vol-list', '--pool', pool.name))).toContain(imageName('r3'));
  });
});
