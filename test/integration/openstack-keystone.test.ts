// The openstack target's production auth path, end to end with real servers: a real Keystone issues the token
// (password auth from <P>_* variables), its catalog names the Glance endpoint, and a real glance-api validates the
// token through keystonemiddleware (the `keystone` paste flavour) before applying its role-based policy.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Target } from '../../config/schema';
import { issueToken } from '../../activities/openstack/keystone';
import { createOpenstackTarget, type OpenstackTarget } from '../../activities/openstack/target';
import type { StagedArtifact } from '../../activities/types';
import { startGlance, type Glance } from '../../scripts/servers/glance';
import { KEYSTONE_ADMIN, startKeystone, type Keystone } from '../../scripts/servers/keystone';
import { freePort } from '../../scripts/servers/tools';
import { MiB, sha256, sparseRaw } from './libvirt-helpers';

let keystone: Keystone;
let glance: Glance;
let dir: string;
let env: NodeJS.ProcessEnv;
let projectId: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-keystone-'));
  // Both set up at once: glance only talks to Keystone when the first request arrives.
  const port = await freePort();
  [keystone, glance] = await Promise.all([
    startKeystone(path.join(dir, 'keystone'), { port }),
    startGlance(path.join(dir, 'glance'), { keystone: { authUrl: `http://127.0.0.1:${port}/v3`, ...KEYSTONE_ADMIN } }),
  ]);
  await keystone.addImageEndpoint(glance.address);
  ({ projectId } = await keystone.addUser({ project: 'images', username: 'bootc', password: 's3cret-bootc', roles: ['member', 'reader'] }));
  await keystone.addUser({ project: 'images', username: 'viewer', password: 's3cret-viewer', roles: ['reader'] });
  env = { OSUOSL_USERNAME: 'bootc', OSUOSL_PASSWORD: 's3cret-bootc', OSUOSL_PROJECT_NAME: 'images' };
}, 180_000);
afterAll(async () => {
  await glance?.stop();
  await keystone?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const target = (over: Record<string, unknown> = {}): OpenstackTarget =>
  Target.parse({ kind: 'openstack', authUrl: keystone.authUrl, credentialsEnv: 'OSUOSL', ...over }) as OpenstackTarget;
const ctx = { releaseId: 'rel-k', targetName: 'osuosl' };

describe('openstack target with Keystone', () => {
  it('authenticates with a password, finds Glance in the catalog, publishes, and the image reads back byte-identical', async () => {
    const driver = createOpenstackTarget({ env, pollIntervalMs: 100 });
    const check = await driver.check(target(), ctx);
    expect(check).toMatchObject({ ok: true });
    expect(check.messages).toContain(`Authenticated (keystone); image endpoint ${glance.address}.`);

    const file = sparseRaw(path.join(dir, 'k.raw'), 32 * MiB, [[0, MiB], [20 * MiB, MiB]]);
    const artifact: StagedArtifact = { arch: 'x86_64', type: 'raw', path: file, size: statSync(file).size, dataBytes: 2 * MiB, sha256: sha256(file), stagingQueue: 'q' };
    const [candidate] = await driver.publish({ releaseId: 'rel-k', arch: 'x86_64', targetName: 'osuosl', target: target(), artifact, imageName: 'fedora-x86_64-20260101_000001' });

    const { token } = await issueToken({ authUrl: keystone.authUrl, username: 'bootc', password: 's3cret-bootc', projectName: 'images', userDomainName: 'Default', projectDomainName: 'Default' }, 'test');
    const img = await (await fetch(`${glance.address}/v2/images/${candidate.imageId}`, { headers: { 'X-Auth-Token': token } })).json();
    expect(img).toMatchObject({ status: 'active', owner: projectId, bootc_release_id: 'rel-k' });
    const data = Buffer.from(await (await fetch(`${glance.address}/v2/images/${candidate.imageId}/file`, { headers: { 'X-Auth-Token': token } })).arrayBuffer());
    expect(data.equals(readFileSync(file))).toBe(true);

    // A pre-issued token with an explicit image URL reaches the same image, and deletes it.
    const byToken = createOpenstackTarget({ env: { OSUOSL_TOKEN: token } });
    const tokenTarget = Target.parse({ kind: 'openstack', imageUrl: glance.address, tokenEnv: 'OSUOSL_TOKEN' }) as OpenstackTarget;
    expect(await byToken.check(tokenTarget, ctx)).toMatchObject({ ok: true });
    await byToken.delete(tokenTarget, candidate);
    expect((await fetch(`${glance.address}/v2/images/${candidate.imageId}`, { headers: { 'X-Auth-Token': token } })).status).toBe(404);
  });

  it('check() reports a wrong password naming the credentialsEnv prefix, and never echoes the password', async () => {
    const result = await createOpenstackTarget({ env: { ...env, OSUOSL_PASSWORD: 'wrong-password' } }).check(target(), ctx);
    expect(result.ok).toBe(false);
    expect(result.messages.at(-1)).toMatch(/keystone .* refused user "bootc" for project "images" \(401.*\); fix targets\.osuosl\.credentialsEnv \(OSUOSL_\*\)/);
    expect(JSON.stringify(result)).not.toContain('wrong-password');
  });

  it('check() reports a user whose role cannot create images, and missing variables by name', async () => {
    const viewer = await createOpenstackTarget({ env: { OSUOSL_USERNAME: 'viewer', OSUOSL_PASSWORD: 's3cret-viewer', OSUOSL_PROJECT_NAME: 'images' } }).check(target(), ctx);
    expect(viewer.ok).toBe(false);
    expect(viewer.messages.at(-1)).toMatch(/roles reader; creating images needs member/);

    const missing = await createOpenstackTarget({ env: {} }).check(target(), ctx);
    expect(missing.messages.at(-1)).toMatch(/OSUOSL_USERNAME is not set on the worker; see targets\.osuosl\.credentialsEnv/);
  });
});
