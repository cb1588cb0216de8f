// The approval gate without a Temporal server: driven through its signal and update paths with a fake clock, a fake
// `condition` and a log that records, it must refuse what its one validator refuses, in the words each path shows,
// and take the first accepted decision only.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { signDecision } from '../../client/approval-signing';
import { planFromDefinition } from '../../activities/plan/resolve-plan';
import type { Candidate } from '../../activities/types';
import { ApprovalGate } from '../../workflows/approval';
import type { ReleaseStage, ReleaseStatus } from '../../workflows/messages';

const NOW = Date.parse('2026-11-29T12:00:00.000Z');
const releaseId = 'copr-builder-20261129-120000';

function plan(approval: object, channels: object = {}) {
  return planFromDefinition(
    {
      name: 'copr-builder',
      source: { image: 'quay.io/x/y:1' },
      architectures: { x86_64: { builder: { provider: 'static', hosts: [{ address: '192.0.2.1' }] }, types: ['qcow2'], targets: ['local'] } },
      targets: { local: { kind: 'directory', path: '/srv/images' } },
      approval: { approvers: ['copr-admin', 'release-manager'], ...approval },
      channels,
    },
    { releaseId, startedAt: new Date(NOW) },
  );
}

const candidate = (imageId: string): Candidate => ({
  arch: 'x86_64', target: 'local', kind: 'directory', imageId, name: imageId, type: 'qcow2', size: 1, sha256: 'ab',
});

/** `condition` as the workflow has it: resolves once its predicate holds (checked on settle()); a timeout on expire(). */
function fakeConditions() {
  const waits = new Set<{ done: () => boolean; resolve: (v: boolean) => void; timeout?: string }>();
  const settle = () => {
    for (const w of waits) {
      if (!w.done()) continue;
      waits.delete(w);
      w.resolve(true);
    }
  };
  return {
    condition: (done: () => boolean, timeout?: string) =>
      new Promise<boolean>((resolve) => {
        waits.add({ done, resolve, timeout });
        settle();
      }),
    settle,
    expire: () => {
      for (const w of waits) {
        if (!w.timeout) continue;
        waits.delete(w);
        w.resolve(false);
      }
    },
    timeouts: () => [...waits].map((w) => w.timeout).filter(Boolean),
  };
}

function gateOf(o: { stage?: ReleaseStage; approval?: object; channels?: object; resolved?: boolean } = {}) {
  const status: ReleaseStatus = {
    releaseId,
    stage: o.stage ?? 'awaiting-approval',
    startedAt: new Date(NOW).toISOString(),
    arches: {},
    candidates: [candidate('img-1'), candidate('img-2')],
    publishFailures: [],
  };
  const p = plan(o.approval ?? { allowUnsigned: true }, o.channels);
  const stages: ReleaseStage[] = [];
  const warnings: { message: string; attributes: Record<string, unknown> }[] = [];
  const conditions = fakeConditions();
  const gate = new ApprovalGate({
    status,
    plan: () => (o.resolved === false ? undefined : p),
    setStage: (stage) => {
      stages.push(stage);
      status.stage = stage;
    },
    now: () => NOW,
    condition: conditions.condition,
    warn: (message, attributes) => warnings.push({ message, attributes }),
  });
  return { gate, status, stages, warnings, conditions };
}

describe('the one validator of both paths', () => {
  it('refuses a decision while the release is building: the signal shows why in the status, the update throws it', async () => {
    const { gate, status, stages, warnings } = gateOf({ stage: 'building' });
    expect(gate.validate('reject', { by: 'copr-admin' })).toBe('release is building, not awaiting approval');

    gate.signal('reject', { by: 'copr-admin', reason: 'too early' });
    expect(status.error).toBe('rejection from copr-admin ignored: release is building, not awaiting approval');
    expect(warnings).toEqual([{ message: 'reject signal ignored', attributes: { problem: 'release is building, not awaiting approval', by: 'copr-admin' } }]);

    await expect(gate.update('approve', { by: 'copr-admin' })).rejects.toMatchObject({
      message: 'release is building, not awaiting approval',
      type: 'DecisionRefused',
      nonRetryable: true,
    });
    expect(gate.decision).toBeUndefined();
    expect(stages).toEqual([]);
  });

  it('names what is wrong with a decision, the same for approval and rejection where it applies', () => {
    const { gate } = gateOf({ approval: { allowUnsigned: false } });
    for (const kind of ['approve', 'reject'] as const) {
      expect(gate.validate(kind, undefined)).toBe(`the ${kind === 'approve' ? 'approval' : 'rejection'} must be a JSON object like {"by": "name"}`);
      expect(gate.validate(kind, { by: '' })).toBe(`by: required (who ${kind}s)`);
      // The refusal does not tell who may decide.
      expect(gate.validate(kind, { by: 'mallory' })).toBe('mallory is not an approver of this release');
      expect(gate.validate(kind, { by: 'copr-admin' })).toMatch(
        new RegExp(`^unsigned ${kind === 'approve' ? 'approval' : 'rejection'}s are not accepted .* bootc-release release ${kind} --key`),
      );
      expect(gate.validate(kind, { by: 'copr-admin', signature: 'x' })).toBe('signedAt: required with a signature (the ISO time it was signed)');
      expect(gate.validate(kind, { by: 'copr-admin', signature: 'x', signedAt: new Date(NOW - 16 * 60_000).toISOString() })).toBe(
        'signedAt: the signature is older than 15 minutes; sign again',
      );
    }
    expect(gate.validate('approve', { by: 'copr-admin', images: ['img-1', 'ami-9', 'ami-8'] })).toBe('unknown image ids: ami-9, ami-8');
    expect(gate.validate('approve', { by: 'copr-admin', images: 'img-1' as never })).toBe('images: must be a list of image ids');
    expect(gateOf({ resolved: false }).gate.validate('approve', { by: 'copr-admin' })).toBe('the release has not resolved its plan yet');
  });

  it('takes another channel the definition allows for approvals, by an approver of that channel, never one that takes promotions only', () => {
    const channels = { staging: {}, canary: { approvers: ['release-manager'] }, production: { requires: 'staging' } };
    const { gate } = gateOf({ channels });
    expect(gate.validate('approve', { by: 'copr-admin', channel: 'production' })).toBe(
      'channel: "production" takes images by promotion from staging only (channels.production.requires)',
    );
    expect(gate.validate('approve', { by: 'copr-admin', channel: 'qa' })).toBe('channel: "qa" is not a channel of this definition');
    expect(gate.validate('approve', { by: 'copr-admin', channel: 'canary' })).toBe('copr-admin may not assign images to channel canary');
    gate.signal('approve', { by: 'release-manager', channel: 'canary' });
    expect(gate.decision).toMatchObject({ approved: true, channel: 'canary' });
    expect(gateOf({ channels }).gate.validate('approve', { by: 'copr-admin' })).toBeUndefined();
  });

  it('checks the signature against the decision it was made for: a signed approval does not count as a rejection', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'approval-gate-'));
    const key = path.join(dir, 'copr-admin');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'copr-admin', '-f', key]);
    const { gate, status } = gateOf({ approval: { allowUnsigned: false, keys: { 'copr-admin': [readFileSync(`${key}.pub`, 'utf8').trim()] } } });
    const signedAt = new Date(NOW).toISOString();
    const signature = await signDecision(key, { releaseId, decision: 'approve', by: 'copr-admin', images: ['img-1'], signedAt });

    expect(gate.validate('reject', { by: 'copr-admin', signedAt, signature })).toMatch(/signature: does not match this decision/);
    gate.signal('approve', { by: 'copr-admin', images: ['img-1', 'img-2'], signedAt, signature });
    expect(status.error).toMatch(/^approval from copr-admin ignored: signature: does not match this decision/);
    expect(gate.decision).toBeUndefined();

    gate.signal('approve', { by: 'copr-admin', images: ['img-1'], signedAt, signature });
    expect(gate.decision).toEqual({ approved: true, by: 'copr-admin', images: ['img-1'], comment: undefined, signed: true, channel: 'default' });
  });
});

describe('taking a decision', () => {
  it('takes the first one only: the stage leaves awaiting-approval, and "all" means the candidates listed then', () => {
    const { gate, status, stages } = gateOf();
    gate.signal('approve', { by: 'copr-admin' });
    expect(stages).toEqual(['approved']);
    status.candidates.push(candidate('img-3'));
    expect(gate.decision).toEqual({ approved: true, by: 'copr-admin', images: ['img-1', 'img-2'], comment: undefined, signed: false, channel: 'default' });

    gate.signal('reject', { by: 'release-manager', reason: 'changed my mind' });
    expect(status.error).toBe('rejection from release-manager ignored: release is approved, not awaiting approval');
    expect(gate.decision).toMatchObject({ approved: true });
  });

  it('refuses the second of two updates that both passed the validator, and answers the first once the release ended', async () => {
    const { gate, status, stages, conditions } = gateOf();
    expect(gate.validate('reject', { by: 'copr-admin' })).toBeUndefined();
    expect(gate.validate('approve', { by: 'release-manager' })).toBeUndefined();
    let answer: ReleaseStatus | undefined;
    const first = gate.update('reject', { by: 'copr-admin', reason: 'broken' }).then((s) => (answer = s));
    await expect(gate.update('approve', { by: 'release-manager' })).rejects.toMatchObject({
      message: 'release is rejecting, not awaiting approval',
      type: 'DecisionRefused',
    });
    expect(stages).toEqual(['rejecting']);

    await Promise.resolve();
    expect(answer).toBeUndefined();
    status.stage = 'rejected';
    conditions.settle();
    await first;
    expect(answer).toBe(status);
  });
});

describe('the verdict', () => {
  it('waits for the decision, then for the running publishes, and activates only the candidates chosen', async () => {
    const { gate, status, stages, conditions } = gateOf({ stage: 'building' });
    let publishing = true;
    let decided = false;
    const verdict = gate.decide('1d', () => !publishing).finally(() => (decided = true));
    expect(stages).toEqual(['awaiting-approval']);
    expect(status.approvalDeadline).toBe('2026-11-30T12:00:00.000Z');
    expect(conditions.timeouts()).toEqual(['1d']);

    gate.signal('approve', { by: 'copr-admin' });
    conditions.settle();
    await new Promise((r) => setTimeout(r, 10));
    expect(decided).toBe(false);
    // The retried publish that was running adds its candidate; "approve all" meant the two listed before.
    status.candidates.push(candidate('img-3'));
    publishing = false;
    conditions.settle();
    expect(await verdict).toEqual({ stage: 'approved', chosen: [candidate('img-1'), candidate('img-2')], by: 'copr-admin', channel: 'default' });
    expect(status.approval).toEqual({
      decision: 'approved', by: 'copr-admin', at: '2026-11-29T12:00:00.000Z', images: ['img-1', 'img-2'], signed: false, channel: 'default',
    });
  });

  it('activates the subset an approver picked', async () => {
    const { gate, conditions } = gateOf({ stage: 'building' });
    const verdict = gate.decide('1d', () => true);
    gate.signal('approve', { by: 'copr-admin', images: ['img-2'] });
    conditions.settle();
    expect(await verdict).toEqual({ stage: 'approved', chosen: [candidate('img-2')], by: 'copr-admin', channel: 'default' });
  });

  it('records a rejection with its reason', async () => {
    const { gate, status, conditions } = gateOf({ stage: 'building' });
    const verdict = gate.decide('7d', () => true);
    gate.signal('reject', { by: 'release-manager', reason: 'kernel regression' });
    conditions.settle();
    expect(await verdict).toEqual({ stage: 'rejected' });
    expect(status.approval).toEqual({ decision: 'rejected', by: 'release-manager', at: '2026-11-29T12:00:00.000Z', reason: 'kernel regression', signed: false });
  });

  it('times out when nobody decides, even while a retried publish runs', async () => {
    const { gate, status, conditions } = gateOf({ stage: 'building' });
    const verdict = gate.decide('1h', () => false);
    conditions.expire();
    expect(await verdict).toEqual({ stage: 'timed-out' });
    expect(status.approval).toEqual({ decision: 'timed-out', at: '2026-11-29T12:00:00.000Z' });
  });
});
