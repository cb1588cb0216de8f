// Retention applied by the channel workflows, end to end on the rig: four releases of one definition built by the
// bootc-image-builder stand-in and published to AWS (moto, EBS direct), libvirt (the real libvirtd, through a rig SSH
// host) and Glance (a real glance-api), moved through staging and production by a worker process that is SIGKILLed
// twice: while the promotion's activation hook runs, and while a Glance deletion is in flight. Everything retention
// does is counted through the peers' own APIs (DescribeImages/DescribeSnapshots, `virsh vol-list`, Glance's image
// list); every activation target of production (a bare git repository, an SSM parameter on moto, a hook's input) is
// checked after each step. `keep: 1` and `minAge: 0s`: each channel keeps only its current release. A deletion that
// keeps failing is recorded failed and reported, and done by the next run; an update that arrives while a run deletes
// waits for the deletion in flight only, and the run is made again after it.
//
// A gate in front of glance-api lets the test hold back Glance's answer to a DELETE (the image is deleted, the worker
// never hears so): the worker is killed right then, deterministically mid-deletion; or an update is sent then. It
// can also answer deletions with 503 itself. moto gives every AMI a snapshot of
// its own and ignores RegisterImage's block device mappings, so two AMIs cannot share one there the EC2 way: the
// test shares the way moto can show, a foreign AMI's own snapshot carrying release 2's tags (as a snapshot of the
// release someone registered an AMI on would); retention must keep it because that AMI still uses it.
import { type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  CreateTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetParameterHistoryCommand, SSMClient } from '@aws-sdk/client-ssm';
import { defaultPayloadConverter } from '@temporalio/common';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { DEPRECATED_TAG } from '../../activities/aws/retention';
import { AWS_TAGS } from '../../activities/aws/tags';
import { channelWorkflowId, type ChannelInput, type ChannelState, type RetentionRecord } from '../../activities/channels';
import type { Candidate } from '../../activities/types';
import { ChannelClient } from '../../client/channel-client';
import { identityHeaders, startGlance, type Glance } from '../../scripts/servers/glance';
import { createPool, startLibvirtd, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { promoteUpdate } from '../../workflows/channel-messages';
import { WORKFLOW_TYPES } from '../../workflows/messages';
import { fakeCredentials } from '../integration/aws-helpers';
import {
  alive,
  connectRig,
  killWorker,
  spawnWorkerProcess,
  standinDefinition,
  waitForStage,
  waitUntil,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';
import { cli, hook, hookInputs, inventoryRepo } from './channel-harness';

const rig = inject('rig') as RigInfo;
const run = randomUUID().slice(0, 8);
const base = path.join(rig.dir, `e2e-chret-${run}`);
const taskQueue = `e2e-chret-${run}`;
const dirs = workerDirs(path.join(base, 'worker'));
const name = `chret-${run}`;
const region = 'eu-west-3';
const PROJECT = 'copr';
const host = rig.sshHosts[2]!;
const parameter = `/${name}/builder-image/x86_64`;
const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials });
const ssm = new SSMClient({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials });
let conn: Awaited<ReturnType<typeof connectRig>>;
let channels: ChannelClient;
let libvirtd: Libvirtd;
let pool: RigPool;
let glance: Glance;
let gate: Awaited<ReturnType<typeof glanceGate>>;
let inventory: ReturnType<typeof inventoryRepo>;
const workers: ChildProcess[] = [];
const instances: string[] = [];
const foreignAmis: string[] = [];

const hookDir = (channel: string) => path.join(base, 'hooks', channel);

/**
 * An HTTP relay to glance-api that records each DELETE and, while held, sends the request on but keeps Glance's
 * answer back until released: the image is gone and the worker that asked waits (or dies waiting). While refusing,
 * it answers a DELETE itself with 503, as an overloaded Glance would.
 */
async function glanceGate(upstream: string) {
  const deletes: string[] = [];
  let holding = false;
  let refusing = false;
  const held: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'DELETE' && refusing) {
      deletes.push(req.url!);
      req.resume();
      return void res.writeHead(503, { 'content-type': 'text/plain' }).end('Service Unavailable: the gate refuses deletions');
    }
    const forward = http.request(new URL(req.url!, upstream), { method: req.method, headers: req.headers }, (answer) => {
      const pass = () => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      };
      if (req.method === 'DELETE') deletes.push(req.url!);
      if (req.method === 'DELETE' && holding) held.push(pass);
      else pass();
    });
    forward.on('error', () => res.destroy());
    res.on('error', () => undefined);
    req.pipe(forward);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    deletes,
    hold: () => void (holding = true),
    refuse: (on: boolean) => void (refusing = on),
    /** Answers what was held (to a worker that died meanwhile: to nobody) and holds nothing more. */
    release: () => {
      holding = false;
      for (const pass of held.splice(0)) pass();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function writeDefinition(deprecateFirst: boolean) {
  const def = standinDefinition(rig, path.join(base, 'release'), { name, arches: [{ arch: 'x86_64', host, types: ['ami', 'raw'] }], heartbeat: '5s' });
  // Glance first: retention lists (and deletes) in this order, so the Glance deletion the gate holds has others after it.
  def.architectures!.x86_64!.targets = ['osuosl', 'aws', 'hypervisors'];
  def.targets = {
    osuosl: { kind: 'openstack', imageUrl: gate.address, testIdentityHeaders: { userId: 'copr-bot', projectId: PROJECT, roles: ['member', 'reader'] } },
    aws: { kind: 'aws', region, method: 'ebs-direct', credentials: { endpoint: rig.motoEndpoint } },
    hypervisors: { kind: 'libvirt', hosts: [host.address], ssh: { port: host.port, privateKeyPath: rig.privateKeyPath }, pool: pool.name, format: 'raw' },
  } as never;
  const map = (file: string) => ({ kind: 'image-map-git', repository: inventory.bare, file });
  def.channels = {
    staging: { activation: [map('staging.yaml'), hook(hookDir('staging'))] },
    production: {
      requires: { channel: 'staging', tested: true },
      activation: [
        map('production.yaml'),
        { kind: 'ssm-parameter', region, name: `/${name}/builder-image/{arch}`, credentials: { endpoint: rig.motoEndpoint } },
        hook(hookDir('production')),
      ],
    },
  } as never;
  (def as { retention?: object }).retention = { keep: 1, minAge: '0s', deprecateFirst };
  writeFileSync(path.join(dirs.definitionsDir, `${name}.yaml`), stringify(def));
}

function startWorker(): ChildProcess {
  const child = spawnWorkerProcess(rig, { taskQueue, workerId: 'w1', dirs, overrides: { aws: {} }, logFile: path.join(base, `worker-${workers.length + 1}.log`) });
  workers.push(child);
  return child;
}

async function restartWorker() {
  for (const w of workers.filter(alive)) await killWorker(w);
  startWorker();
}

/** A release's images, by the ids its candidates name, and every snapshot behind its AMI. */
interface Published {
  releaseId: string;
  ami: string;
  volume: string;
  glanceId: string;
  snapshots: string[];
}

async function approvedRelease(): Promise<Published> {
  const releaseId = await conn.releases.startByName(name, { reason: 'channels retention test' });
  const ready = await waitForStage(conn.releases, releaseId, ['awaiting-approval', 'failed'], 240_000);
  expect(ready.publishFailures).toEqual([]);
  expect(ready.stage).toBe('awaiting-approval');
  const of = (kind: Candidate['kind']) => ready.candidates.find((c) => c.kind === kind)!;
  const ami = of('aws').imageId;
  const [image] = (await ec2.send(new DescribeImagesCommand({ ImageIds: [ami] }))).Images!;
  const snapshots = [...(image!.BlockDeviceMappings ?? []).map((m) => m.Ebs!.SnapshotId!), ...(await taggedSnapshots(releaseId))];
  expect((await conn.releases.approve(releaseId, { by: 'copr-admin' })).stage).toBe('activated');
  return { releaseId, ami, volume: of('libvirt').imageId.split('/').pop()!, glanceId: of('openstack').imageId, snapshots: [...new Set(snapshots)].sort() };
}

const taggedSnapshots = async (releaseId: string) =>
  ((await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${AWS_TAGS.releaseId}`, Values: [releaseId] }] }))).Snapshots ?? []).map(
    (s) => s.SnapshotId!,
  );

/** What each peer holds of a release now, asked through its own API. */
async function held(r: Published) {
  const images = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: `tag:${AWS_TAGS.releaseId}`, Values: [r.releaseId] }] }))).Images ?? [];
  const snapshots = new Set(((await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }))).Snapshots ?? []).map((s) => s.SnapshotId!));
  const listed = await fetch(`${glance.address}/v2/images?limit=200`, { headers: identityHeaders(PROJECT) });
  const glanceIds = ((await listed.json()) as { images: { id: string }[] }).images.map((i) => i.id);
  return {
    amis: images.map((i) => i.ImageId!),
    deprecated: images.filter((i) => i.Tags?.some((t) => t.Key === DEPRECATED_TAG)).map((i) => i.ImageId!),
    snapshots: [...new Set([...r.snapshots, ...(await taggedSnapshots(r.releaseId))])].filter((s) => snapshots.has(s)).sort(),
    volumes: (await pool.volumes()).filter((v) => v === r.volume),
    glance: glanceIds.filter((id) => id === r.glanceId),
  };
}
const everything = (r: Published) => ({ amis: [r.ami], deprecated: [], snapshots: r.snapshots, volumes: [r.volume], glance: [r.glanceId] });

const state = (channel: string): Promise<ChannelState> => channels.show(name, channel);

/** The channel's state once its retention run after assignment #seq has finished (not stopped for an assignment). */
async function retentionAfter(channel: string, seq: number): Promise<ChannelState> {
  let s: ChannelState | undefined;
  await waitUntil(
    `${channel}'s retention run after #${seq}`,
    async () => {
      s = await state(channel).catch(() => undefined);
      const r = s?.retentionRun;
      return r?.kind === 'apply' && r.seq === seq && !!r.finishedAt && !r.deferred;
    },
    240_000,
  );
  return s!;
}
const recordsOf = (s: ChannelState, seq: number) => s.retention.filter((r) => r.seq === seq);
const brief = (r: RetentionRecord) => `${r.action} ${r.outcome} ${r.target} ${r.imageId}`;

const ssmVersions = async (releaseId: string) =>
  ((await ssm.send(new GetParameterHistoryCommand({ Name: parameter }))).Parameters ?? []).filter((v) => v.Description === `bootc-release ${releaseId}`);

/** The hook's state directories of one release's production assignments (activation/<release>/production-<seq>-<step>). */
const hookRuns = (releaseId: string) => {
  const dir = path.join(dirs.stateDir, 'activation', releaseId);
  return existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith('production-')).sort() : [];
};

beforeAll(async () => {
  for (const c of ['staging', 'production']) mkdirSync(hookDir(c), { recursive: true });
  inventory = inventoryRepo(base, ['staging.yaml', 'production.yaml']);
  libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
  pool = await createPool(base, 'chret');
  glance = await startGlance(path.join(base, 'glance'));
  gate = await glanceGate(glance.address);
  writeDefinition(true);
  conn = await connectRig(rig, taskQueue);
  channels = new ChannelClient(conn.client, taskQueue);
  // Production continues as new every few assignments: retention records must survive it.
  await conn.client.workflow.start(WORKFLOW_TYPES.channel, {
    workflowId: channelWorkflowId(name, 'production'),
    taskQueue,
    args: [{ definition: name, channel: 'production', maxHistoryEvents: 60 }],
  });
  startWorker();
}, 180_000);

afterAll(async () => {
  for (const w of workers) await killWorker(w);
  if (instances.length) await ec2.send(new TerminateInstancesCommand({ InstanceIds: instances })).catch(() => undefined);
  for (const id of foreignAmis) await ec2.send(new DeregisterImageCommand({ ImageId: id })).catch(() => undefined);
  await conn?.close();
  await gate?.close();
  await glance?.stop();
  await pool?.remove();
  await libvirtd?.stop();
});

describe('retention applied by the channels', () => {
  let r1: Published;
  let r2: Published;
  let r3: Published;
  let r4: Published;
  let productionWithR1: unknown;

  it('assigns release 1 to staging and promotes it to production; with nothing unused, retention changes nothing', async () => {
    r1 = await approvedRelease();
    const staging = await retentionAfter('staging', 1);
    expect(staging.retentionRun).toMatchObject({ kind: 'apply', seq: 1, planned: 0, done: 0, failed: 0 });
    await channels.markTested(name, 'staging', { by: 'copr-admin' });
    const promoted = await channels.promote(name, 'staging', 'production', { by: 'release-manager' });
    const production = await retentionAfter('production', promoted.seq);
    expect(production.retentionRun).toMatchObject({ planned: 0, failed: 0 });
    productionWithR1 = inventory.read('production.yaml');
    expect(productionWithR1).toMatchObject({ copr_other: 'kept', copr_builder_images: { aws: { x86_64: r1.ami } } });
    expect(await held(r1)).toEqual(everything(r1));
  });

  it('keeps production on release 1 while release 2 goes to staging, promotes it through a worker SIGKILLed in the hook (one commit, one SSM write, one hook run), then deprecates release 1', async () => {
    r2 = await approvedRelease();
    expect((await retentionAfter('staging', 2)).retentionRun).toMatchObject({ planned: 0 });
    expect(inventory.read('production.yaml')).toEqual(productionWithR1);
    expect(await held(r1)).toEqual(everything(r1));

    await channels.markTested(name, 'staging', { by: 'copr-admin' });
    writeFileSync(path.join(hookDir('production'), 'hold'), '');
    const promotion = channels.promote(name, 'staging', 'production', { by: 'release-manager' });
    promotion.catch(() => undefined);
    await waitUntil('the production hook of the promotion to start', () => hookInputs(hookDir('production')).length === 2, 120_000);
    await restartWorker();
    const attempt = async () =>
      (await conn.client.workflow.getHandle(channelWorkflowId(name, 'production')).describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'activate')
        ?.attempt ?? 0;
    await waitUntil('a second attempt of the activation on the new worker', async () => (await attempt()) >= 2, 90_000);
    rmSync(path.join(hookDir('production'), 'hold'));
    const promoted = await promotion;
    expect(promoted).toMatchObject({ kind: 'promote', releaseId: r2.releaseId });

    // Each activation target was written once for this assignment.
    expect(inventory.commits('production.yaml').filter((s) => s.includes(r2.releaseId))).toEqual([
      `Activate images of release ${r2.releaseId} on production, approved by release-manager`,
    ]);
    expect(inventory.read('production.yaml').copr_builder_images.aws).toEqual({ x86_64: r2.ami });
    expect(await ssmVersions(r2.releaseId)).toHaveLength(1);
    expect(hookInputs(hookDir('production')).filter((i) => i.assignment.seq === promoted.seq)).toHaveLength(1);
    expect(hookRuns(r2.releaseId)).toEqual([`production-${promoted.seq}-2`]);
    expect(readFileSync(path.join(dirs.stateDir, 'activation', r2.releaseId, `production-${promoted.seq}-2`, 'exit'), 'utf8').trim()).toBe('0');

    // Release 1 left every channel: deprecateFirst deprecates its AMI and keeps the rest of it for a rollback.
    const production = await retentionAfter('production', promoted.seq);
    expect(recordsOf(production, promoted.seq).map(brief)).toEqual([`deprecate ok aws ${r1.ami}`]);
    expect(production.retentionRun).toMatchObject({ planned: 1, done: 1, failed: 0 });
    expect(await held(r1)).toEqual({ ...everything(r1), deprecated: [r1.ami] });
    expect(await held(r2)).toEqual(everything(r2));
  });

  it('rolls production back to release 1: its AMI is re-enabled first, then every activation target gets release 1 again', async () => {
    const back = await channels.rollback(name, 'production', { by: 'release-manager', reason: 'release 2 breaks builds' });
    expect(back).toMatchObject({ kind: 'rollback', releaseId: r1.releaseId });
    const production = await retentionAfter('production', back.seq);
    // The restore record was made before the rollback activated; the run after it had nothing to do.
    expect(recordsOf(production, back.seq).map(brief)).toEqual([`restore ok aws ${r1.ami}`]);
    expect(await held(r1)).toEqual(everything(r1));

    expect(inventory.read('production.yaml')).toEqual(productionWithR1);
    expect((await ssm.send(new GetParameterHistoryCommand({ Name: parameter }))).Parameters!.at(-1)!.Value).toBe(r1.ami);
    expect(hookInputs(hookDir('production')).at(-1)).toMatchObject({ releaseId: r1.releaseId, assignment: { seq: back.seq, kind: 'rollback' } });
    expect(hookRuns(r1.releaseId)).toEqual([`production-${back.seq}-2`, 'production-1-2'].sort());
    // Both releases are in use again (production: 1, staging: 2): the run after the rollback plans nothing.
    expect(production.retentionRun).toMatchObject({ kind: 'apply', seq: back.seq, planned: 0 });
  });

  it('deprecates release 2 when it leaves every channel and deletes it everywhere on a later assignment, once, though the worker is SIGKILLed mid-deletion; a snapshot another AMI stands on survives', async () => {
    r3 = await approvedRelease();
    const stagingSeq = (await state('staging')).current!.seq;
    const staging = await retentionAfter('staging', stagingSeq);
    expect(recordsOf(staging, stagingSeq).map(brief)).toEqual([`deprecate ok aws ${r2.ami}`]);
    expect(await held(r2)).toEqual({ ...everything(r2), deprecated: [r2.ami] });

    // Someone registered an AMI of their own on a snapshot of release 2.
    const foreign = (await ec2.send(new RegisterImageCommand({ Name: `foreign-${name}`, RootDeviceName: '/dev/sda1' }))).ImageId!;
    foreignAmis.push(foreign);
    const [foreignImage] = (await ec2.send(new DescribeImagesCommand({ ImageIds: [foreign] }))).Images!;
    const shared = foreignImage!.BlockDeviceMappings![0]!.Ebs!.SnapshotId!;
    const r2name = (await ec2.send(new DescribeImagesCommand({ ImageIds: [r2.ami] }))).Images![0]!.Tags!.find((t) => t.Key === AWS_TAGS.imageName)!.Value!;
    await ec2.send(
      new CreateTagsCommand({
        Resources: [shared],
        Tags: [
          { Key: AWS_TAGS.target, Value: 'aws' },
          { Key: AWS_TAGS.releaseId, Value: r2.releaseId },
          { Key: AWS_TAGS.imageName, Value: r2name },
        ],
      }),
    );
    r2.snapshots = [...r2.snapshots, shared].sort();

    // Production takes release 3: release 1 is deprecated, release 2 (deprecated) deleted; Glance's answer to the
    // deletion is held back and the worker killed while it waits.
    await channels.markTested(name, 'staging', { by: 'copr-admin' });
    gate.hold();
    const deletesBefore = gate.deletes.length;
    const promoted = await channels.promote(name, 'staging', 'production', { by: 'release-manager' });
    await waitUntil('the Glance deletion of release 2', () => gate.deletes.length > deletesBefore, 180_000);
    await restartWorker();
    expect((await held(r2)).glance).toEqual([]);
    expect(await held(r2)).toMatchObject({ amis: [r2.ami], volumes: [r2.volume] });
    gate.release();

    const production = await retentionAfter('production', promoted.seq);
    const records = recordsOf(production, promoted.seq);
    // The new worker finished the deletion the killed one was in, then the two after it.
    expect(records.map(brief)).toEqual([
      `deprecate ok aws ${r1.ami}`,
      `delete ok osuosl ${r2.glanceId}`,
      `delete ok aws ${r2.ami}`,
      `delete ok hypervisors ${host.address}:${pool.name}/${r2.volume}`,
    ]);
    expect(records.find((r) => r.imageId === r2.ami)!.detail).toBe(`snapshot ${shared} kept: AMI ${foreign} (foreign-${name}) still uses it`);
    expect(production.retentionRun).toMatchObject({ planned: 4, done: 4, failed: 0 });
    // The deletion was sent by the killed attempt and again by the retry, which found the image gone.
    expect(gate.deletes.slice(deletesBefore)).toEqual([`/v2/images/${r2.glanceId}`, `/v2/images/${r2.glanceId}`]);

    expect(await held(r2)).toEqual({ amis: [], deprecated: [], snapshots: [shared], volumes: [], glance: [] });
    expect(await held(r1)).toEqual({ ...everything(r1), deprecated: [r1.ami] });
    expect(await held(r3)).toEqual(everything(r3));
  });

  it('with deprecateFirst off deletes a release at once when it leaves every channel; a deletion Glance keeps refusing is recorded failed, reported, and done by the next run', async () => {
    writeDefinition(false);
    r4 = await approvedRelease();
    // Staging takes release 4, production has 3: release 1 (deprecated before) goes everywhere, but Glance refuses.
    gate.refuse(true);
    const deletesBefore = gate.deletes.length;
    const stagingSeq = (await state('staging')).current!.seq;
    const staging = await retentionAfter('staging', stagingSeq);
    gate.refuse(false);
    const records = recordsOf(staging, stagingSeq);
    expect(records.map(brief)).toEqual([
      `delete failed osuosl ${r1.glanceId}`,
      `delete ok aws ${r1.ami}`,
      `delete ok hypervisors ${host.address}:${pool.name}/${r1.volume}`,
    ]);
    expect(records[0]!.detail).toMatch(new RegExp(`^delete failed after retries: glance deleting image ${r1.glanceId}: 503 .*the gate refuses deletions`));
    // Five attempts, then the record: the retry policy's bound.
    expect(gate.deletes.slice(deletesBefore)).toEqual(Array(5).fill(`/v2/images/${r1.glanceId}`));
    expect(staging.retentionRun).toMatchObject({ planned: 3, done: 2, failed: 1 });
    const handle = conn.client.workflow.getHandle(channelWorkflowId(name, 'staging'));
    expect((await handle.describe()).memo).toMatchObject({ retention: { seq: stagingSeq, failed: 1, summary: `retention after #${stagingSeq}: 2 of 3 done, 1 failed` } });
    const { currentDetails } = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(currentDetails).toContain(`- **failed**: delete of \`${r1.glanceId}\` (osuosl, release \`${r1.releaseId}\`): delete failed after retries`);
    expect(await held(r1)).toEqual({ amis: [], deprecated: [], snapshots: [], volumes: [], glance: [r1.glanceId] });
    const shown = await cli(rig, taskQueue, ['channel', 'show', 'staging', '--definition', name]);
    expect(shown.stdout).toContain(`Retention: retention after #${stagingSeq}: 2 of 3 done, 1 failed`);
    expect(shown.stdout).toMatch(new RegExp(`delete\\s+${r1.releaseId}\\s+osuosl\\s+x86_64\\s+-\\s+${r1.glanceId}\\s+failed\\s+delete failed after retries`));

    // Production may not roll back to release 1 any more: retention deleted its AMI and volume. Refused, naming them,
    // before any activation target is touched.
    const commitsBefore = inventory.commits('production.yaml').length;
    await expect(channels.rollback(name, 'production', { to: r1.releaseId, by: 'release-manager' })).rejects.toThrow(
      new RegExp(`cannot roll back to release ${r1.releaseId}: .*${r1.ami}.* no longer exist`),
    );
    expect((await state('production')).current!.releaseId).toBe(r3.releaseId);
    expect(inventory.commits('production.yaml')).toHaveLength(commitsBefore);
  });

  it('keeps an AMI an instance runs from; a promotion arriving while the run deletes waits only for the deletion in flight', async () => {
    // An instance runs from release 3's AMI; production takes release 4 and release 3 leaves both channels. While
    // the run waits for Glance's answer to its first deletion, another promotion arrives.
    const launched = await ec2.send(new RunInstancesCommand({ ImageId: r3.ami, MinCount: 1, MaxCount: 1 }));
    const instance = launched.Instances![0]!.InstanceId!;
    instances.push(instance);
    await channels.markTested(name, 'staging', { by: 'copr-admin' });
    gate.hold();
    const deletesBefore = gate.deletes.length;
    const promoted = await channels.promote(name, 'staging', 'production', { by: 'release-manager' });
    await waitUntil('the first Glance deletion', () => gate.deletes.length > deletesBefore, 180_000);
    const handle = conn.client.workflow.getHandle(channelWorkflowId(name, 'production'));
    const again = await handle.startUpdate(promoteUpdate, { args: [{ from: 'staging', by: 'release-manager' }], waitForStage: 'ACCEPTED' });
    gate.release();
    await expect(again.result()).rejects.toThrow();
    const production = await retentionAfter('production', promoted.seq);

    // Two runs after this assignment: the first stopped after its first deletion for the waiting promotion (refused:
    // production already has release 4), the second made a new plan and deleted the rest, with release 1's Glance
    // image that staging's run could not delete.
    const records = recordsOf(production, promoted.seq);
    const why = `in use: instance ${instance} (running) in ${region}`;
    expect(records.map((r) => `${r.action} ${r.outcome}`)).toEqual(['keep kept', 'delete ok', 'keep kept', 'delete ok', 'delete ok']);
    for (const kept of [records[0]!, records[2]!]) expect(kept).toMatchObject({ imageId: r3.ami, detail: why });
    expect(`/v2/images/${records[1]!.imageId}`).toBe(gate.deletes[deletesBefore]);
    expect([records[1]!, records[3]!, records[4]!].map((r) => r.imageId).sort()).toEqual([r1.glanceId, r3.glanceId, `${host.address}:${pool.name}/${r3.volume}`].sort());

    // The run that took the promotion (the workflow may have continued as new since).
    let events: NonNullable<Awaited<ReturnType<typeof handle.fetchHistory>>['events']> = [];
    for await (const wf of conn.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) {
      const history = (await conn.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory()).events ?? [];
      if (history.some((e) => e.workflowExecutionUpdateCompletedEventAttributes?.meta?.updateId === again.updateId)) events = history;
    }
    const refusal = events.find((e) => e.workflowExecutionUpdateCompletedEventAttributes?.meta?.updateId === again.updateId)!;
    expect(refusal.workflowExecutionUpdateCompletedEventAttributes!.outcome!.failure!.message).toBe(
      `production already has release ${r4.releaseId}, the one staging has`,
    );
    // After the promotion was accepted: its own steps, then the second run's plan and its deletions.
    const acceptedAt = events.findIndex((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.meta?.updateId === again.updateId);
    const after = events.slice(acceptedAt).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(after).toEqual(['channelDefinition', 'channelStateOf', 'planRetention', 'applyRetention', 'applyRetention']);

    // Nothing of release 3 was deprecated on the way: deleted in the run that first found it unused.
    expect(records.some((r) => r.action === 'deprecate')).toBe(false);
    expect(await held(r3)).toEqual({ ...everything(r3), volumes: [], glance: [] });
    expect(await held(r1)).toEqual({ amis: [], deprecated: [], snapshots: [], volumes: [], glance: [] });
    expect(await held(r4)).toEqual(everything(r4));
  });

  it("keeps the records across continue-as-new, shows them in channel show, and the channels' histories replay", async () => {
    const runs: string[] = [];
    for await (const wf of conn.client.workflow.list({ query: `WorkflowId = '${channelWorkflowId(name, 'production')}'` })) runs.push(wf.status.name);
    expect(runs).toContain('CONTINUED_AS_NEW');
    // The run of the workflow now started from a state carrying every record made before, release 1's deprecation
    // after #2 the first of them.
    const history = await conn.client.workflow.getHandle(channelWorkflowId(name, 'production')).fetchHistory();
    const started = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    const carried = (defaultPayloadConverter.fromPayload(started) as ChannelInput).state!;
    expect(carried.retention.map(brief)[0]).toBe(`deprecate ok aws ${r1.ami}`);
    const production = await state('production');
    expect(production.retention.slice(0, carried.retention.length)).toEqual(carried.retention);
    expect(production.retention.filter((r) => r.outcome === 'failed')).toEqual([]);

    const text = await cli(rig, taskQueue, ['channel', 'show', 'production', '--definition', name, '--records', '3']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`Retention: retention after #${production.current!.seq}: 2 of 2 done, 1 kept`);
    expect(text.stdout).toContain(`Retention records (3 of ${production.retention.length}):`);
    expect(text.stdout).toMatch(new RegExp(`keep\\s+${r3.releaseId}\\s+aws\\s+x86_64\\s+${region}\\s+${r3.ami}\\s+kept\\s+in use: instance`));
    const json = await cli(rig, taskQueue, ['channel', 'show', 'production', '--definition', name, '--json', '--records', '3']);
    const shown = JSON.parse(json.stdout) as ChannelState;
    expect(shown.retention).toEqual(production.retention.slice(-3));
    expect(shown.retentionRun).toEqual(production.retentionRun);
    const described = await conn.client.workflow.getHandle(channelWorkflowId(name, 'production')).describe();
    expect(described.memo).toMatchObject({ retention: { kind: 'apply', seq: production.current!.seq, running: false, done: 2, kept: 1, failed: 0 } });

    // The replaying worker logs at INFO by default; this file runs no other worker in its process.
    Runtime.install({ logger: new DefaultLogger('WARN') });
    for (const channel of ['staging', 'production']) {
      const workflowId = channelWorkflowId(name, channel);
      const history = await conn.client.workflow.getHandle(workflowId).fetchHistory();
      await expect(Worker.runReplayHistory({ workflowBundle: { codePath: rig.workflowBundlePath } }, history, workflowId)).resolves.toBeUndefined();
    }
  });
});
