// A whole release on the real Temporal dev server: static builders on rig SSH hosts, a real data volume on a loop
// device, real podman pulling the source from a real registry, the bootc-image-builder stand-in, SFTP fetch, a
// directory target, approval, activation.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { InputError } from '../../client/release-client';
import { approveSignal, statusQuery, WORKFLOW_TYPES } from '../../workflows/messages';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { sha256File } from '../../activities/directory/target';
import {
  connectRig,
  rigDefinition,
  startInProcessWorker,
  waitForStage,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-release');
const taskQueue = `e2e-release-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;
const loops: string[] = [];

function loopDevice(name: string, sizeMiB: number): string {
  const file = path.join(base, `${name}.img`);
  execFileSync('truncate', ['-s', `${sizeMiB}M`, file]);
  const dev = execFileSync('losetup', ['--find', '--show', file]).toString().trim();
  loops.push(dev);
  return dev;
}

function definition(name: string, extra: Partial<Parameters<typeof rigDefinition>[1]> = {}) {
  return rigDefinition(rig, {
    name,
    arches: [
      { arch: 'x86_64', host: rig.sshHosts[0]!, types: ['qcow2', 'raw'] },
      { arch: 'aarch64', host: rig.sshHosts[1]!, types: ['qcow2'] },
    ],
    builderDir: path.join(base, name, 'builders'),
    imagesDir: path.join(base, name, 'images'),
    imageMapPath: path.join(base, name, 'inventory', 'copr.yaml'),
    engine: standinEngine(path.join(base, 'engine'), { seconds: 1, diskSize: '256M', dataMiB: 4 }, [rig.registry]),
    bibImage: ensureBibStandinImage(),
    ...extra,
  });
}

beforeAll(async () => {
  mkdirSync(base, { recursive: true });
  worker = await startInProcessWorker(rig, { taskQueue, dirs });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
  for (const mount of execFileSync('findmnt', ['-rn', '-o', 'TARGET']).toString().split('\n'))
    if (mount.startsWith(base)) execFileSync('umount', ['-l', mount]);
  for (const dev of loops) execFileSync('losetup', ['-d', dev]);
});

describe('a release on the real Temporal server', () => {
  it('goes start → awaiting approval → approved → activated for two architectures, and writes the image map', async () => {
    const def = definition('two-arch');
    // x86_64 gets a real data volume: a loop device formatted and mounted by the release.
    const dev = loopDevice('x86-data', 64);
    (def.architectures!.x86_64!.builder as any).dataVolume = {
      device: dev,
      mountpoint: path.join(base, 'two-arch', 'builders', 'x86_64', 'containers'),
      minFreeGiB: 0.01,
    };
    const id = await conn.releases.startFromDefinition(def, { reason: 'e2e two-arch' });
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed']);
    expect(ready.error).toBeUndefined();
    expect(ready.stage).toBe('awaiting-approval');
    expect(ready.arches.x86_64?.stage).toBe('published');
    expect(ready.arches.aarch64?.stage).toBe('published');
    // x86_64 built qcow2 + raw, aarch64 qcow2; a directory target keeps each.
    expect(ready.candidates.map((c) => `${c.arch}/${c.type}`).sort()).toEqual(['aarch64/qcow2', 'x86_64/qcow2', 'x86_64/raw']);
    for (const c of ready.candidates) {
      expect(await sha256File(c.imageId)).toBe(c.sha256);
      expect(statSync(c.imageId).size).toBe(c.size);
    }
    const raw = ready.candidates.find((c) => c.type === 'raw')!;
    expect(statSync(raw.imageId).blocks * 512).toBeLessThan(raw.size / 4); // holes stayed holes
    expect(execFileSync('findmnt', ['-rn', '-o', 'SOURCE', path.join(base, 'two-arch', 'builders', 'x86_64', 'containers')]).toString().trim()).toBe(dev);

    // The CLI's update refuses what the release cannot accept, with the reason.
    await expect(conn.releases.approve(id, { by: 'mallory' })).rejects.toThrow(/mallory is not an approver/);
    await expect(conn.releases.approve(id, { by: 'copr-admin', images: ['ami-nope'] })).rejects.toThrow(InputError);

    const chosen = ready.candidates.filter((c) => c.type === 'qcow2').map((c) => c.imageId);
    const done = await conn.releases.approve(id, { by: 'copr-admin', images: chosen });
    expect(done.stage).toBe('activated');
    expect(done.approval).toMatchObject({ decision: 'approved', by: 'copr-admin' });
    const map = parseYaml(readFileSync(path.join(base, 'two-arch', 'inventory', 'copr.yaml'), 'utf8'));
    // x86_64 builds two types for this target, so its entry is keyed by type even when one is chosen (docs/activation.md).
    expect(map.copr_builder_images.local).toEqual({
      x86_64: { qcow2: chosen.find((c) => c.includes('two-arch-x86_64-')) },
      aarch64: chosen.find((c) => c.includes('two-arch-aarch64-')),
    });
    // Builders were released: no claim left on the static hosts.
    for (const arch of ['x86_64', 'aarch64'])
      expect(existsSync(path.join(base, 'two-arch', 'builders', arch, 'work', '.claims')) ? readdirSync(path.join(base, 'two-arch', 'builders', arch, 'work', '.claims')) : []).toEqual([]);
    const result = await conn.client.workflow.getHandle(id).result();
    expect(result.chosen).toHaveLength(2);
  });

  it('starts from the short input the Temporal UI sends, and is approved by a signal with a JSON body', async () => {
    const def = definition('ui-started', { arches: [{ arch: 's390x', host: rig.sshHosts[2]!, types: ['qcow2'] }] });
    writeFileSync(path.join(dirs.definitionsDir, 'ui-started.yaml'), stringify(def));
    const id = `ui-started-${randomUUID().slice(0, 8)}`;
    const handle = await conn.client.workflow.start(WORKFLOW_TYPES.release, {
      workflowId: id,
      taskQueue,
      args: [{ definition: 'ui-started', reason: 'typed into the UI' }],
    });
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed']);
    expect(ready.stage).toBe('awaiting-approval');
    expect(ready.reason).toBe('typed into the UI');
    expect(ready.candidates).toHaveLength(1);

    await handle.signal(approveSignal, { by: 'nobody' });
    expect((await handle.query(statusQuery)).error).toMatch(/nobody is not an approver/);
    await handle.signal(approveSignal, { by: 'release-manager' });
    const result = await handle.result();
    expect(result.stage).toBe('activated');
    expect(result.activation?.imageMap).toEqual({ local: { s390x: expect.stringContaining('ui-started-s390x-') } });
  });

  it('refuses a short input naming a definition the worker does not know, before creating anything', async () => {
    const id = `unknown-def-${randomUUID().slice(0, 8)}`;
    const handle = await conn.client.workflow.start(WORKFLOW_TYPES.release, { workflowId: id, taskQueue, args: [{ definition: 'no-such' }] });
    await expect(handle.result()).rejects.toThrow();
    const s = await conn.releases.status(id);
    expect(s.stage).toBe('failed');
    expect(s.error).toMatch(/unknown release definition "no-such"/);
    expect(Object.keys(s.arches)).toEqual([]);
  });

  it('is rejected, and deletes its candidates when the definition says so', async () => {
    const def = definition('rejected', { arches: [{ arch: 'x86_64', host: rig.sshHosts[2]!, types: ['qcow2'] }], onReject: 'delete' });
    const id = await conn.releases.startFromDefinition(def);
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed']);
    expect(ready.candidates).toHaveLength(1);
    expect(existsSync(ready.candidates[0]!.imageId)).toBe(true);
    const done = await conn.releases.reject(id, { by: 'copr-admin', reason: 'kernel regression' });
    expect(done.stage).toBe('rejected');
    expect(done.approval).toMatchObject({ decision: 'rejected', by: 'copr-admin', reason: 'kernel regression' });
    expect(existsSync(ready.candidates[0]!.imageId)).toBe(false);
    expect(existsSync(path.join(base, 'rejected', 'inventory', 'copr.yaml'))).toBe(false);
  });

  it('times out when nobody decides, keeps the candidates and activates nothing', async () => {
    const def = definition('timeout', { arches: [{ arch: 'aarch64', host: rig.sshHosts[3]!, types: ['qcow2'] }], approvalTimeout: '3s' });
    const id = await conn.releases.startFromDefinition(def);
    const done = await waitForStage(conn.releases, id, ['timed-out', 'failed', 'activated']);
    expect(done.stage).toBe('timed-out');
    expect(done.approval?.decision).toBe('timed-out');
    expect(existsSync(done.candidates[0]!.imageId)).toBe(true);
    expect(existsSync(path.join(base, 'timeout', 'inventory', 'copr.yaml'))).toBe(false);
    await expect(conn.releases.approve(id, { by: 'copr-admin' })).rejects.toThrow();
  });
});

afterAll(() => rmSync(path.join(base, 'engine'), { recursive: true, force: true }));
