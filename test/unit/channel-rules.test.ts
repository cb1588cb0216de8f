// The pure rules of channels, without a server: the schema's requires forms, where an approval goes, who may act,
// when a promotion's requirement holds, what a rollback returns to, how an assignment changes the state, and what
// the Web UI shows. Signatures are made by the real ssh-keygen.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { signChannelAction } from '../../client/approval-signing';
import { ConfigError, parseDefinition } from '../../config/load';
import type { ReleaseDefinitionInput } from '../../config/schema';
import { protectedReleases, RETENTION_RECORDS_KEPT, type ChannelAssignment, type ChannelState, type RetentionRecord } from '../../activities/channels';
import type { Candidate } from '../../activities/types';
import { channelDetails, channelMemo, describeRetentionRun } from '../../workflows/channel-details';
import { failedRecord, retentionOptions, withRetentionRecords } from '../../workflows/channel-retention';
import { retentionText } from '../../client/channel-commands';
import { outputStyle } from '../../client/output';
import {
  actorProblem,
  alreadyCurrentProblem,
  approvalChannelProblem,
  channelApprovers,
  defaultChannel,
  goneImagesProblem,
  markTestedProblem,
  nextSeq,
  promotionProblem,
  releaseProblem,
  rollbackTarget,
  withAssignment,
  withFailure,
  withTested,
} from '../../workflows/channel-rules';

const dir = mkdtempSync(path.join(os.tmpdir(), 'channel-rules-'));
function sshKey(name: string) {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return { privateKey: file, publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}

const definition = (channels: ReleaseDefinitionInput['channels'], approval: Partial<ReleaseDefinitionInput['approval']> = {}) =>
  parseDefinition({
    name: 'copr-builder',
    source: { image: 'quay.io/example/builder:latest' },
    architectures: { x86_64: { builder: { provider: 'static', hosts: [{ address: 'h1' }] }, types: ['raw'], targets: ['local'] } },
    targets: { local: { kind: 'directory', path: '/srv/images' } },
    approval: { approvers: ['alice', 'bob'], allowUnsigned: true, ...approval },
    channels,
  });

const problems = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as ConfigError).problems;
  }
  return [];
};

const image = (id: string): Candidate => ({
  arch: 'x86_64',
  target: 'local',
  kind: 'directory',
  imageId: id,
  name: id,
  type: 'raw',
  size: 1,
  sha256: 'ab'.repeat(32),
});
const assignment = (seq: number, releaseId: string, extra: Partial<ChannelAssignment> = {}): ChannelAssignment => ({
  seq,
  kind: 'approve',
  releaseId,
  images: [image(`/srv/images/${releaseId}.raw`)],
  by: 'alice',
  at: `2026-11-0${seq}T12:00:00.000Z`,
  activatedAt: `2026-11-0${seq}T12:01:00.000Z`,
  ...extra,
});
const stateOf = (...history: ChannelAssignment[]): ChannelState => ({
  definition: 'copr-builder',
  channel: 'production',
  current: history.at(-1),
  history,
  retention: [],
});

describe('channels in the definition', () => {
  it('takes requires as a channel name or as {channel, minAge, tested}', () => {
    const def = definition({ staging: {}, production: { requires: { channel: 'staging', minAge: '1d', tested: true } }, qa: { requires: 'staging' } });
    expect(def.channels.production!.requires).toEqual({ channel: 'staging', minAge: '1d', tested: true });
    expect(def.channels.qa!.requires).toBe('staging');
  });

  it('names the path of every mistake', () => {
    expect(problems(() => definition({ staging: {}, production: { requires: { channel: 'nowhere' } } }))).toEqual([
      'channels.production.requires.channel: unknown channel "nowhere"',
    ]);
    expect(problems(() => definition({ staging: {}, production: { requires: { channel: 'staging', minAge: 'soon' } } }))).toEqual([
      'channels.production.requires.minAge: must be a duration like 90s, 30m, 6h or 7d',
    ]);
    expect(problems(() => definition({ staging: {}, production: { requires: 7 as never } }))).toEqual([
      'channels.production.requires: must be a channel name, or {channel, minAge?, tested?}',
    ]);
    expect(problems(() => definition({ staging: { approvers: ['mallory'] } }))).toEqual([
      'channels.staging.approvers.0: "mallory" is not in approval.approvers',
    ]);
    expect(problems(() => definition({ staging: {}, production: { requires: 'staging' } }, { channel: 'production' }))).toEqual([
      'approval.channel: channel "production" has requires: images reach it by promotion only; name a channel without requires',
    ]);
  });
});

describe('where an approval goes', () => {
  it('to approval.channel, else the first channel without requires, else "default"', () => {
    expect(defaultChannel(definition({ production: { requires: 'staging' }, staging: {} }))).toBe('staging');
    expect(defaultChannel(definition({ staging: {}, canary: {} }, { channel: 'canary' }))).toBe('canary');
    expect(defaultChannel(definition({}))).toBe('default');
  });

  it('lets the approver name another channel without requires, never one that takes promotions only', () => {
    const def = definition({ staging: {}, canary: {}, production: { requires: 'staging' } });
    expect(approvalChannelProblem(def, 'canary')).toBeUndefined();
    expect(approvalChannelProblem(def, 'production')).toBe('channel: "production" takes images by promotion from staging only (channels.production.requires)');
    expect(approvalChannelProblem(def, 'nope')).toBe('channel: "nope" is not a channel of this definition');
  });

  it('assigns only what the release workflow itself says was approved for this channel', () => {
    const def = definition({ staging: {}, production: { requires: 'staging', approvers: ['bob'] } });
    const release = { workflowType: 'imageRelease', definition: 'copr-builder', stage: 'activating', decision: 'approved' as const, by: 'alice', chosen: [image('a')] };
    expect(releaseProblem(def, 'staging', 'r1', release)).toBeUndefined();
    expect(releaseProblem(def, 'staging', 'r1', undefined)).toBe('release r1 is not known to Temporal');
    expect(releaseProblem(def, 'staging', 'r1', { ...release, workflowType: 'releaseTrigger' })).toBe('r1 is a releaseTrigger workflow, not a release');
    expect(releaseProblem(def, 'staging', 'r1', { ...release, definition: 'other' })).toBe('release r1 is of definition other, not copr-builder');
    expect(releaseProblem(def, 'staging', 'r1', { ...release, stage: 'awaiting-approval', decision: undefined })).toBe(
      'release r1 is awaiting-approval, not approved and activating',
    );
    expect(releaseProblem(def, 'production', 'r1', release)).toBe('release r1 was approved for channel staging, not production');
  });
});

describe('who may act on a channel', () => {
  const alice = sshKey('alice');
  const signedAt = new Date().toISOString();
  const now = Date.parse(signedAt);

  it('is an approver of that channel: its own list, else the definition’s', () => {
    const def = definition({ staging: {}, production: { requires: 'staging', approvers: ['bob'] } });
    expect(channelApprovers(def, 'staging')).toEqual(['alice', 'bob']);
    expect(actorProblem(def, 'promote', 'production', { by: 'alice' }, { from: 'staging' }, now)).toBe('alice may not promote on channel production');
    expect(actorProblem(def, 'promote', 'production', { by: 'bob' }, { from: 'staging' }, now)).toBeUndefined();
    expect(actorProblem(def, 'rollback', 'production', { by: '' }, {}, now)).toBe('by: required (who asks to rollback)');
  });

  it('signs exactly this action: unsigned refused without allowUnsigned, a signature for another action or channel refused', async () => {
    const def = definition({ staging: {}, production: { requires: 'staging' } }, { allowUnsigned: false, keys: { alice: [alice.publicKey] } });
    expect(actorProblem(def, 'promote', 'production', { by: 'alice' }, { from: 'staging' }, now)).toMatch(/^unsigned requests are not accepted/);
    const fields = { action: 'promote' as const, definition: 'copr-builder', channel: 'production', from: 'staging', by: 'alice', signedAt };
    const signature = await signChannelAction(alice.privateKey, fields);
    const actor = { by: 'alice', signedAt, signature };
    expect(actorProblem(def, 'promote', 'production', actor, { from: 'staging' }, now)).toBeUndefined();
    expect(actorProblem(def, 'rollback', 'production', actor, {}, now)).toMatch(/^signature: does not match this request/);
    expect(actorProblem(def, 'promote', 'staging', actor, { from: 'production' }, now)).toMatch(/^signature: does not match/);
    expect(actorProblem(def, 'promote', 'production', { ...actor, reason: 'added later' }, { from: 'staging' }, now)).toMatch(/does not match/);
    expect(actorProblem(def, 'promote', 'production', actor, { from: 'staging' }, now + 16 * 60_000)).toMatch(/older than 15 minutes/);
  });
});

describe('promotion requirements', () => {
  const def = definition({
    staging: {},
    production: { requires: { channel: 'staging', minAge: '1d', tested: true } },
    canary: { requires: { channel: 'staging', minAge: '0s' } },
    anywhere: {},
  });
  const onStaging = assignment(1, 'r1');
  const dayLater = Date.parse(onStaging.activatedAt!) + 86_400_000;

  it('names the channel images must come from', () => {
    expect(promotionProblem(def, 'production', 'canary', undefined, dayLater)).toBe(
      'production takes images from staging only (channels.production.requires), not from canary',
    );
    expect(promotionProblem(def, 'production', 'production', undefined, dayLater)).toBe('from: a channel cannot be promoted to itself');
    expect(promotionProblem(def, 'anywhere', 'canary', onStaging, 0)).toBeUndefined();
  });

  it('refuses until every condition holds: tested, then old enough, saying when', () => {
    expect(promotionProblem(def, 'production', 'staging', onStaging, dayLater)).toBe(
      'release r1 on staging is not marked tested (channels.production.requires.tested); mark it with bootc-release channel mark-tested staging --by NAME',
    );
    const tested = { ...onStaging, tested: true };
    expect(promotionProblem(def, 'production', 'staging', tested, dayLater - 3_600_000)).toBe(
      'release r1 has been on staging for 23h 0m; production requires 1d (channels.production.requires.minAge): promote it after 2026-11-02T12:01:00.000Z',
    );
    expect(promotionProblem(def, 'production', 'staging', tested, dayLater)).toBeUndefined();
    expect(promotionProblem(def, 'canary', 'staging', onStaging, Date.parse(onStaging.activatedAt!))).toBeUndefined();
  });
});

describe('the state of a channel', () => {
  it('rolls back to the previous release, or to a named one, never to the current one', () => {
    const s = stateOf(assignment(1, 'r1'), assignment(2, 'r2'), assignment(3, 'r2', { kind: 'promote', from: 'staging' }));
    expect((rollbackTarget(s) as ChannelAssignment).seq).toBe(1);
    expect((rollbackTarget(s, 'r1') as ChannelAssignment).releaseId).toBe('r1');
    expect(rollbackTarget(s, 'r2')).toBe('release r2 is already current on production');
    expect(rollbackTarget(s, 'r9')).toBe('release r9 was never active on production (it had: r1, r2)');
    expect(rollbackTarget(stateOf(assignment(1, 'r1')))).toBe('nothing to roll back to: r1 is the only release production has had');
    expect(rollbackTarget(stateOf())).toBe('channel production has no assignment to roll back');
  });

  it('makes an activated assignment current, marks the current one tested, and numbers on past failures', () => {
    let s = stateOf(assignment(1, 'r1'));
    s = withAssignment({ ...s, activating: assignment(2, 'r2') }, assignment(2, 'r2'));
    expect(s.current?.releaseId).toBe('r2');
    expect(s.history.map((a) => a.seq)).toEqual([1, 2]);
    expect(s.activating).toBeUndefined();
    s = withTested(s, 'bob', '2026-11-03T00:00:00.000Z');
    expect(s.current).toMatchObject({ tested: true, testedBy: 'bob' });
    expect(s.history[1]).toMatchObject({ tested: true });
    expect(s.history[0]!.tested).toBeUndefined();
    expect(nextSeq({ ...s, lastFailure: { seq: 5, kind: 'promote', releaseId: 'r3', by: 'a', at: '', error: 'x' } })).toBe(6);
    expect(protectedReleases(s, 2)).toEqual(['r2', 'r1']);
  });

  it('records a failed activation as the last failure: nothing activating, current and history unchanged', () => {
    const before = stateOf(assignment(1, 'r1'));
    const promotion = assignment(2, 'r2', { kind: 'promote', from: 'staging', by: 'bob', reason: 'ready' });
    const s = withFailure({ ...before, activating: promotion }, promotion, 'hook exited 1');
    expect(s.activating).toBeUndefined();
    expect(s.lastFailure).toEqual({ seq: 2, kind: 'promote', releaseId: 'r2', by: 'bob', at: promotion.at, from: 'staging', error: 'hook exited 1' });
    expect(s.current).toBe(before.current);
    expect(s.history).toBe(before.history);
    expect(nextSeq(s)).toBe(3);
  });

  it('refuses to promote what the channel has already, but not the same release with other images', () => {
    const s = stateOf(assignment(1, 'r1'));
    expect(alreadyCurrentProblem(s, 'production', 'staging', assignment(4, 'r1'))).toBe('production already has release r1, the one staging has');
    expect(alreadyCurrentProblem(s, 'production', 'staging', assignment(4, 'r1', { images: [image('/srv/images/r1-rebuilt.raw')] }))).toBeUndefined();
    expect(alreadyCurrentProblem(s, 'production', 'staging', assignment(4, 'r2'))).toBeUndefined();
    expect(alreadyCurrentProblem(stateOf(), 'production', 'staging', assignment(4, 'r1'))).toBeUndefined();
  });

  it('marks tested only the images the channel has, and only the release named', () => {
    const s = stateOf(assignment(1, 'r1'));
    expect(markTestedProblem(s, 'production')).toBeUndefined();
    expect(markTestedProblem(s, 'production', 'r1')).toBeUndefined();
    expect(markTestedProblem(s, 'production', 'r0')).toBe('production has release r1, not r0');
    expect(markTestedProblem(stateOf(), 'production')).toBe('production has no images to mark tested');
  });

  it('refuses a rollback to images that no longer exist, naming each', () => {
    expect(goneImagesProblem('r1', [])).toBeUndefined();
    const gone = [
      { target: 'aws', arch: 'x86_64' as const, region: 'us-east-1', imageId: 'ami-1' },
      { target: 'local', arch: 'aarch64' as const, imageId: '/srv/images/r1.raw' },
    ];
    expect(goneImagesProblem('r1', gone)).toBe(
      'cannot roll back to release r1: aws x86_64 us-east-1 ami-1, local aarch64 /srv/images/r1.raw no longer exist; roll back to a release within retention.keep',
    );
  });

  it('shows the current images and the last assignments in the Web UI, and a small memo', () => {
    const s = withTested(stateOf(assignment(1, 'r1'), assignment(2, 'r2', { kind: 'rollback', restores: 1, reason: 'broken | kernel' })), 'bob', 'now');
    const md = channelDetails(s, definition({ staging: {}, production: { requires: { channel: 'staging', tested: true } } }));
    expect(md).toContain('Takes images by promotion from `staging`, once marked tested there.');
    expect(md).toContain('Current: release `r2` (#2, rolled back to #1 by alice');
    expect(md).toContain('| local | x86_64 | — | raw | `/srv/images/r2.raw` |');
    expect(md).toContain('| 2 | rolled back to #1 by alice | `r2` | 2026-11-02T12:00:00.000Z | 0 | broken \\| kernel |');
    expect(channelMemo(s)).toMatchObject({ channel: 'production', assignments: 2, current: { releaseId: 'r2', tested: true, images: [{ imageId: '/srv/images/r2.raw' }] } });
  });
});

describe('retention in the channel', () => {
  const record = (n: number, extra: Partial<RetentionRecord> = {}): RetentionRecord => ({
    at: `2026-11-05T00:00:${String(n % 60).padStart(2, '0')}.000Z`,
    releaseId: 'r1',
    target: 'local',
    arch: 'x86_64',
    imageId: `/srv/images/r1-${n}.raw`,
    action: 'delete',
    outcome: 'ok',
    seq: 3,
    ...extra,
  });

  it(`keeps the last ${RETENTION_RECORDS_KEPT} records, oldest dropped first`, () => {
    let s = stateOf(assignment(1, 'r1'));
    for (let i = 0; i < RETENTION_RECORDS_KEPT + 5; i += 5) s = withRetentionRecords(s, [1, 2, 3, 4, 5].map((k) => record(i + k)));
    expect(s.retention).toHaveLength(RETENTION_RECORDS_KEPT);
    expect(s.retention[0]!.imageId).toBe('/srv/images/r1-6.raw');
    expect(s.retention.at(-1)!.imageId).toBe(`/srv/images/r1-${RETENTION_RECORDS_KEPT + 5}.raw`);
  });

  it('records an item that failed for good, with the reason, as failed', () => {
    const item = { action: 'delete' as const, target: 'hypervisors', releaseId: 'r1', image: { ...image('h1:images/r1'), region: 'h1', imageName: 'copr-builder-x86_64-20261101_120000' } };
    expect(failedRecord(item, 'delete failed after retries: ssh: connection refused', 'now', 4)).toEqual({
      at: 'now',
      releaseId: 'r1',
      target: 'hypervisors',
      arch: 'x86_64',
      region: 'h1',
      imageId: 'h1:images/r1',
      action: 'delete',
      outcome: 'failed',
      detail: 'delete failed after retries: ssh: connection refused',
      seq: 4,
    });
  });

  it('retries each item a bounded number of times with backoff, and survives a killed worker by its heartbeat timeout', () => {
    const def = definition({ staging: {} });
    const o = retentionOptions(def, { attempt: '5m', total: '15m', taskQueue: 'q@w1' });
    expect(o.retry).toMatchObject({ maximumAttempts: 5, backoffCoefficient: 2, initialInterval: def.timeouts.retryInitial, maximumInterval: def.timeouts.retryMax });
    expect(o).toMatchObject({ startToCloseTimeout: '5m', scheduleToCloseTimeout: '15m', taskQueue: 'q@w1' });
    expect(o.retry?.nonRetryableErrorTypes).toContain('ConfigError');
    // The activities heartbeat every 10 s: a shorter heartbeat timeout in the definition is raised to 30 s.
    expect(retentionOptions({ timeouts: { ...def.timeouts, heartbeat: '5s' } }, { attempt: '5m', total: '15m' }).heartbeatTimeout).toBe('30000ms');
  });

  it('reports the last run, each failure and the last records in the Web UI, the memo and the CLI', () => {
    const run = { kind: 'apply' as const, seq: 3, startedAt: 'a', finishedAt: 'b', planned: 3, done: 1, kept: 1, failed: 1 };
    const s = withRetentionRecords(
      stateOf(assignment(1, 'r1'), assignment(2, 'r2'), assignment(3, 'r3')),
      [record(1), record(2, { outcome: 'kept', detail: 'in use: domain vm1 (running) on h1' }), record(3, { outcome: 'failed', detail: 'delete failed after retries: 503' })],
      run,
    );
    expect(describeRetentionRun(run)).toBe('retention after #3: 1 of 3 done, 1 kept, 1 failed');
    expect(describeRetentionRun({ ...run, finishedAt: undefined, deferred: 2 })).toBe('retention after #3: 1 of 3 done, 1 kept, 1 failed, 2 left for the run after the next assignment (running)');
    expect(describeRetentionRun({ kind: 'restore', seq: 4, startedAt: 'a', finishedAt: 'b', planned: 2, done: 2, kept: 0, failed: 0 })).toBe('restore before rollback #4: 2 image(s) re-enabled');
    expect(describeRetentionRun({ ...run, error: 'no retention plan could be made: definition x not found' })).toBe('retention after #3: no retention plan could be made: definition x not found');

    const md = channelDetails(s, definition({ staging: {} }));
    expect(md).toContain('**Retention**');
    expect(md).toContain('retention after #3: 1 of 3 done, 1 kept, 1 failed.');
    expect(md).toContain('- **failed**: delete of `/srv/images/r1-3.raw` (local, release `r1`): delete failed after retries: 503');
    expect(md).toContain('| 3 | 2026-11-05T00:00:02.000Z | delete | `r1` | local | — | `/srv/images/r1-2.raw` | kept | in use: domain vm1 (running) on h1 |');
    expect(channelMemo(s)).toMatchObject({ retention: { kind: 'apply', seq: 3, running: false, planned: 3, done: 1, failed: 1 } });
    // A channel retention never ran for shows nothing of it, and its memo is as before.
    expect(channelDetails(stateOf(assignment(1, 'r1')), undefined)).not.toContain('Retention');
    expect(channelMemo(stateOf(assignment(1, 'r1')))).not.toHaveProperty('retention');

    const text = retentionText(s, outputStyle({ json: false, isTTY: false, env: {} }), 2).join('\n');
    expect(text).toContain('Retention: retention after #3: 1 of 3 done, 1 kept, 1 failed');
    expect(text).toContain('Retention records (2 of 3):');
    expect(text).toMatch(/3\s+2026-11-05T00:00:03.000Z\s+delete\s+r1\s+local\s+x86_64\s+-\s+\/srv\/images\/r1-3.raw\s+failed\s+delete failed after retries: 503/);
    expect(text).not.toContain('r1-1.raw');
  });
});
