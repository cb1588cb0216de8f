// image-map-file on `host:/path`: the farm's inventory lives on a host, reached over real OpenSSH (a rig sshd) with
// its host key pinned. The map is read, merged and replaced by a rename, keeping everything the release did not build.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createActivities } from '../../activities';
import { createActivationDrivers } from '../../activities/activation';
import type { Candidate } from '../../activities/types';
import { parsePlan } from '../../config/load';
import { createActivityDeps } from '../../worker/wiring';

const rig = inject('rig');
const host = rig.sshHosts[0]!;
const otherHost = rig.sshHosts[1]!;
const worker = createActivityDeps(
  { definitionsDir: rig.dir, stagingDir: rig.dir, stateDir: rig.dir, stagingQueue: 'q@w' },
  { state: async () => 'open' as const, idsStartingWith: async () => [] },
);
const { activate } = createActivities(worker);

const inventory = {
  copr_builder_images: {
    aws: { x86_64: 'ami-x86-old', aarch64: 'ami-arm-old' },
    ibm_cloud: { s390x: { us_east: 'r014-old' } },
    hypervisor: { ppc64le: 'copr-builder-ppc64le-old' },
  },
  other_var: 'kept',
};

const armAmi: Candidate = {
  arch: 'aarch64',
  target: 'aws',
  kind: 'aws',
  region: 'us-east-1',
  imageId: 'ami-arm-new',
  name: 'copr-builder-aarch64-20261126_120000',
  type: 'ami',
  size: 10,
  sha256: 'ab',
};

function plan(releaseId: string, file: string, hostKey: string | undefined) {
  return parsePlan({
    releaseId,
    stamp: '20261126_120000',
    arches: ['aarch64'],
    definition: {
      name: 'copr-builder',
      source: { image: 'quay.io/x/y:1' },
      architectures: { aarch64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['ami'], targets: ['aws'] } },
      targets: { aws: { kind: 'aws', region: 'us-east-1' } },
      approval: { approvers: ['a'] },
      channels: {
        staging: {
          activation: [
            {
              kind: 'image-map-file',
              path: `${host.address}:${file}`,
              ssh: { port: host.port, privateKeyPath: rig.privateKeyPath, ...(hostKey ? { hostKey } : {}) },
            },
          ],
        },
      },
    },
  });
}

function seeded(name: string): string {
  const dir = path.join(host.root, 'inventory', name);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'copr.yaml');
  writeFileSync(file, stringify(inventory));
  return file;
}

describe('image map on host:/path', () => {
  it('merges into the file on the host over SSH, keeps every other entry, and records what it replaced', async () => {
    const file = seeded('merge');
    const record = await activate({ plan: plan('ssh-map-1', file, host.hostKey), channel: 'staging', candidates: [armAmi], approvedBy: 'a' });

    const doc = parse(readFileSync(file, 'utf8'));
    expect(doc.other_var).toBe('kept');
    expect(doc.copr_builder_images).toEqual({ ...inventory.copr_builder_images, aws: { x86_64: 'ami-x86-old', aarch64: 'ami-arm-new' } });
    expect(record.replaced).toEqual([
      { target: `root@${host.address}:${file}`, entries: [{ path: ['aws', 'aarch64'], previous: 'ami-arm-old', value: 'ami-arm-new' }] },
    ]);
    // Written beside and renamed: no temporary file left (the lock file stays), and nothing written on the worker under the host's name.
    expect(readdirSync(path.dirname(file)).sort()).toEqual(['.copr.yaml.lock', 'copr.yaml']);
    expect(existsSync(`${host.address}:${file}`)).toBe(false);
  });

  it('loses no release when several activate into the same map at once', async () => {
    const file = seeded('concurrent');
    const arches = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
    const records = await Promise.all(
      arches.flatMap((arch) =>
        [1, 2].map((n) => {
          const releaseId = `ssh-map-${arch}-${n}`;
          const p = { ...plan(releaseId, file, host.hostKey), arches: [arch] };
          return activate({ plan: p, channel: 'staging', candidates: [{ ...armAmi, arch, target: `t${n}`, imageId: `ami-${arch}-${n}` }], approvedBy: 'a' });
        }),
      ),
    );
    const images = parse(readFileSync(file, 'utf8')).copr_builder_images;
    for (const n of [1, 2]) expect(images[`t${n}`]).toEqual(Object.fromEntries(arches.map((arch) => [arch, `ami-${arch}-${n}`])));
    expect(images.aws).toEqual(inventory.copr_builder_images.aws);
    expect(records.flatMap((r) => r.replaced[0]!.entries)).toHaveLength(8);
  });

  it('refuses a host whose key is not the pinned one, and leaves the map alone', async () => {
    const file = seeded('wrong-key');
    const before = readFileSync(file, 'utf8');
    await expect(
      activate({ plan: plan('ssh-map-2', file, otherHost.hostKey), channel: 'staging', candidates: [armAmi], approvedBy: 'a' }),
    ).rejects.toThrow(/host key changed/);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('requires the host key in the definition, naming the field', () => {
    expect(() => plan('ssh-map-3', '/srv/inventory/copr.yaml', undefined)).toThrow(/channels\.staging\.activation\.0\.ssh\.hostKey: required/);
  });
});

describe('image map on host:/path: preflight check', () => {
  const driver = createActivationDrivers({ stateDir: rig.dir })['image-map-file'];
  const where = 'channels.staging.activation.0';
  const check = (file: string, hostKey: string) => {
    const p = plan('ssh-map-check', file, hostKey);
    return driver.check(p.definition.channels.staging!.activation[0] as never, { plan: p, where });
  };

  it('passes when the host answers with the pinned key and the map\'s directory is there and writable, and writes nothing', async () => {
    const file = seeded('check');
    const result = await check(file, host.hostKey);
    expect(result.ok).toBe(true);
    expect(result.messages).toContain(`The host answered with the pinned key and ${path.dirname(file)} is writable.`);
    expect(readdirSync(path.dirname(file))).toEqual(['copr.yaml']);
  });

  it('fails for a directory the host does not have, and for a host with another key', async () => {
    const missing = path.join(host.root, 'inventory', 'no-such-dir', 'copr.yaml');
    const result = await check(missing, host.hostKey);
    expect(result).toMatchObject({ ok: false, messages: [expect.any(String), `directory ${path.dirname(missing)} does not exist on the host; create it or fix path`] });
    expect(existsSync(path.dirname(missing))).toBe(false);
    const wrongKey = await check(seeded('check-key'), otherHost.hostKey);
    expect(wrongKey.ok).toBe(false);
    expect(wrongKey.messages.at(-1)).toMatch(/host key changed/);
  });
});
