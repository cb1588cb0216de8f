// deleteRelease of the targets that live on disks we own: libvirt volumes on a real libvirtd through a real sshd
// "hypervisor", and the directory target's files. What a cancelled release made goes, finished or half-made;
// anything of another name stays. (aws, ibmcloud and openstack are proven end to end in test/e2e/nothing-left.)
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Target } from '../../config/schema';
import { createDirectoryTarget } from '../../activities/directory/target';
import { createLibvirtTarget, type LibvirtTarget } from '../../activities/libvirt/target';
import type { StagedArtifact } from '../../activities/types';
import { createPool, startLibvirtd, virsh, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { MiB, sha256, sparseRaw } from './libvirt-helpers';

const rig = inject('rig');
const host = rig.sshHosts[0];
let libvirtd: Libvirtd;
let pool: RigPool;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-delete-release-'));
  libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
  pool = await createPool(dir, 'cancelled');
});
afterAll(async () => {
  await pool?.remove();
  await libvirtd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const scope = (imageNames: string[]) => ({ releaseId: 'r9', arch: 'x86_64' as const, targetName: 'hv', imageNames });

describe('deleteRelease', () => {
  it('libvirt: deletes the release volumes on every host, a half-made one too, and leaves other volumes', async () => {
    const target = Target.parse({
      kind: 'libvirt',
      hosts: [host.address],
      ssh: { port: host.port, privateKeyPath: rig.privateKeyPath },
      pool: pool.name,
      format: 'raw',
    }) as LibvirtTarget;
    const file = sparseRaw(path.join(dir, 'disk.raw'), 16 * MiB, [[0, MiB]]);
    const artifact: StagedArtifact = {
      arch: 'x86_64',
      type: 'raw',
      path: file,
      size: statSync(file).size,
      dataBytes: MiB,
      sha256: sha256(file),
      stagingQueue: 'q',
    };
    const driver = createLibvirtTarget();
    await driver.publish({ releaseId: 'r9', arch: 'x86_64', targetName: 'hv', target, artifact, imageName: 'copr-x86_64-20260101_000001' });
    // What an upload cut by the cancel leaves: the volume exists, its data does not.
    await virsh('vol-create-as', pool.name, 'copr-x86_64-20260101_000001-qcow2', '1M', '--format', 'raw');
    await virsh('vol-create-as', pool.name, 'copr-x86_64-20251201_000000', '1M', '--format', 'raw');

    const removed = await driver.deleteRelease(target, scope(['copr-x86_64-20260101_000001', 'copr-x86_64-20260101_000001-qcow2']));
    expect(removed.sort()).toEqual([
      `volume ${host.address}:${pool.name}/copr-x86_64-20260101_000001`,
      `volume ${host.address}:${pool.name}/copr-x86_64-20260101_000001-qcow2`,
    ]);
    const left = await virsh('vol-list', pool.name);
    expect(left).toContain('copr-x86_64-20251201_000000');
    expect(left).not.toContain('copr-x86_64-20260101_000001');
    // Twice is harmless: nothing left to delete.
    expect(await driver.deleteRelease(target, scope(['copr-x86_64-20260101_000001']))).toEqual([]);
  });

  it('directory: deletes the image, its sidecar and partial copies, and leaves other files', async () => {
    const out = path.join(dir, 'images');
    mkdirSync(out, { recursive: true });
    for (const f of ['copr-x86_64-20260101_000001.raw', 'copr-x86_64-20260101_000001.raw.sha256', 'copr-x86_64-20260101_000001.raw.partial-123-456', 'copr-x86_64-20251201_000000.raw'])
      writeFileSync(path.join(out, f), 'x');
    const target = Target.parse({ kind: 'directory', path: out });
    const removed = await createDirectoryTarget().deleteRelease(target as never, scope(['copr-x86_64-20260101_000001']));
    expect(removed).toHaveLength(3);
    expect(readdirSync(out)).toEqual(['copr-x86_64-20251201_000000.raw']);
    expect(existsSync(path.join(out, 'copr-x86_64-20260101_000001.raw'))).toBe(false);
  });
});
