// Trust boundaries of a release on the real Temporal server: a worker runs only definitions it knows unless it
// allows inline ones; a decision counts only when signed by a key the definition lists for that approver (or when
// the definition allows unsigned ones); a decision is taken once, at a moment, and fixes what "all" means.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import type { WorkflowHandle } from '@temporalio/client';
import { signDecision } from '../../client/approval-signing';
import { approveSignal, approveUpdate, rejectSignal, rejectUpdate, statusQuery, type Approval, type ReleaseResult, type ReleaseStatus } from '../../workflows/messages';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { connectRig, rigDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-approval');
const run = randomUUID().slice(0, 8);
/** A worker as production runs it: inline definitions off. */
const strictQueue = `e2e-approval-strict-${run}`;
/** A worker that allows inline definitions (BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS=true). */
const inlineQueue = `e2e-approval-inline-${run}`;
const strictDirs = workerDirs(path.join(base, 'strict'));
const inlineDirs = workerDirs(path.join(base, 'inline'));
let workers: Awaited<ReturnType<typeof startInProcessWorker>>[] = [];
let strict: Awaited<ReturnType<typeof connectRig>>;
let inline: Awaited<ReturnType<typeof connectRig>>;

/** An approver's SSH key pair, made by OpenSSH's ssh-keygen as a person would. */
function sshKey(name: string): { privateKey: string; publicKey: string } {
  const file = path.join(base, 'keys', name);
  mkdirSync(path.dirname(file), { recursive: true });
  rmSync(file, { force: true });
  rmSync(`${file}.pub`, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return { privateKey: file, publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** The release's status once `ready` holds, or after 3 s whatever it is then (the test asserts on it). */
async function statusWhen(handle: WorkflowHandle, ready: (s: ReleaseStatus) => boolean): Promise<ReleaseStatus> {
  let status = await handle.query(statusQuery);
  for (let i = 0; !ready(status) && i < 15; i++) {
    await new Promise((r) => setTimeout(r, 200));
    status = await handle.query(statusQuery);
  }
  return status;
}

function definition(name: string, extra: Partial<Parameters<typeof rigDefinition>[1]> = {}) {
  return rigDefinition(rig, {
    name,
    arches: [{ arch: 'x86_64', host: rig.sshHosts[0]!, types: ['qcow2'] }],
    builderDir: path.join(base, name, 'builders'),
    imagesDir: path.join(base, name, 'images'),
    imageMapPath: path.join(base, name, 'image-map.yaml'),
    engine: standinEngine(path.join(base, 'engine'), { seconds: 3, diskSize: '64M', dataMiB: 2 }, [rig.registry]),
    bibImage: ensureBibStandinImage(),
    ...extra,
  });
}

beforeAll(async () => {
  mkdirSync(base, { recursive: true });
  workers = [
    await startInProcessWorker(rig, { taskQueue: strictQueue, workerId: 'strict', dirs: strictDirs, allowInlineDefinitions: false }),
    await startInProcessWorker(rig, { taskQueue: inlineQueue, workerId: 'inline', dirs: inlineDirs, allowInlineDefinitions: true }),
  ];
  strict = await connectRig(rig, strictQueue);
  inline = await connectRig(rig, inlineQueue);
});

afterAll(async () => {
  for (const w of workers) await w.stop();
  await strict?.close();
  await inline?.close();
});

describe('which definitions a worker runs', () => {
  it('refuses a definition sent whole unless it equals one the worker knows, and runs it where inline definitions are allowed', async () => {
    const def = definition('inline-def');
    const refused = await strict.releases.startFromDefinition(def);
    const failed = await waitForStage(strict.releases, refused, ['failed', 'building', 'awaiting-approval']);
    expect(failed.stage).toBe('failed');
    expect(failed.error).toMatch(/release definition "inline-def" was sent whole in the start input/);
    expect(failed.error).toMatch(/BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS=true/);
    expect(Object.keys(failed.arches)).toEqual([]); // nothing was built
    // Non-retryable: the first activity failed once.
    const history = await strict.client.workflow.getHandle(refused).fetchHistory();
    expect(history.events!.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt)).toEqual([1]);

    // The worker knows "inline-def" now; the same definition with other approvers is still refused, naming the field.
    writeFileSync(path.join(strictDirs.definitionsDir, 'inline-def.yaml'), stringify(def));
    const changed = { ...def, approval: { ...def.approval!, approvers: ['mallory'] } };
    const differs = await strict.releases.startFromDefinition(changed, { releaseId: `inline-def-changed-${run}` });
    const failed2 = await waitForStage(strict.releases, differs, ['failed', 'building', 'awaiting-approval']);
    expect(failed2.stage).toBe('failed');
    expect(failed2.error).toMatch(/"inline-def" differs at approval\.approvers\.0/);

    // Equal to the known definition: it runs.
    const known = await strict.releases.startFromDefinition(def, { releaseId: `inline-def-known-${run}` });
    expect((await waitForStage(strict.releases, known, ['failed', 'awaiting-approval'])).stage).toBe('awaiting-approval');
    await strict.releases.reject(known, { by: 'copr-admin', reason: 'test done' });

    // A worker that allows inline definitions runs one it has never seen.
    const allowed = await inline.releases.startFromDefinition(definition('inline-only'));
    expect((await waitForStage(inline.releases, allowed, ['failed', 'awaiting-approval'])).stage).toBe('awaiting-approval');
    await inline.releases.reject(allowed, { by: 'copr-admin', reason: 'test done' });
  });
});

describe('who decides', () => {
  it('accepts an approval signed by a listed key, and refuses unsigned, unlisted-key, tampered and other-release ones', async () => {
    const admin = sshKey('copr-admin');
    const mallory = sshKey('mallory');
    const def = definition('signed', { allowUnsigned: false, approvalKeys: { 'copr-admin': [admin.publicKey] } });
    def.architectures!.x86_64!.types = ['qcow2', 'raw'];
    def.targets = { local: { kind: 'directory', path: path.join(base, 'signed', 'images') } };
    const id = await inline.releases.startFromDefinition(def);
    const ready = await waitForStage(inline.releases, id, ['failed', 'awaiting-approval']);
    expect(ready.stage).toBe('awaiting-approval');
    const [first, second] = ready.candidates.map((c) => c.imageId);
    const handle = inline.client.workflow.getHandle(id);
    const send = (a: Approval) => inline.releases.approve(id, a);

    // Unsigned: refused by the update's validator, and ignored as a signal (the Temporal UI's button).
    await expect(send({ by: 'copr-admin' })).rejects.toThrow(/unsigned approvals are not accepted for this release/);
    await handle.signal(approveSignal, { by: 'copr-admin' });
    await handle.signal(rejectSignal, { by: 'copr-admin' });
    const afterSignals = await handle.query(statusQuery);
    expect(afterSignals.stage).toBe('awaiting-approval');
    expect(afterSignals.error).toMatch(/rejection from copr-admin ignored: unsigned rejections are not accepted/);

    // Signed with a key the definition does not list for copr-admin.
    await expect(inline.releases.approve(id, { by: 'copr-admin', images: [first!] }, { key: mallory.privateKey })).rejects.toThrow(
      /signature: made with a key that is not listed for this approver/,
    );
    // Signed for one image, sent with two.
    const signedAt = new Date().toISOString();
    const oneImage = await signDecision(admin.privateKey, { releaseId: id, decision: 'approve', by: 'copr-admin', images: [first!], signedAt });
    await expect(send({ by: 'copr-admin', images: [first!, second!], signedAt, signature: oneImage })).rejects.toThrow(
      /signature: does not match this decision/,
    );
    // Signed for another release.
    const elsewhere = await signDecision(admin.privateKey, { releaseId: `${id}-other`, decision: 'approve', by: 'copr-admin', images: [first!], signedAt });
    await expect(send({ by: 'copr-admin', images: [first!], signedAt, signature: elsewhere })).rejects.toThrow(/signature: does not match this decision/);
    // A signed approval replayed as a rejection.
    await expect(inline.releases.reject(id, { by: 'copr-admin', signedAt, signature: oneImage })).rejects.toThrow(/does not match/);
    // Not an approver: the refusal does not tell who is.
    const notApprover = await send({ by: 'mallory' }).catch((err: Error) => err.message);
    expect(notApprover).toMatch(/mallory is not an approver of this release/);
    expect(notApprover).not.toMatch(/copr-admin|release-manager/);
    expect((await handle.query(statusQuery)).stage).toBe('awaiting-approval');

    // The real one, through the CLI: signed with copr-admin's key (named by the CLI's environment variable).
    // (Run asynchronously: this process hosts the worker that must answer the CLI's update meanwhile.)
    const cli = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '../../client/cli.ts'), 'release', 'approve', id, '--by', 'copr-admin', '--image', first!, '--json'],
      { env: { ...process.env, TEMPORAL_ADDRESS: rig.temporalAddress, BOOTC_RELEASE_APPROVAL_KEY: admin.privateKey } },
    );
    const done = JSON.parse(cli.stdout) as ReleaseStatus;
    expect(done.stage).toBe('activated');
    expect(done.approval).toMatchObject({ decision: 'approved', by: 'copr-admin', images: [first], signed: true });
  });
});

describe('when a decision is taken', () => {
  it('refuses a rejection sent while the release is still building, instead of keeping it for later', async () => {
    const id = await inline.releases.startFromDefinition(definition('early'));
    const handle = inline.client.workflow.getHandle(id);
    await waitForStage(inline.releases, id, ['building']);
    await handle.signal(rejectSignal, { by: 'copr-admin', reason: 'too early' });
    await expect(handle.executeUpdate(rejectUpdate, { args: [{ by: 'copr-admin' }] })).rejects.toMatchObject({
      cause: { message: 'release is building, not awaiting approval' },
    });
    const waiting = await waitForStage(inline.releases, id, ['awaiting-approval', 'rejected', 'failed'], 120_000);
    expect(waiting.stage).toBe('awaiting-approval');
    expect(waiting.error).toMatch(/rejection from copr-admin ignored: release is building, not awaiting approval/);
    await inline.releases.reject(id, { by: 'copr-admin', reason: 'test done' });
  });

  it('leaves awaiting-approval at once, and "approve all" means the candidates listed then, not a retry\'s', async () => {
    const def = definition('freeze', { arches: [{ arch: 'ppc64le', host: rig.sshHosts[1]!, types: ['qcow2'] }] });
    def.architectures!.ppc64le!.targets = ['good', 'flaky'];
    def.targets = {
      good: { kind: 'directory', path: path.join(base, 'freeze', 'good') },
      flaky: { kind: 'directory', path: path.join(base, 'freeze', 'flaky') },
    };
    // A publish that fails keeps retrying for ~17 s before it gives up: long enough to decide while one is running.
    def.timeouts = { ...def.timeouts, retryInitial: '1s', retryMax: '2s', maxAttempts: 10 };
    const id = await inline.releases.startFromDefinition(def);
    // The image's final path in the flaky target is taken by a directory: every publish there fails until it goes.
    const blocker = path.join(base, 'freeze', 'flaky', `freeze-ppc64le-${id.slice('freeze-'.length).replace('-', '_')}.qcow2`);
    mkdirSync(path.join(blocker, 'in-the-way'), { recursive: true });
    const handle = inline.client.workflow.getHandle(id);
    const waiting = await waitForStage(inline.releases, id, ['awaiting-approval', 'failed'], 120_000);
    expect(waiting.stage).toBe('awaiting-approval');
    expect(waiting.candidates.map((c) => c.target)).toEqual(['good']);
    expect(waiting.publishFailures.map((f) => f.target)).toEqual(['flaky']);

    // A retry of the flaky target is in flight (it keeps failing while the blocker is there) when "approve all" comes.
    const retry = inline.releases.retry(id, { target: 'flaky' }).catch((err: Error) => err);
    for (let i = 0; (await handle.query(statusQuery)).publishFailures.length > 0; i++) {
      if (i > 100) throw new Error('the retry never started');
      await new Promise((r) => setTimeout(r, 100));
    }
    await handle.signal(approveSignal, { by: 'copr-admin' });
    // The stage leaves awaiting-approval while the retried publish is still running, and later decisions are refused.
    // (Soft checks: on a release that kept awaiting approval, the test still goes on to show what "all" meant.)
    const decided = await statusWhen(handle, (st) => st.stage !== 'awaiting-approval');
    expect.soft(decided.stage).toBe('approved');
    expect(decided.candidates.map((c) => c.target)).toEqual(['good']);
    await handle.signal(rejectSignal, { by: 'copr-admin', reason: 'changed my mind' });
    expect.soft((await statusWhen(handle, (st) => !!st.error)).error).toMatch(/rejection from copr-admin ignored: release is approved, not awaiting approval/);
    // A second decision by update would be accepted and wait for the end on a release that kept awaiting approval.
    if (decided.stage === 'approved')
      await expect(handle.executeUpdate(approveUpdate, { args: [{ by: 'release-manager' }] })).rejects.toMatchObject({
        cause: { message: 'release is approved, not awaiting approval' },
      });

    // The retry then succeeds: its image exists and is a candidate, but the approval chose what was listed before.
    rmSync(blocker, { recursive: true });
    const result = (await handle.result()) as ReleaseResult;
    expect(await retry).not.toBeInstanceOf(Error);
    expect(result.stage).toBe('activated');
    expect(result.candidates.map((c) => c.target).sort()).toEqual(['flaky', 'good']);
    expect(result.chosen.map((c) => c.target)).toEqual(['good']);
    expect(Object.keys(result.activation!.imageMap)).toEqual(['good']);
  });
});
