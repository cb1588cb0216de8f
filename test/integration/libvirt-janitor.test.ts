// What the janitor finds of libvirt builders whose names hold only a hashed head of a long release id, on the real
// libvirtd through a real sshd "hypervisor" (rig host 127.0.0.11). Domains are defined, not started (VMs cannot boot
// here). A domain's <metadata> carries the full release id, so the janitor can attribute a domain whose release
// Temporal has forgotten, but only when that id names back to exactly this domain.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { findStaleBuilders } from '../../activities/janitor/stale-builders';
import { createLibvirtBuilderProvider, type LibvirtBuilder } from '../../activities/libvirt/builder-vm';
import { domainXml } from '../../activities/libvirt/domain-xml';
import { resourceName } from '../../activities/naming';
import { Builder } from '../../config/schema';
import { releaseStateFrom } from '../../worker/wiring';
import { createPool, startLibvirtd, virsh, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { connectRig, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const hypervisor = rig.sshHosts[0]!;
const definition = 'copr-builder-for-the-long-named-farm';
const idOf = (label: string) => `${definition}-${label}-${randomUUID().slice(0, 6)}`;
let libvirtd: Libvirtd;
let pool: RigPool;
let dir: string;
let conn: Awaited<ReturnType<typeof connectRig>>;
const defined: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-libvirt-janitor-'));
  libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
  pool = await createPool(dir, 'janitor');
  conn = await connectRig(rig, 'libvirt-janitor');
});
afterAll(async () => {
  for (const name of defined) await virsh('undefine', name).catch(() => undefined);
  await pool?.remove();
  await libvirtd?.stop();
  await conn?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A builder's domain and disk as acquire leaves them, with `metadataId` in <metadata> (a forged one if it differs). */
async function leftBuilder(releaseId: string, metadataId = releaseId, withDomain = true): Promise<string> {
  const name = resourceName(releaseId, 'x86_64', 'builder');
  await virsh('vol-create-as', '--pool', pool.name, '--name', `${name}.qcow2`, '--capacity', '1M', '--format', 'qcow2');
  if (!withDomain) return name;
  const file = path.join(dir, `${name}.xml`);
  writeFileSync(file, domainXml({ name, arch: 'x86_64', memoryMiB: 256, vcpus: 1, pool: pool.name, volume: `${name}.qcow2`, network: 'default', releaseId: metadataId, domainType: 'qemu' }));
  await virsh('define', file);
  defined.push(name);
  return name;
}

describe('the janitor on libvirt builders with hashed names', () => {
  it("attributes a domain and its disk by the domain's metadata, and leaves alone what names back to no release", async () => {
    const forgotten = idOf('forgotten'); // a release Temporal has no workflow for (past retention)
    const forged = idOf('forged');
    const orphan = idOf('orphan');
    const names = {
      forgotten: await leftBuilder(forgotten),
      forged: await leftBuilder(forged, idOf('other')),
      orphan: await leftBuilder(orphan, orphan, false),
    };
    const builder = Builder.parse({
      provider: 'libvirt',
      host: hypervisor.address,
      hypervisorSsh: { port: hypervisor.port, privateKeyPath: rig.privateKeyPath },
      pool: pool.name,
      baseVolume: 'base.raw',
      ssh: { privateKeyPath: rig.privateKeyPath },
    }) as LibvirtBuilder;
    const definitionsDir = path.join(dir, 'definitions');
    mkdirSync(definitionsDir, { recursive: true });
    writeFileSync(
      path.join(definitionsDir, 'long.yaml'),
      stringify({
        name: definition,
        source: { image: 'quay.io/example/builder:latest' },
        architectures: { x86_64: { builder, types: ['raw'], targets: ['local'] } },
        targets: { local: { kind: 'directory', path: path.join(dir, 'images') } },
        approval: { approvers: ['copr-admin'] },
      }),
    );
    // A definition the janitor cannot read is reported, not silently skipped (its builders could be leaking).
    writeFileSync(path.join(definitionsDir, 'broken.yaml'), stringify({ name: 'broken', architectures: {} }));
    const provider = createLibvirtBuilderProvider();
    const found: Awaited<ReturnType<typeof findStaleBuilders>> = await new MockActivityEnvironment().run(() =>
      findStaleBuilders({ definitionsDir, providers: { libvirt: provider }, releases: releaseStateFrom(conn.client) }, { ttlMs: 86400e3, now: new Date().toISOString() }),
    );
    // The libvirtd is the machine's: other test runs may have domains of their own there.
    const ours = (id: string) => Object.values(names).some((n) => id === n || id === `${pool.name}/${n}.qcow2`);
    const stale = found.stale.filter((s) => ours(s.resource.id));
    const kept = found.kept.filter((k) => ours(k.id));

    expect(stale.map((s) => [s.resource.kind, s.resource.id, s.resource.releaseId, s.reason]).sort()).toEqual([
      ['libvirt-domain', names.forgotten, forgotten, `release ${forgotten} is unknown to Temporal`],
      ['libvirt-volume', `${pool.name}/${names.forgotten}.qcow2`, forgotten, `release ${forgotten} is unknown to Temporal`],
    ]);
    expect(found.kept).toContainEqual(
      expect.objectContaining({ kind: 'definition', id: path.join(definitionsDir, 'broken.yaml'), reason: expect.stringMatching(/^not read, so its builders were not looked for: /) }),
    );
    const keptIds = kept.filter((k) => k.releaseId === undefined).map((k) => k.id).sort();
    expect(keptIds).toEqual([names.forged, `${pool.name}/${names.forged}.qcow2`, `${pool.name}/${names.orphan}.qcow2`].sort());

    for (const item of stale) await provider.deleteOwned!(builder, item.resource);
    defined.splice(defined.indexOf(names.forgotten), 1);
    expect(await pool.volumes()).not.toContain(`${names.forgotten}.qcow2`);
    expect(await pool.volumes()).toContain(`${names.orphan}.qcow2`);
  });
});
