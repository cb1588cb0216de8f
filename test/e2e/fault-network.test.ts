// The fault matrix, networks (docs/testing.md#fault-matrix): the SSH connections to every builder are cut (reset at the
// fault proxy, test/rig/fault-proxy.ts) in the middle of the build's polling and again in the middle of the fetch; the
// AWS (moto: EC2, EBS direct), Glance and IBM COS (moto's S3) endpoints are slowed, reset in the middle of an upload,
// and answer 503 for a while (test/rig/http-fault-proxy.ts). Each release completes: every artifact whole, every build
// run once, no image twice at any target, nothing in any cloud beyond its candidates (test/rig/leaks.ts).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Arch } from '../../config/schema';
import { buildStarts, FLEET, startFaultRig, type FaultRig, type ReleaseSpec, type Started } from '../rig/fault-rig';
import { waitForStage, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
let fr: FaultRig;
const MiB = 2 ** 20;

beforeAll(async () => {
  fr = await startFaultRig(rig, 'e2e-fault-network');
  fr.startWorker();
}, 300_000);

afterAll(async () => {
  await fr?.stop();
});

/** Awaits approval with no failed publish, and no image twice anywhere nor anything beyond the candidates. */
async function publishedCleanly(r: Started) {
  const ready = await waitForStage(fr.conn.releases, r.id, ['awaiting-approval', 'failed', 'cancelled'], 240_000).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await fr.describe([r])}`);
  });
  expect(ready.publishFailures).toEqual([]);
  expect(ready.stage).toBe('awaiting-approval');
  expect(await fr.leaks.duplicates(r)).toEqual([]);
  expect(await fr.leftBehind(r, ready.candidates)).toEqual([]);
  await fr.conn.releases.reject(r.id, { by: 'copr-admin', reason: 'fault test done' });
  return ready;
}

describe('SSH connections to the builders cut mid-command', () => {
  it('during the build and during the fetch: every release step reconnects, one build each, whole artifacts', async () => {
    const links = Object.keys(FLEET).map((a) => fr.links[FLEET[a as Arch]!]);
    const resets = () => links.map((l) => l.resets);
    const atStart = resets();
    const r = await fr.start('cut-ssh', { builders: FLEET, targets: ['directory'], build: { seconds: 8, dataMiB: 24 } });
    const work = (arch: string) => path.join(fr.base, r.definition, arch, 'work');
    await fr.waitFor('every build to run', async () => (await fr.allAt(r, 'building-image')) && Object.keys(FLEET).every((a) => buildStarts(work(a)) === 1), r);
    for (const l of links) l.cut();
    const afterBuildCut = resets();
    // The fetch goes slowly enough to be cut in the middle, twice.
    for (const l of links) l.set({ bytesPerSecond: 4 * MiB });
    await fr.waitFor('every fetch under way', () => fr.allAt(r, 'fetching'), r, 180_000);
    for (let i = 0; i < 2; i++) {
      await new Promise((res) => setTimeout(res, 1_500));
      for (const l of links) l.cut();
    }
    for (const l of links) l.set({});
    const ready = await publishedCleanly(r);
    // Every builder had a connection cut while its build ran, and again while it fetched.
    const atEnd = resets();
    expect(links.map((_, i) => afterBuildCut[i]! > atStart[i]! && atEnd[i]! > afterBuildCut[i]!)).toEqual(links.map(() => true));
    for (const arch of Object.keys(FLEET)) expect(buildStarts(work(arch)), arch).toBe(1);
    // The directory target checks each copy against the sha256 the builder computed: the fetched bytes are whole.
    expect(ready.candidates.filter((c) => c.kind === 'directory')).toHaveLength(4);
  }, 420_000);
});

/** One architecture publishing to the three clouds behind HTTP proxies: an AMI (EBS direct), COS + VPC image, Glance. */
const CLOUDS: ReleaseSpec = { builders: { x86_64: 'static' }, targets: ['aws', 'ibmcloud', 'openstack'], build: { dataMiB: 8 } };

interface CloudFault {
  fault: string;
  /** Puts the faults in place; returns how to tell they struck. */
  arm(): () => boolean;
}

const EBS_BLOCK = { method: 'PUT', path: /\/snapshots\/[^/]+\/blocks\/\d+/ };
const COS_PART = { method: 'PUT', path: /partNumber=/ };
const GLANCE_FILE = { method: 'PUT', path: /\/v2\/images\/[^/]+\/file/ };

const CLOUD_FAULTS: CloudFault[] = [
  {
    fault: 'slowed (200 ms per request, 2 MiB/s up)',
    arm() {
      for (const p of [fr.moto, fr.glance]) p.slow({ latencyMs: 200, bytesPerSecond: 2 * MiB });
      const before = fr.moto.requests + fr.glance.requests;
      return () => fr.moto.requests + fr.glance.requests > before;
    },
  },
  {
    fault: 'reset in the middle of an upload',
    arm() {
      const rules = [
        fr.moto.add({ match: EBS_BLOCK, action: { resetAfterBytes: 100_000 }, times: 2 }),
        fr.moto.add({ match: COS_PART, action: { resetAfterBytes: MiB }, times: 2 }),
        fr.glance.add({ match: GLANCE_FILE, action: { resetAfterBytes: MiB }, times: 1 }),
      ];
      return () => rules.every((r) => r.hits === (r === rules[2] ? 1 : 2));
    },
  },
  {
    fault: 'answering 503 for a while',
    arm() {
      const busy = { status: 503 };
      const rules = [
        fr.moto.add({ match: { method: 'POST', path: /^\/snapshots$/ }, action: busy, times: 4 }),
        fr.moto.add({ match: EBS_BLOCK, action: busy, times: 4 }),
        fr.moto.add({ match: { body: /Action=RegisterImage/ }, action: busy, times: 4 }),
        fr.moto.add({ match: COS_PART, action: busy, times: 4 }),
        fr.glance.add({ match: { method: 'POST', path: /^\/v2\/images$/ }, action: { ...busy, contentType: 'application/json', body: '{"message": "busy"}' }, times: 2 }),
        fr.glance.add({ match: GLANCE_FILE, action: { ...busy, contentType: 'application/json', body: '{"message": "busy"}' }, times: 2 }),
      ];
      return () => rules.every((r) => r.hits > 0);
    },
  },
];

describe('the AWS, Glance and COS endpoints misbehaving while a release publishes', () => {
  it.each(CLOUD_FAULTS)('$fault: the publish completes with one image per target and nothing else left', async ({ fault, arm }) => {
    const struck = arm();
    try {
      const r = await fr.start(`cloud-${fault.split(' ')[0]}`, CLOUDS);
      const ready = await publishedCleanly(r);
      expect(struck()).toBe(true);
      expect(ready.candidates.map((c) => c.kind).sort()).toEqual(['aws', 'ibmcloud', 'openstack']);
    } finally {
      fr.moto.clear();
      fr.glance.clear();
    }
  }, 420_000);
});
