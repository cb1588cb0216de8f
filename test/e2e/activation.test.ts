// Activation changes only what the release owns, through whole releases on the real Temporal dev server: a release of
// one architecture and an approval of a subset keep every other entry of an inventory that already holds other
// architectures and clouds, and the workflow's result and status say exactly which entries were replaced. A release
// whose activation could not be done fails in preflight, before a builder is taken.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import type { ReleaseResult } from '../../workflows/messages';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { connectRig, rigDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-activation');
const taskQueue = `e2e-activation-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const mapFile = path.join(base, 'inventory', 'copr.yaml');
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

// The farm's inventory before these releases: other clouds, and this definition's own earlier images.
const before = {
  copr_builder_images: {
    local: { x86_64: { qcow2: '/srv/old/x86_64.qcow2', raw: '/srv/old/x86_64.raw' }, s390x: '/srv/old/s390x.qcow2', aarch64: '/srv/old/aarch64.qcow2' },
    aws: { x86_64: 'ami-0123keep' },
    ibm_cloud: { s390x: { us_east: 'r014-keep' } },
  },
  copr_other_setting: 42,
};

const definition = () =>
  rigDefinition(rig, {
    name: 'merge',
    arches: [
      { arch: 'x86_64', host: rig.sshHosts[0]!, types: ['qcow2', 'raw'] },
      { arch: 's390x', host: rig.sshHosts[2]!, types: ['qcow2'] },
    ],
    builderDir: path.join(base, 'builders'),
    imagesDir: path.join(base, 'images'),
    imageMapPath: mapFile,
    engine: standinEngine(path.join(base, 'engine'), { seconds: 1, diskSize: '64M', dataMiB: 2 }, [rig.registry]),
    bibImage: ensureBibStandinImage(),
  });

const inventory = () => parseYaml(readFileSync(mapFile, 'utf8'));

beforeAll(async () => {
  mkdirSync(path.dirname(mapFile), { recursive: true });
  writeFileSync(mapFile, stringify(before));
  worker = await startInProcessWorker(rig, { taskQueue, dirs });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
});

describe('activation of a release that built part of the farm', () => {
  it('a one-arch release replaces only that arch and reports exactly what it replaced', async () => {
    const id = await conn.releases.startFromDefinition(definition(), { arches: ['s390x'], reason: 'fix one arch' });
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 180_000);
    expect(ready.stage).toBe('awaiting-approval');
    const [s390x] = ready.candidates;
    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');

    expect(inventory()).toEqual({
      ...before,
      copr_builder_images: { ...before.copr_builder_images, local: { ...before.copr_builder_images.local, s390x: s390x!.imageId } },
    });
    const replaced = [{ target: mapFile, entries: [{ path: ['local', 's390x'], previous: '/srv/old/s390x.qcow2', value: s390x!.imageId }] }];
    expect(done.activation?.replaced).toEqual(replaced);
    const result: ReleaseResult = await conn.client.workflow.getHandle(id).result();
    expect(result.activation?.replaced).toEqual(replaced);
  });

  it('an approval of a subset replaces only the chosen images, keeping the other type of the same arch', async () => {
    const id = await conn.releases.startFromDefinition(definition(), { arches: ['x86_64'] });
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 180_000);
    expect(ready.candidates.map((c) => c.type).sort()).toEqual(['qcow2', 'raw']);
    const raw = ready.candidates.find((c) => c.type === 'raw')!;
    const done = await conn.releases.approve(id, { by: 'copr-admin', images: [raw.imageId] });
    expect(done.stage).toBe('activated');

    const map = inventory().copr_builder_images;
    expect(map.local.x86_64).toEqual({ qcow2: '/srv/old/x86_64.qcow2', raw: raw.imageId });
    expect(map.aws).toEqual(before.copr_builder_images.aws);
    expect(map.ibm_cloud).toEqual(before.copr_builder_images.ibm_cloud);
    expect(map.local.aarch64).toBe('/srv/old/aarch64.qcow2');
    expect(map.local.s390x).toMatch(/merge-s390x-/); // the first release's, kept
    expect(done.activation?.replaced).toEqual([
      { target: mapFile, entries: [{ path: ['local', 'x86_64', 'raw'], previous: '/srv/old/x86_64.raw', value: raw.imageId }] },
    ]);
  });

  it('a release in which one arch failed keeps that arch\'s images', async () => {
    const def = definition();
    // x86_64's data volume is a disk its builder does not have: its build fails after preflight, s390x goes on.
    (def.architectures!.x86_64!.builder as { dataVolume?: object }).dataVolume = {
      device: '/dev/bootc-release-no-such-disk',
      mountpoint: path.join(base, 'builders', 'x86_64', 'containers'),
      minFreeGiB: 0.01,
    };
    const x86Before = inventory().copr_builder_images.local.x86_64;
    const id = await conn.releases.startFromDefinition(def);
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 180_000);
    expect(ready.arches.x86_64?.stage).toBe('failed');
    expect(ready.candidates.map((c) => c.arch)).toEqual(['s390x']);
    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');

    const map = inventory().copr_builder_images;
    expect(map.local.x86_64).toEqual(x86Before);
    expect(map.local.s390x).toBe(ready.candidates[0]!.imageId);
    expect(done.activation?.replaced[0]!.entries.map((e) => e.path)).toEqual([['local', 's390x']]);
  });
  it('a release whose activation target is unreachable fails in preflight, naming the step, before a builder is taken', async () => {
    const dir = path.join(base, 'unreachable');
    mkdirSync(dir, { recursive: true });
    const allocator = path.join(dir, 'allocator');
    writeFileSync(allocator, `#!/bin/sh\necho "$*" >> ${dir}/calls\necho t1\n`);
    chmodSync(allocator, 0o755);
    const repository = path.join(dir, 'no-such-inventory.git');
    const hook = path.join(dir, 'copr-recycle-builders');
    const def = definition();
    def.architectures!.x86_64!.builder = {
      provider: 'command',
      acquire: [allocator, 'acquire'],
      release: [allocator, 'release'],
      ssh: { privateKeyPath: rig.privateKeyPath },
    } as never;
    def.channels!.staging!.activation!.push({ kind: 'image-map-git', repository, file: 'copr.yaml' }, { kind: 'command', command: [hook] });
    const inventoryBefore = readFileSync(mapFile, 'utf8');
    const id = await conn.releases.startFromDefinition(def, { arches: ['x86_64'] });
    const done = await waitForStage(conn.releases, id, ['failed', 'awaiting-approval'], 180_000);

    expect(done.stage).toBe('failed');
    expect(done.error).toMatch(/preflight failed; nothing was created/);
    expect(done.error).toMatch(new RegExp(`channels\\.staging\\.activation\\.1 \\(image map .* ${repository} .*cannot reach the repository`));
    expect(done.error).toContain(`channels.staging.activation.2 (command hook ${hook}): ${hook} does not exist on the worker`);
    expect(done.error).not.toContain('channels.staging.activation.0');
    expect(Object.keys(done.arches)).toEqual([]);
    expect(existsSync(path.join(dir, 'calls'))).toBe(false);
    expect(readFileSync(mapFile, 'utf8')).toBe(inventoryBefore);
  });
});
