// The openstack publish target against a real glance-api (SQLite + file store). Identity comes from the fakeauth
// headers (testIdentityHeaders), so projects, ownership and the role-based policy are Glance's own; the Keystone
// path is covered in openstack-keystone.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Target } from '../../config/schema';
import { createOpenstackTarget, type OpenstackTarget } from '../../activities/openstack/target';
import type { Candidate, PublishRequest, StagedArtifact } from '../../activities/types';
import { identityHeaders, startGlance, type Glance } from '../../scripts/servers/glance';
import { tool } from '../../scripts/servers/tools';
import { MiB, runKillableChild, sha256, sparseRaw } from './libvirt-helpers';

let glance: Glance;
let dir: string;

beforeAll(async () => {
  // Not under rig.dir: another vitest run in the same tree wipes .rig/last when it starts.
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-glance-'));
  glance = await startGlance(path.join(dir, 'glance'));
});
afterAll(async () => {
  await glance?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const PROJECT = 'proj-images';
const target = (roles = ['member', 'reader'], project = PROJECT): OpenstackTarget =>
  Target.parse({ kind: 'openstack', imageUrl: glance.address, testIdentityHeaders: { userId: 'u1', projectId: project, roles } }) as OpenstackTarget;

function artifact(file: string, type: StagedArtifact['type'] = 'raw'): StagedArtifact {
  const st = statSync(file);
  return { arch: 'ppc64le', type, path: file, size: st.size, dataBytes: st.blocks * 512, sha256: sha256(file), stagingQueue: 'q' };
}

const request = (t: OpenstackTarget, a: StagedArtifact, imageName: string): PublishRequest & { target: OpenstackTarget } => ({
  releaseId: 'rel-1',
  arch: 'ppc64le',
  targetName: 'osuosl',
  target: t,
  artifact: a,
  imageName,
});

async function publish(req: PublishRequest & { target: OpenstackTarget }) {
  const env = new MockActivityEnvironment();
  const beats: any[] = [];
  env.on('heartbeat', (d) => beats.push(d));
  const candidates = (await env.run(() => createOpenstackTarget({ pollIntervalMs: 100 }).publish(req))) as Candidate[];
  return { candidates, beats };
}

const api = (p: string, init: RequestInit = {}, project = PROJECT) =>
  fetch(`${glance.address}${p}`, { ...init, headers: { ...identityHeaders(project), ...(init.headers as Record<string, string>) } });

async function imagesNamed(name: string) {
  return ((await (await api(`/v2/images?name=${name}`)).json()) as { images: any[] }).images;
}

describe('openstack (Glance) publish target', () => {
  it('creates the image, streams the raw file and reads it back byte-identical from Glance', async () => {
    const file = sparseRaw(path.join(dir, 'a.raw'), 64 * MiB, [[0, MiB], [30 * MiB, 2 * MiB]]);
    const name = 'fedora-ppc64le-20260101_000001';
    const { candidates, beats } = await publish(request(target(), artifact(file), name));
    expect(candidates).toEqual([expect.objectContaining({ kind: 'openstack', name, type: 'raw', size: 64 * MiB, sha256: sha256(file) })]);
    expect(beats.at(-1)).toMatchObject({ imageId: candidates[0].imageId, state: 'active', bytesSent: 64 * MiB });

    const img = await (await api(`/v2/images/${candidates[0].imageId}`)).json();
    expect(img).toMatchObject({
      name,
      status: 'active',
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'private',
      owner: PROJECT,
      tags: ['bootc-release'],
      bootc_release_id: 'rel-1',
      bootc_release_arch: 'ppc64le',
      bootc_release_sha256: sha256(file),
    });
    const data = Buffer.from(await (await api(`/v2/images/${candidates[0].imageId}/file`)).arrayBuffer());
    expect(data.equals(readFileSync(file))).toBe(true);
  });

  it('publishes a qcow2 artifact as a qcow2 image', async () => {
    const raw = sparseRaw(path.join(dir, 'q.raw'), 32 * MiB, [[MiB, MiB]]);
    const qcow2 = path.join(dir, 'q.qcow2');
    execFileSync(tool('qemu-img'), ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    const { candidates } = await publish(request(target(), artifact(qcow2, 'qcow2'), 'fedora-s390x-20260101_000002'));
    expect(candidates[0]).toMatchObject({ type: 'qcow2', sha256: sha256(qcow2) });
    const data = Buffer.from(await (await api(`/v2/images/${candidates[0].imageId}/file`)).arrayBuffer());
    expect(data.equals(readFileSync(qcow2))).toBe(true);
  });

  it('publishing twice leaves one image and uploads nothing the second time', async () => {
    const file = sparseRaw(path.join(dir, 'twice.raw'), 16 * MiB, [[0, MiB]]);
    const name = 'fedora-ppc64le-20260101_000003';
    const first = await publish(request(target(), artifact(file), name));
    const second = await publish(request(target(), artifact(file), name));
    expect(second.candidates[0].imageId).toBe(first.candidates[0].imageId);
    expect(second.beats.every((b) => b.bytesSent === 0 || b.bytesSent === undefined)).toBe(true);
    expect(await imagesNamed(name)).toHaveLength(1);
  });

  it('uploads into the same image after the worker is SIGKILLed mid-upload, never a second one', async () => {
    const file = sparseRaw(path.join(dir, 'killed.raw'), 128 * MiB, [[0, 4 * MiB], [100 * MiB, 4 * MiB]]);
    const name = 'fedora-ppc64le-20260101_000004';
    const req = request(target(), artifact(file), name);
    const child = await runKillableChild(
      dir,
      `import { createOpenstackTarget } from '${path.resolve(__dirname, '../../activities/openstack/target')}';`,
      // A slow link: 20 ms per MiB, so the kill lands mid-stream.
      `env.on('heartbeat', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20));
       await env.run(() => createOpenstackTarget().publish(args));`,
      req,
      (beat) => beat.bytesSent >= 16 * MiB,
    );
    expect(child.killed, child.stderr).toBe(true);
    const before = await imagesNamed(name);
    expect(before).toHaveLength(1);
    expect(['queued', 'saving']).toContain(before[0].status);

    const { candidates, beats } = await publish(req);
    expect(candidates[0].imageId).toBe(before[0].id);
    // The data went again, into the image the killed worker created.
    expect(beats.some((b) => b.state === 'uploading' && b.bytesSent > 0)).toBe(true);
    const after = await imagesNamed(name);
    expect(after).toHaveLength(1);
    expect(after[0].status).toBe('active');
    const data = Buffer.from(await (await api(`/v2/images/${candidates[0].imageId}/file`)).arrayBuffer());
    expect(data.equals(readFileSync(file))).toBe(true);
  });

  it('check() reports refused credentials and a project role that cannot create images', async () => {
    const driver = createOpenstackTarget({ env: { GLANCE_TOKEN: 'not-a-token' } });
    const badToken = Target.parse({ kind: 'openstack', imageUrl: glance.address, tokenEnv: 'GLANCE_TOKEN' }) as OpenstackTarget;
    const refused = await driver.check(badToken, { releaseId: 'rel-1', targetName: 'osuosl' });
    expect(refused.ok).toBe(false);
    expect(refused.messages.at(-1)).toMatch(/glance refused the credentials .*401.*targets\.osuosl/);

    const reader = await driver.check(target(['reader']), { releaseId: 'rel-1', targetName: 'osuosl' });
    expect(reader.ok).toBe(false);
    expect(reader.messages.at(-1)).toMatch(/roles reader; creating images needs member/);

    const good = await driver.check(target(), { releaseId: 'rel-1', targetName: 'osuosl' });
    expect(good).toEqual({ ok: true, messages: expect.arrayContaining(['Upload conditions met.']) });
  });

  it('a reader cannot publish: Glance forbids the create and the failure is not retried', async () => {
    const file = sparseRaw(path.join(dir, 'ro.raw'), 8 * MiB, [[0, MiB]]);
    const err = await publish(request(target(['reader']), artifact(file), 'fedora-ppc64le-20260101_000005')).catch((e) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ nonRetryable: true, type: 'PermissionError' });
    expect(await imagesNamed('fedora-ppc64le-20260101_000005')).toHaveLength(0);
  });

  it('delete removes the image and is idempotent; another project never sees it', async () => {
    const file = sparseRaw(path.join(dir, 'del.raw'), 8 * MiB, [[0, MiB]]);
    const name = 'fedora-ppc64le-20260101_000006';
    const { candidates } = await publish(request(target(), artifact(file), name));
    expect((await api(`/v2/images/${candidates[0].imageId}`, {}, 'other-project')).status).toBe(404);
    const driver = createOpenstackTarget();
    await driver.delete(target(), candidates[0]);
    await driver.delete(target(), candidates[0]);
    expect((await api(`/v2/images/${candidates[0].imageId}`)).status).toBe(404);
    expect(await imagesNamed(name)).toHaveLength(0);
  });
});
