// The fault matrix, SIGKILL (docs/testing.md#fault-matrix): the worker process is SIGKILLed while a release is at each
// stage, with the step surely in flight (held where it would be slow in real life: instances still booting, mkfs and a
// pull done but not yet answered, a build running, a fetch on a stalled link, every target's image made but not
// answered, a hook running), and a new worker with the same id takes over. Each release has every builder provider
// that can finish on the rig (libvirt, aws on moto, the IBM Cloud stand-in, a resalloc-like command; static where aws's
// attached EBS volume cannot show up as a disk), and every target kind where it publishes. After each: the release
// completes (approved when it waits), every step ran once where running it twice would make a second resource (one VM,
// one build per architecture), no target holds an image twice, and the clouds hold nothing beyond the candidates.
import { type ChildProcess } from 'node:child_process';
import { EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { channelWorkflowId } from '../../activities/channels';
import { approveSignal } from '../../workflows/messages';
import { buildStarts, FLEET, startFaultRig, TARGET_KINDS, type FaultRig, type ReleaseSpec, type Started } from '../rig/fault-rig';
import { alive, killWorker, releaseAwsResources, waitForStage, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
let fr: FaultRig;
let worker: ChildProcess;
const MiB = 2 ** 20;

beforeAll(async () => {
  fr = await startFaultRig(rig, 'e2e-fault-kill');
  worker = fr.startWorker();
}, 300_000);

afterAll(async () => {
  await fr?.stop();
});

/** SIGKILL, as a crashed worker host dies, and a new worker with the same id (its queue and directories). */
async function killAndRestart(): Promise<void> {
  await killWorker(worker);
  worker = fr.startWorker();
}

/** Approves when it waits, then: activated, no image twice anywhere, nothing in any cloud beyond the candidates. */
async function completes(r: Started): Promise<void> {
  const ready = await waitForStage(fr.conn.releases, r.id, ['awaiting-approval', 'failed', 'cancelled'], 240_000).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await fr.describe([r])}`);
  });
  expect(ready.publishFailures).toEqual([]);
  expect(ready.stage).toBe('awaiting-approval');
  const done = await fr.conn.releases.approve(r.id, { by: 'copr-admin' });
  expect(done.stage).toBe('activated');
  expect(await fr.leaks.duplicates(r)).toEqual([]);
  expect(await fr.leftBehind(r, ready.candidates)).toEqual([]);
}

/** A release, on a worker that is alive (a test may have left it killed). */
async function start(name: string, spec: ReleaseSpec): Promise<Started> {
  if (!alive(worker)) worker = fr.startWorker();
  return fr.start(name, spec);
}

describe('a release whose worker is SIGKILLed at each stage', () => {
  it('while provisioning: the new worker finds each booting VM and makes no second one', async () => {
    fr.moto.add({ match: { body: /Action=DescribeInstances/ }, action: { rewrite: (b) => b.replaceAll('<code>16</code><name>running</name>', '<code>0</code><name>pending</name>') } });
    fr.ibmApi.add({ match: { method: 'GET', path: /\/v1\/instances\/[^/?]+/ }, action: { rewrite: (b) => b.replaceAll('"status":"running"', '"status":"pending"') } });
    fr.domains.holdLeases(true);
    fr.resalloc.holdTickets(true);
    const ibmCreatesBefore = fr.ibm.requests.filter((q) => q.method === 'POST' && q.path === '/v1/instances').length;
    const r = await start('kill-provisioning', { builders: FLEET, targets: ['directory'] });
    try {
      await fr.waitFor(
        'every VM to be booting',
        async () => {
          const made = (await fr.leaks.resources(r)).map((x) => x.kind as string);
          return (await fr.allAt(r, 'provisioning')) && ['ec2-instance', 'ibm-instance', 'libvirt-domain', 'allocator-ticket'].every((k) => made.includes(k));
        },
        r,
      );
      await killAndRestart();
    } finally {
      fr.moto.clear();
      fr.ibmApi.clear();
      fr.domains.holdLeases(false);
      fr.resalloc.holdTickets(false);
    }
    await completes(r);
    const ec2 = new EC2Client({ region: 'ca-central-1', endpoint: rig.motoEndpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    expect((await releaseAwsResources(ec2, r.id)).all).toBe(1);
    expect(fr.ibm.requests.filter((q) => q.method === 'POST' && q.path === '/v1/instances').length - ibmCreatesBefore).toBe(1);
    expect(fr.domains.defined().filter((d) => d.includes('kill-provisioning'))).toHaveLength(1);
    expect(fr.resalloc.tickets().filter((t) => t.split(' ')[1] === r.id)).toHaveLength(1);
  }, 420_000);

  it('while preparing the data volume: the new worker formats and mounts it, and the release completes', async () => {
    fr.gates.hold('mkfs.ext4', '.');
    const r = await start('kill-volume', { builders: { x86_64: 'libvirt', aarch64: 'static', ppc64le: 'ibmcloud', s390x: 'command' }, targets: ['directory'], dataVolume: true });
    try {
      await fr.waitFor('mkfs on every builder', async () => (await fr.allAt(r, 'preparing-volume')) && fr.gates.held('mkfs.ext4') >= 4, r);
      await killAndRestart();
    } finally {
      fr.gates.release('mkfs.ext4');
    }
    await completes(r);
  }, 420_000);

  it('while pulling the container image: the new worker re-attaches to each pull', async () => {
    fr.gates.hold('podman', '^pull ');
    const pullsBefore = fr.gates.calls('podman').length;
    const r = await start('kill-pull', { builders: FLEET, targets: ['directory'] });
    try {
      await fr.waitFor('a pull on every builder', async () => (await fr.allAt(r, 'preparing-image')) && fr.gates.held('podman') >= 4, r);
      await killAndRestart();
      // The retries find the detached pulls still running and wait for them instead of pulling again.
      await fr.waitFor('the retries', async () => (await fr.pendingActivity(`${r.id}.build.x86_64`, 'prepareContainerImage'))?.attempt === 2, r);
    } finally {
      fr.gates.release('podman');
    }
    await completes(r);
    expect(fr.gates.calls('podman').length - pullsBefore).toBe(4);
  }, 420_000);

  it('while bootc-image-builder runs: the new worker re-attaches, one build per architecture', async () => {
    const r = await start('kill-build', { builders: FLEET, targets: ['directory'], build: { seconds: 10 } });
    await fr.waitFor(
      'every build to run',
      async () => (await fr.allAt(r, 'building-image')) && Object.keys(FLEET).every((a) => buildStarts(fr.workDir(r, a)) === 1),
      r,
    );
    await killAndRestart();
    await completes(r);
    for (const arch of Object.keys(FLEET)) expect(buildStarts(fr.workDir(r, arch)), arch).toBe(1);
  }, 420_000);

  it('while fetching: the new worker finishes every fetch and the artifacts are whole', async () => {
    Object.values(fr.links).forEach((l) => l.set({ bytesPerSecond: 4 * MiB }));
    const r = await start('kill-fetch', { builders: FLEET, targets: ['directory'], build: { dataMiB: 24 } });
    try {
      await fr.waitFor('every fetch under way', () => fr.allAt(r, 'fetching'), r);
      Object.values(fr.links).forEach((l) => l.set({ bytesPerSecond: 4 * MiB, stall: true }));
      await killAndRestart();
    } finally {
      Object.values(fr.links).forEach((l) => l.set({}));
    }
    await completes(r);
  }, 420_000);

  it('while publishing to every target kind: each target has made its image, none answered; no image twice', async () => {
    const holds = fr.holdPublishes();
    const r = await start('kill-publish', { builders: FLEET, targets: TARGET_KINDS });
    try {
      await fr.waitFor(
        'every target to hold an image of the release',
        holds.allHeld,
        r,
        180_000,
      );
      await killAndRestart();
    } finally {
      holds.release();
    }
    await completes(r);
  }, 420_000);

  it('while awaiting approval and again while its activation hook runs: the hook runs once', async () => {
    const r = await start('kill-approval', { builders: { x86_64: 'static' }, targets: ['directory'], hook: true });
    await waitForStage(fr.conn.releases, r.id, ['awaiting-approval'], 180_000);
    await killAndRestart();
    fr.hook.hold(true);
    const runsBefore = fr.hook.runs().length;
    try {
      await fr.conn.client.workflow.getHandle(r.id).signal(approveSignal, { by: 'copr-admin' });
      await fr.waitFor('the hook to run', () => fr.hook.runs().length > runsBefore, r, 60_000);
      await killAndRestart();
      // The channel's activation retried on the new worker waits for the hook the dead one started.
      const channel = channelWorkflowId(r.definition, 'staging');
      await fr.waitFor('the retried activation', async () => ((await fr.pendingActivity(channel, 'activate'))?.attempt ?? 0) >= 2, r, 60_000);
    } finally {
      fr.hook.hold(false);
    }
    const done = await waitForStage(fr.conn.releases, r.id, ['activated', 'failed', 'cancelled'], 120_000);
    expect(done.stage).toBe('activated');
    expect(fr.hook.runs().length - runsBefore).toBe(1);
    expect(await fr.leftBehind(r, done.candidates)).toEqual([]);
  }, 420_000);
});
