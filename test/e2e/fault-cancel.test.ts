// The fault matrix, cancels (docs/testing.md#fault-matrix): a release cancelled at each stage, with every builder
// provider at once (one architecture each: libvirt, aws on moto, the IBM Cloud stand-in, a resalloc-like command;
// static in a second release beside it) and every target kind at once (directory, aws, ibmcloud, libvirt, Glance).
// Each step is held in flight where it would be slow in real life (an instance still booting, mkfs and a pull done
// but not yet answered, a build running, a fetch on a stalled link, an image registered whose answer has not come
// back), the release is cancelled there, and then the clouds' own APIs are asked what is left (test/rig/leaks.ts):
// nothing, with the release CANCELLED and no error. A cancel while the activation hook runs is the exception by
// design: the image map before the hook already names the chosen images, so they stay (docs/activation.md).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Arch } from '../../config/schema';
import { approveSignal, type ReleaseStage } from '../../workflows/messages';
import { buildStarts, FLEET, startFaultRig, TARGET_KINDS, type FaultRig, type Provider, type ReleaseSpec, type Started } from '../rig/fault-rig';
import { parse as parseYaml } from 'yaml';
import { backingIds, type ReleaseRef } from '../rig/leaks';
import { waitForStage, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
let fr: FaultRig;

/** Static builders: a release of its own beside FLEET's (four architectures exist, and static has one host). */
const STATIC: Partial<Record<Arch, Provider>> = { x86_64: 'static' };
const MiB = 2 ** 20;

beforeAll(async () => {
  fr = await startFaultRig(rig, 'e2e-fault-cancel');
  fr.startWorker();
}, 300_000);

afterAll(async () => {
  await fr?.stop();
});

const status = (r: ReleaseRef) => fr.conn.releases.status(r.id).catch(() => undefined);
const kinds = async (r: ReleaseRef) => (await fr.leaks.resources(r)).map((x) => x.kind);

/**
 * Cancels; once every in-flight step has taken the cancel (each architecture tearing down or cancelled), lifts the
 * holds (a teardown needs the link the fetch stalled on); then checks the release ended CANCELLED with nothing left in
 * any cloud or on any builder host.
 */
async function cancelAndCount(releases: Started[], lift: () => void = () => undefined): Promise<void> {
  await Promise.all(releases.map((r) => fr.conn.releases.cancel(r.id)));
  try {
    await fr.waitFor('every step to take the cancel', async () => {
      for (const r of releases) {
        const s = await status(r);
        const done = ['cancelled', 'failed'].includes(s?.stage ?? '');
        if (!done && !Object.keys(r.spec.builders).every((a) => ['tearing-down', 'cancelled', 'published', 'failed'].includes(s?.arches[a as Arch]?.stage ?? '')))
          return false;
      }
      return true;
    }, releases);
  } finally {
    lift();
  }
  for (const r of releases) {
    const closed = await waitForStage(fr.conn.releases, r.id, ['cancelled', 'failed', 'activated'], 180_000);
    expect(closed.stage, r.id).toBe('cancelled');
    expect(closed.error, r.id).toBeUndefined();
    await fr.conn.client.workflow.getHandle(r.id).result().catch(() => undefined);
    expect((await fr.conn.client.workflow.getHandle(r.id).describe()).status.name).toBe('CANCELLED');
    expect(await fr.leftBehind(r), r.id).toEqual([]);
  }
}

/** After the holds are lifted the held steps finish on their own: still nothing may appear. */
async function stillNothingAfterRelease(releases: Started[]): Promise<void> {
  await new Promise((r) => setTimeout(r, 2_000));
  for (const r of releases) expect(await fr.leftBehind(r), `${r.id} after the holds were lifted`).toEqual([]);
}

interface BuilderStage {
  stage: ReleaseStage | 'provisioning' | 'preparing-volume' | 'preparing-image' | 'building-image' | 'fetching';
  spec?: Partial<ReleaseSpec>;
  /** Before the releases start (the static one's definition is `single`): makes the stage last. */
  hold(single: string): void;
  /** With the releases started: true once every architecture is surely inside the stage. */
  inStage(fleet: Started, single: Started): Promise<boolean>;
  /** Lifts the holds. */
  release(fleet: Started, single: Started): void;
}

const claimOf = (definition: string) =>
  path.join(fr.base, definition, 'x86_64', 'work', '.claims', `${fr.links.static.address}_${fr.links.static.port}`);

const BUILDER_STAGES: BuilderStage[] = [
  {
    stage: 'provisioning',
    hold(single) {
      // Every VM is created and still booting: EC2 and VPC instances report pending, libvirt domains have no lease,
      // resalloc has no free machine for the ticket, and the one static host is taken by another release.
      mkdirSync(claimOf(single), { recursive: true });
      writeFileSync(path.join(claimOf(single), 'owner'), 'another-release/x86_64');
      fr.moto.add({ match: { body: /Action=DescribeInstances/ }, action: { rewrite: (b) => b.replaceAll('<code>16</code><name>running</name>', '<code>0</code><name>pending</name>') } });
      fr.ibmApi.add({ match: { method: 'GET', path: /\/v1\/instances\/[^/?]+/ }, action: { rewrite: (b) => b.replaceAll('"status":"running"', '"status":"pending"') } });
      fr.domains.holdLeases(true);
      fr.resalloc.holdTickets(true);
    },
    async inStage(fleet, single) {
      const made = await kinds(fleet);
      const acquire = await fr.pendingActivity(`${single.id}.build.x86_64`, 'acquireBuilder');
      return (
        (await fr.allAt(fleet, 'provisioning')) &&
        ['ec2-instance', 'ibm-instance', 'libvirt-domain', 'allocator-ticket'].every((k) => made.includes(k as never)) &&
        (acquire?.attempt ?? 0) >= 2
      );
    },
    release(_fleet, single) {
      fr.moto.clear();
      fr.ibmApi.clear();
      fr.domains.holdLeases(false);
      fr.resalloc.holdTickets(false);
      rmSync(claimOf(single.definition), { recursive: true, force: true });
    },
  },
  {
    stage: 'preparing-volume',
    spec: { dataVolume: true },
    // mkfs has formatted each loop device and not returned yet; aws's attached EBS volume never shows up as a disk
    // on a rig host, so its preparation keeps retrying with the volume attached.
    hold: () => fr.gates.hold('mkfs.ext4', '.'),
    inStage: async (fleet, single) =>
      (await fr.allAt(fleet, 'preparing-volume')) &&
      (await fr.allAt(single, 'preparing-volume')) &&
      fr.gates.held('mkfs.ext4') >= 4 &&
      (await kinds(fleet)).filter((k) => k === 'ebs-volume').length === 2,
    release: () => fr.gates.release('mkfs.ext4'),
  },
  {
    stage: 'preparing-image',
    hold: () => fr.gates.hold('podman', '^pull '),
    inStage: async (fleet, single) =>
      (await fr.allAt(fleet, 'preparing-image')) && (await fr.allAt(single, 'preparing-image')) && fr.gates.held('podman') >= 5,
    release: () => fr.gates.release('podman'),
  },
  {
    stage: 'building-image',
    spec: { build: { seconds: 120 } },
    hold: () => undefined,
    inStage: async (fleet, single) =>
      (await fr.allAt(fleet, 'building-image')) &&
      (await fr.allAt(single, 'building-image')) &&
      [fleet, single].every((r) => Object.keys(r.spec.builders).every((a) => buildStarts(fr.workDir(r, a)) > 0)),
    release: () => undefined,
  },
  {
    stage: 'fetching',
    spec: { build: { dataMiB: 24 } },
    // Every builder's link is slow; once all architectures fetch, the links stall with the fetches under way.
    hold: () => Object.values(fr.links).forEach((l) => l.set({ bytesPerSecond: 2 * MiB })),
    async inStage(fleet, single) {
      const fetching = (await fr.allAt(fleet, 'fetching')) && (await fr.allAt(single, 'fetching'));
      if (fetching) Object.values(fr.links).forEach((l) => l.set({ bytesPerSecond: 2 * MiB, stall: true }));
      return fetching;
    },
    release: () => Object.values(fr.links).forEach((l) => l.set({})),
  },
];

describe('a release cancelled at each builder stage, on every provider', () => {
  it.each(BUILDER_STAGES)('leaves nothing anywhere when cancelled while $stage', async (c) => {
    c.hold(`cancel-${c.stage}-static`);
    const fleet = await fr.start(`cancel-${c.stage}`, { builders: FLEET, targets: ['directory'], ...c.spec });
    const single = await fr.start(`cancel-${c.stage}-static`, { builders: STATIC, targets: ['directory'], ...c.spec });
    try {
      await fr.waitFor(`every architecture ${c.stage}`, () => c.inStage(fleet, single), [fleet, single]);
      await cancelAndCount([fleet, single], () => c.release(fleet, single));
    } finally {
      c.release(fleet, single);
    }
    await stillNothingAfterRelease([fleet, single]);
  }, 420_000);
});

describe('a release cancelled after its builds, at every target kind at once', () => {
  const spec: ReleaseSpec = { builders: FLEET, targets: TARGET_KINDS };

  it('leaves nothing when cancelled while it publishes: each target has made its image, none has answered', async () => {
    const holds = fr.holdPublishes();
    const r = await fr.start('cancel-publishing', spec);
    try {
      await fr.waitFor(
        'every target to hold an image of the release',
        holds.allHeld,
        [r],
        180_000,
      );
      const made = await kinds(r);
      for (const k of ['ami', 'ebs-snapshot', 'ibm-image', 's3-object', 'glance-image', 'libvirt-volume', 'file'])
        expect(made, `a ${k} before the cancel`).toContain(k);
      await cancelAndCount([r]);
    } finally {
      holds.release();
    }
    await stillNothingAfterRelease([r]);
  }, 420_000);

  it('leaves nothing when cancelled while it awaits approval', async () => {
    const r = await fr.start('cancel-awaiting', spec);
    const ready = await waitForStage(fr.conn.releases, r.id, ['awaiting-approval', 'failed'], 180_000);
    expect(ready.stage).toBe('awaiting-approval');
    expect(ready.candidates.map((c) => c.kind).sort()).toEqual(
      ['aws', 'aws', 'directory', 'directory', 'directory', 'directory', 'directory', 'directory', 'ibmcloud', 'ibmcloud', 'ibmcloud', 'ibmcloud']
        .concat(['libvirt', 'libvirt', 'libvirt', 'libvirt', 'openstack', 'openstack', 'openstack', 'openstack'])
        .sort(),
    );
    await cancelAndCount([r]);
  }, 420_000);

  it('keeps the chosen images, which the image map already names, when cancelled while its activation hook runs', async () => {
    const r = await fr.start('cancel-activating', { ...spec, hook: true });
    const ready = await waitForStage(fr.conn.releases, r.id, ['awaiting-approval'], 180_000);
    fr.hook.hold(true);
    try {
      const runsBefore = fr.hook.runs().length;
      await fr.conn.client.workflow.getHandle(r.id).signal(approveSignal, { by: 'copr-admin' });
      await fr.waitFor('the hook to run', () => fr.hook.runs().length > runsBefore, [r], 60_000);
      await fr.conn.releases.cancel(r.id);
      const closed = await waitForStage(fr.conn.releases, r.id, ['cancelled', 'failed', 'activated'], 120_000);
      expect(closed.stage).toBe('cancelled');
      expect(closed.error).toMatch(/cancelled while activating: the chosen images are kept/);
      // The image map was written before the hook: every image it names is still there, and nothing else is.
      const map = parseYaml(readFileSync(path.join(fr.base, r.definition, 'image-map.yaml'), 'utf8')).copr_builder_images;
      expect(Object.keys(map).sort()).toEqual([...TARGET_KINDS].sort());
      const present = new Set((await fr.leaks.resources(r)).map((x) => `${x.kind}:${x.id}`));
      expect([...backingIds(ready.candidates)].filter((id) => !present.has(id))).toEqual([]);
      expect(await fr.leftBehind(r, ready.candidates)).toEqual([]);
      // Completed, not cancelled, in Temporal's eyes: the janitor's sweep of cancelled releases leaves them alone.
      await fr.conn.client.workflow.getHandle(r.id).result();
      expect((await fr.conn.client.workflow.getHandle(r.id).describe()).status.name).toBe('COMPLETED');
    } finally {
      fr.hook.hold(false);
    }
  }, 420_000);
});
