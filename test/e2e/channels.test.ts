// Channels on the real Temporal server, with workers as their own processes: two releases of one definition, signed
// approvals into staging, promotions to production (refused until its requires holds, and from people it does not
// trust), a rollback, and every activation target of production checked after each step: an image map in a bare git
// repository, an SSM parameter on moto (the AMIs are real moto AMIs the releases published), and a hook's input.
// Both channel workflows continue as new early (a small history bound), so every later step runs on carried state; a
// worker SIGKILLed during a promotion is followed by one that finishes it without running the hook again.
import { type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { channelWorkflowId, type ChannelState } from '../../activities/channels';
import { ChannelClient } from '../../client/channel-client';
import { channelStateQuery } from '../../workflows/channel-messages';
import { WORKFLOW_TYPES } from '../../workflows/messages';
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
import { cli as runCli, hook, hookInputs as inputsIn, inventoryRepo, sshKey } from './channel-harness';

const rig = inject('rig') as RigInfo;
const run = randomUUID().slice(0, 8);
const base = path.join(rig.dir, `e2e-channels-${run}`);
const taskQueue = `e2e-channels-${run}`;
const dirs = workerDirs(path.join(base, 'worker'));
const name = `chan-${run}`;
const region = 'us-west-1';
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const parameter = `/${name}/builder-image/x86_64`;
let conn: Awaited<ReturnType<typeof connectRig>>;
let channels: ChannelClient;
const workers: ChildProcess[] = [];

const admin = sshKey(base, 'copr-admin');
const manager = sshKey(base, 'release-manager');

const hookDir = (channel: string) => path.join(base, 'hooks', channel);
const hookInputs = (channel: string) => inputsIn(hookDir(channel));
let bare: string;
let inventory: (file: string) => any;

const ssm = new SSMClient({ region, endpoint: rig.motoEndpoint, credentials });
const ssmValue = async () => (await ssm.send(new GetParameterCommand({ Name: parameter }))).Parameter?.Value;

function definition() {
  const def = standinDefinition(rig, path.join(base, 'release'), {
    name,
    arches: [{ arch: 'x86_64', host: rig.sshHosts[1]!, types: ['ami'] }],
    allowUnsigned: false,
    approvalKeys: { 'copr-admin': [admin.publicKey], 'release-manager': [manager.publicKey] },
    heartbeat: '5s',
  });
  def.architectures!.x86_64!.targets = ['aws'];
  def.targets = { aws: { kind: 'aws', region, method: 'ebs-direct', credentials: { endpoint: rig.motoEndpoint } } } as never;
  delete (def.approval as { channel?: string }).channel;
  const map = (file: string) => ({ kind: 'image-map-git', repository: bare, file });
  def.channels = {
    staging: { activation: [map('staging.yaml'), hook(hookDir('staging'))] },
    production: {
      requires: { channel: 'staging', tested: true },
      approvers: ['release-manager'],
      activation: [
        map('production.yaml'),
        { kind: 'ssm-parameter', region, name: `/${name}/builder-image/{arch}`, credentials: { endpoint: rig.motoEndpoint } },
        hook(hookDir('production')),
      ],
    },
  } as never;
  return def;
}

function startWorker(): ChildProcess {
  const child = spawnWorkerProcess(rig, { taskQueue, workerId: 'w1', dirs, overrides: { aws: {} }, logFile: path.join(base, `worker-${workers.length + 1}.log`) });
  workers.push(child);
  return child;
}

/** A release of the definition, started by name, published and approved (signed) into staging. */
async function approvedRelease(): Promise<{ releaseId: string; ami: string }> {
  const releaseId = await conn.releases.startByName(name, { reason: 'channels test' });
  const ready = await waitForStage(conn.releases, releaseId, ['awaiting-approval', 'failed'], 180_000);
  expect(ready.stage).toBe('awaiting-approval');
  // production takes promotions only: an approval naming it is refused, naming why.
  await expect(conn.releases.approve(releaseId, { by: 'copr-admin', channel: 'production' }, { key: admin.privateKey })).rejects.toThrow(
    /"production" takes images by promotion from staging only/,
  );
  const done = await conn.releases.approve(releaseId, { by: 'copr-admin' }, { key: admin.privateKey });
  expect(done.stage).toBe('activated');
  expect(done.activation?.channel).toBe('staging');
  return { releaseId, ami: ready.candidates[0]!.imageId };
}

const state = (channel: string): Promise<ChannelState> => channels.show(name, channel);
const signed = (who: typeof admin, by: string) => ({ by, key: who.privateKey });

const cli = (args: string[]) => runCli(rig, taskQueue, args);

beforeAll(async () => {
  for (const c of ['staging', 'production']) mkdirSync(hookDir(c), { recursive: true });
  ({ bare, read: inventory } = inventoryRepo(base, ['staging.yaml', 'production.yaml']));
  writeFileSync(path.join(dirs.definitionsDir, `${name}.yaml`), stringify(definition()));
  conn = await connectRig(rig, taskQueue);
  channels = new ChannelClient(conn.client, taskQueue);
  // Both channels continue as new after a few dozen events: every later step runs on the state they carried over.
  for (const channel of ['staging', 'production'])
    await conn.client.workflow.start(WORKFLOW_TYPES.channel, {
      workflowId: channelWorkflowId(name, channel),
      taskQueue,
      args: [{ definition: name, channel, maxHistoryEvents: 20 }],
    });
  startWorker();
});

afterAll(async () => {
  for (const w of workers) await killWorker(w);
  await conn?.close();
});

describe('channels of a definition', () => {
  let r1: { releaseId: string; ami: string };
  let r2: { releaseId: string; ami: string };

  it('assigns an approved release to staging, and promotes it to production only once its requires holds, from whom production trusts', async () => {
    r1 = await approvedRelease();
    expect((await state('staging')).current).toMatchObject({ seq: 1, kind: 'approve', releaseId: r1.releaseId, by: 'copr-admin' });
    expect(inventory('staging.yaml').copr_builder_images).toEqual({ ibm_cloud: { s390x: { us_east: 'r014-kept' } }, aws: { x86_64: r1.ami } });
    expect(hookInputs('staging').map((i) => [i.releaseId, i.assignment])).toEqual([[r1.releaseId, { seq: 1, kind: 'approve' }]]);

    // Not tested yet: refused by the CLI with the reason, exit 2, nothing activated.
    const refused = await cli(['channel', 'promote', 'staging', 'production', '--by', 'release-manager', '--key', manager.privateKey, '--definition', name]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`release ${r1.releaseId} on staging is not marked tested (channels.production.requires.tested)`);
    // copr-admin approves releases but is not one of production's approvers; a signature by another key is refused.
    await expect(channels.promote(name, 'staging', 'production', signed(admin, 'copr-admin'))).rejects.toThrow('copr-admin may not promote on channel production');
    await expect(channels.promote(name, 'staging', 'production', signed(admin, 'release-manager'))).rejects.toThrow(
      'signature: made with a key that is not listed for this approver',
    );
    await expect(channels.markTested(name, 'staging', { by: 'copr-admin' })).rejects.toThrow(/unsigned requests are not accepted/);
    expect((await state('production')).history).toEqual([]);
    expect(hookInputs('production')).toEqual([]);

    const tested = await channels.markTested(name, 'staging', { ...signed(admin, 'copr-admin'), reason: 'smoke tests passed' });
    expect(tested).toMatchObject({ releaseId: r1.releaseId, tested: true, testedBy: 'copr-admin' });
    const promoted = await channels.promote(name, 'staging', 'production', { ...signed(manager, 'release-manager'), reason: 'weekly' });
    expect(promoted).toMatchObject({ kind: 'promote', from: 'staging', releaseId: r1.releaseId, by: 'release-manager', reason: 'weekly' });
    expect(inventory('production.yaml').copr_builder_images.aws).toEqual({ x86_64: r1.ami });
    expect(await ssmValue()).toBe(r1.ami);
    expect(hookInputs('production').map((i) => [i.releaseId, i.approvedBy, i.imageMap])).toEqual([[r1.releaseId, 'release-manager', { aws: { x86_64: r1.ami } }]]);
  });

  it('keeps production on release 1 while release 2 goes to staging, and promotes it after a worker is SIGKILLed mid-promotion without a second hook run', async () => {
    r2 = await approvedRelease();
    expect((await state('staging')).current?.releaseId).toBe(r2.releaseId);
    expect(inventory('staging.yaml').copr_builder_images.aws).toEqual({ x86_64: r2.ami });
    expect((await state('production')).current?.releaseId).toBe(r1.releaseId);
    expect(inventory('production.yaml').copr_builder_images.aws).toEqual({ x86_64: r1.ami });
    expect(await ssmValue()).toBe(r1.ami);

    await channels.markTested(name, 'staging', signed(admin, 'copr-admin'));
    writeFileSync(path.join(hookDir('production'), 'hold'), '');
    const promotion = channels.promote(name, 'staging', 'production', signed(manager, 'release-manager'));
    promotion.catch(() => undefined);
    await waitUntil('the production hook of the promotion to start', () => hookInputs('production').length === 2, 120_000);
    for (const w of workers.filter(alive)) await killWorker(w);
    startWorker();
    const activation = async () =>
      (await conn.client.workflow.getHandle(channelWorkflowId(name, 'production')).describe()).raw.pendingActivities?.find(
        (a) => a.activityType?.name === 'activate',
      )?.attempt ?? 0;
    await waitUntil('a second attempt of the activation on the new worker', async () => (await activation()) >= 2, 90_000);
    expect(hookInputs('production')).toHaveLength(2);
    rmSync(path.join(hookDir('production'), 'hold'));

    const promoted = await promotion;
    expect(promoted).toMatchObject({ kind: 'promote', releaseId: r2.releaseId });
    expect(hookInputs('production')).toHaveLength(2);
    const production = await state('production');
    expect(production.history.map((a) => [a.kind, a.releaseId])).toEqual([
      ['promote', r1.releaseId],
      ['promote', r2.releaseId],
    ]);
    expect(inventory('production.yaml').copr_builder_images.aws).toEqual({ x86_64: r2.ami });
    expect(await ssmValue()).toBe(r2.ami);
  });

  it('rolls production back to release 1 on every activation target, recording what it replaced', async () => {
    await expect(channels.rollback(name, 'production', { ...signed(manager, 'release-manager'), to: 'no-such-release' })).rejects.toThrow(
      'release no-such-release was never active on production',
    );
    const back = await channels.rollback(name, 'production', { ...signed(manager, 'release-manager'), reason: 'r2 breaks builds' });
    expect(back).toMatchObject({ kind: 'rollback', releaseId: r1.releaseId, restores: 1, reason: 'r2 breaks builds' });
    expect(back.activation?.replaced).toEqual(
      expect.arrayContaining([
        { target: `${bare}#main:production.yaml`, entries: [{ path: ['aws', 'x86_64'], previous: r2.ami, value: r1.ami }] },
        { target: `ssm:/${name}/builder-image/{arch} in ${region}`, entries: [{ path: [parameter, region], previous: r2.ami, value: r1.ami }] },
      ]),
    );
    expect(inventory('production.yaml')).toEqual({ copr_builder_images: { ibm_cloud: { s390x: { us_east: 'r014-kept' } }, aws: { x86_64: r1.ami } }, copr_other: 'kept' });
    expect(await ssmValue()).toBe(r1.ami);
    const last = hookInputs('production').at(-1);
    expect(last).toMatchObject({ releaseId: r1.releaseId, imageMap: { aws: { x86_64: r1.ami } }, assignment: { kind: 'rollback' } });
    // staging is untouched.
    expect(inventory('staging.yaml').copr_builder_images.aws).toEqual({ x86_64: r2.ami });
  });

  it('keeps its state across continue-as-new, and shows it in the CLI, the query and the Web UI', async () => {
    for (const [channel, kinds] of [
      ['staging', ['approve', 'approve']],
      ['production', ['promote', 'promote', 'rollback']],
    ] as const) {
      // Earlier runs ended by continuing as new; the running one carries every assignment.
      const runs: string[] = [];
      for await (const wf of conn.client.workflow.list({ query: `WorkflowId = '${channelWorkflowId(name, channel)}'` })) runs.push(wf.status.name);
      expect(runs).toContain('CONTINUED_AS_NEW');
      const s = await conn.client.workflow.getHandle(channelWorkflowId(name, channel)).query(channelStateQuery);
      expect(s.history.map((a) => a.kind)).toEqual(kinds);
      expect(s.history.map((a) => a.seq)).toEqual(kinds.map((_, i) => i + 1));
    }

    const shown = await cli(['channel', 'show', 'production', '--definition', name, '--json', '--last', '2']);
    expect(shown.code).toBe(0);
    const json = JSON.parse(shown.stdout) as ChannelState;
    expect(json.current).toMatchObject({ releaseId: r1.releaseId, kind: 'rollback', restores: 1 });
    expect(json.history.map((a) => a.kind)).toEqual(['promote', 'rollback']);
    const text = await cli(['channel', 'show', 'production', '--definition', name]);
    expect(text.stdout).toContain(`channel production of ${name}: release ${r1.releaseId} (#3, rolled back to #1 by release-manager`);
    expect(text.stdout).toMatch(new RegExp(`aws\\s+x86_64\\s+${region}\\s+ami\\s+${r1.ami}`));
    expect(text.stdout).toContain('Last assignments (3 of 3):');
    const list = await cli(['channel', 'list', '--definition', name]);
    expect(list.stdout).toMatch(new RegExp(`${name}\\s+production\\s+${r1.releaseId}\\s+rolled back to #1 by release-manager`));
    expect(list.stdout).toMatch(new RegExp(`${name}\\s+staging\\s+${r2.releaseId}\\s+approved by copr-admin`));

    const described = await conn.client.workflow.getHandle(channelWorkflowId(name, 'production')).describe();
    expect(described.memo).toMatchObject({ channel: 'production', current: { releaseId: r1.releaseId, kind: 'rollback' } });
  });
});
