// The libvirt publish target against the real libvirtd, through a real sshd "hypervisor" (rig host 127.0.0.11):
// virsh runs on the far side of SSH exactly as it would on a hypervisor.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Target } from '../../config/schema';
import { createLibvirtTarget, type LibvirtTarget } from '../../activities/libvirt/target';
import type { Candidate, PublishRequest, StagedArtifact } from '../../activities/types';
import { createPool, startLibvirtd, virsh, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { tool } from '../../scripts/servers/tools';
import { MiB, runKillableChild, sha256, sparseRaw } from './libvirt-helpers';

const rig = inject('rig');
const host = rig.sshHosts[0];
let libvirtd: Libvirtd;
let pool: RigPool;
let dir: string;

beforeAll(async () => {
  // Not under rig.dir: another vitest run in the same tree wipes .rig/last when it starts.
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-libvirt-target-'));
  libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
  pool = await createPool(dir, 'target');
});
afterAll(async () => {
  await pool?.remove();
  await libvirtd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const target = (poolName = pool.name, format: 'raw' | 'qcow2' = 'raw'): LibvirtTarget =>
  Target.parse({ kind: 'libvirt', hosts: [host.address], ssh: { port: host.port, privateKeyPath: rig.privateKeyPath }, pool: poolName, format }) as LibvirtTarget;

function artifact(file: string, type: StagedArtifact['type'] = 'raw'): StagedArtifact {
  const st = statSync(file);
  return { arch: 'x86_64', type, path: file, size: st.size, dataBytes: st.blocks * 512, sha256: sha256(file), stagingQueue: 'q' };
}

const request = (t: LibvirtTarget, a: StagedArtifact, imageName: string): PublishRequest & { target: LibvirtTarget } => ({
  releaseId: 'r1',
  arch: 'x86_64',
  targetName: 'hypervisors',
  target: t,
  artifact: a,
  imageName,
});

/** Publish inside a mock activity, collecting heartbeats. */
async function publish(req: PublishRequest & { target: LibvirtTarget }, heartbeatDetails?: unknown) {
  const env = new MockActivityEnvironment(heartbeatDetails ? { heartbeatDetails } : {});
  const beats: any[] = [];
  env.on('heartbeat', (d) => beats.push(d));
  const candidates = (await env.run(() => createLibvirtTarget().publish(req))) as Candidate[];
  return { candidates, beats, last: beats[beats.length - 1]?.hosts?.[host.address] };
}

function download(poolName: string, name: string): string {
  const out = path.join(dir, `${name}.download`);
  execFileSync(tool('virsh'), ['-q', '-c', libvirtd.uri, 'vol-download', '--pool', poolName, name, out]);
  return out;
}

describe('libvirt publish target', () => {
  it('uploads a sparse raw image through SSH sending only its data extents, and reads back byte-identical', async () => {
    const file = sparseRaw(path.join(dir, 'sparse.raw'), 128 * MiB, [[0, MiB], [40 * MiB, 3 * MiB], [100 * MiB, 2 * MiB + 5]]);
    const name = 'fedora-x86_64-20260101_000001';
    const { candidates, last } = await publish(request(target(), artifact(file), name));

    expect(candidates).toEqual([
      expect.objectContaining({ kind: 'libvirt', imageId: `${host.address}:${pool.name}/${name}`, name, type: 'raw', size: 128 * MiB, sha256: sha256(file) }),
    ]);
    expect(last).toMatchObject({ state: 'done', extents: 3, extentsDone: 3 });
    // Three 64 KiB-aligned extents (~6 MiB) travelled, not 128 MiB.
    expect(last.bytesDone).toBeLessThan(7 * MiB);
    expect(readFileSync(download(pool.name, name)).equals(readFileSync(file))).toBe(true);
    // The volume on the hypervisor is sparse too.
    expect(statSync(path.join(pool.dir, name)).blocks * 512).toBeLessThan(8 * MiB);
  });

  it('converts a qcow2 artifact to raw on the worker for a raw pool', async () => {
    const raw = sparseRaw(path.join(dir, 'conv.raw'), 64 * MiB, [[MiB, 2 * MiB]]);
    const qcow2 = path.join(dir, 'disk.qcow2');
    execFileSync(tool('qemu-img'), ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    const name = 'fedora-x86_64-20260101_000002';
    const { candidates } = await publish(request(target(), artifact(qcow2, 'qcow2'), name));
    expect(candidates[0]).toMatchObject({ type: 'raw', size: 64 * MiB, sha256: sha256(raw) });
    expect(readFileSync(download(pool.name, name)).equals(readFileSync(raw))).toBe(true);
  });

  it('keeps a qcow2 image as qcow2 for a qcow2 target, and libvirt sees it as qcow2', async () => {
    const raw = sparseRaw(path.join(dir, 'q.raw'), 32 * MiB, [[0, MiB]]);
    const qcow2 = path.join(dir, 'q.qcow2');
    execFileSync(tool('qemu-img'), ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    const name = 'fedora-x86_64-20260101_000003';
    await publish(request(target(pool.name, 'qcow2'), artifact(qcow2, 'qcow2'), name));
    expect(await virsh('vol-dumpxml', '--pool', pool.name, name)).toMatch(/<format type='qcow2'\/>/);
    expect(readFileSync(download(pool.name, name)).equals(readFileSync(qcow2))).toBe(true);
  });

  it('publishing twice leaves one volume and sends nothing the second time', async () => {
    const file = sparseRaw(path.join(dir, 'twice.raw'), 32 * MiB, [[4 * MiB, MiB]]);
    const name = 'fedora-x86_64-20260101_000004';
    await publish(request(target(), artifact(file), name));
    const again = await publish(request(target(), artifact(file), name));
    expect(again.last).toMatchObject({ state: 'done', bytesDone: 0 });
    expect((await pool.volumes()).filter((v) => v === name)).toHaveLength(1);
  });

  it('resumes after the worker is SIGKILLed mid-upload, without a second volume or re-sending finished extents', async () => {
    // Eight 2 MiB extents, far enough apart not to merge.
    const file = sparseRaw(path.join(dir, 'killed.raw'), 128 * MiB, Array.from({ length: 8 }, (_, i) => [i * 15 * MiB, 2 * MiB] as [number, number]));
    const name = 'fedora-x86_64-20260101_000005';
    const req = request(target(), artifact(file), name);
    const child = await runKillableChild(
      dir,
      `import { connectHypervisor, createLibvirtTarget } from '${path.resolve(__dirname, '../../activities/libvirt/target')}';`,
      // A slow link: each extent starts 300 ms late, so the kill lands between extents, not after the last one.
      `const connect: typeof connectHypervisor = async (...a) => {
         const r = await connectHypervisor(...a);
         const send = r.virshStream.bind(r);
         r.virshStream = async (...s) => { await new Promise((ok) => setTimeout(ok, 300)); return send(...s); };
         return r;
       };
       await env.run(() => createLibvirtTarget({ connect }).publish(args));`,
      req,
      (beat) => beat.hosts?.[host.address]?.extentsDone >= 2,
    );
    expect(child.killed, child.stderr).toBe(true);
    const lastBeat = child.beats[child.beats.length - 1];
    const done = lastBeat.hosts[host.address].extentsDone as number;
    expect(done).toBeGreaterThanOrEqual(2);
    expect(done).toBeLessThan(8);

    const retry = await publish(req, lastBeat);
    expect(retry.last).toMatchObject({ state: 'done', extentsDone: 8 });
    // Only what was left travelled: the finished extents were not sent again.
    expect(retry.last.bytesDone - lastBeat.hosts[host.address].bytesDone).toBeLessThanOrEqual((8 - done) * 2 * MiB);
    expect((await pool.volumes()).filter((v) => v === name)).toHaveLength(1);
    expect(readFileSync(download(pool.name, name)).equals(readFileSync(file))).toBe(true);
  });

  it('reports a missing pool in check() naming targets.<name>.pool, and publish fails without retry', async () => {
    const driver = createLibvirtTarget();
    const result = await driver.check(target('no-such-pool'), { releaseId: 'r1', targetName: 'hypervisors' });
    expect(result.ok).toBe(false);
    expect(result.messages.join('\n')).toMatch(/storage pool "no-such-pool" does not exist; .*targets\.hypervisors\.pool/);

    const good = await driver.check(target(), { releaseId: 'r1', targetName: 'hypervisors' });
    expect(good).toMatchObject({ ok: true });
    expect(good.messages.at(-1)).toBe('Upload conditions met.');

    const file = sparseRaw(path.join(dir, 'nopool.raw'), 8 * MiB, [[0, MiB]]);
    const err = await publish(request(target('no-such-pool'), artifact(file), 'x-x86_64-20260101_000006')).catch((e) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.nonRetryable).toBe(true);
  });

  it('reports refused SSH credentials in check()', async () => {
    const wrongKey = path.join(dir, 'wrong_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
    const t = { ...target(), ssh: { ...target().ssh, privateKeyPath: wrongKey } };
    const result = await createLibvirtTarget().check(t, { releaseId: 'r1', targetName: 'hypervisors' });
    expect(result.ok).toBe(false);
    expect(result.messages.join('\n')).toMatch(/SSH refused the key .*targets\.hypervisors\.ssh/);
  });

  it('delete removes the volume and is idempotent', async () => {
    const file = sparseRaw(path.join(dir, 'del.raw'), 8 * MiB, [[0, MiB]]);
    const name = 'fedora-x86_64-20260101_000007';
    const { candidates } = await publish(request(target(), artifact(file), name));
    const driver = createLibvirtTarget();
    await driver.delete(target(), candidates[0]);
    await driver.delete(target(), candidates[0]);
    expect(await pool.volumes()).not.toContain(name);
  });
});
