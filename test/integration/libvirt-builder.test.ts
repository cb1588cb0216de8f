// The libvirt builder provider. VMs cannot boot on this machine (no KVM, no DHCP on a libvirt network), so:
// - the STORAGE side runs for real: vol-* and pool-* commands go over a real sshd (127.0.0.11) to the real libvirtd,
//   which clones the base volume as a qcow2 overlay, and deletes it;
// - the DOMAIN side (define, start, domifaddr, destroy, undefine, list, net-info) is answered by a recording runner
//   that behaves like virsh (same exit codes and error texts) and keeps the argv sequence, which the tests assert;
// - the "VM" address it hands out is another rig sshd (127.0.0.12), so waiting for SSH and pinning the host key
//   are real too;
// - separately, the generated domain XML is defined on the real libvirtd (TCG domain type) to prove it is valid.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Builder } from '../../config/schema';
import { createLibvirtBuilderProvider, type LibvirtBuilder } from '../../activities/libvirt/builder-vm';
import { domainXml } from '../../activities/libvirt/domain-xml';
import { openHypervisor } from '../../activities/libvirt/hypervisor';
import type { HypervisorRunner } from '../../activities/libvirt/virsh';
import { resourceName } from '../../activities/types';
import { createPool, startLibvirtd, virsh, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { tool } from '../../scripts/servers/tools';

const rig = inject('rig');
const hypervisor = rig.sshHosts[0];
const vm = rig.sshHosts[1];
let libvirtd: Libvirtd;
let pool: RigPool;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-libvirt-builder-'));
  libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
  pool = await createPool(dir, 'builder');
  await virsh('vol-create-as', '--pool', pool.name, '--name', 'base.raw', '--capacity', '64M', '--format', 'raw');
});
afterAll(async () => {
  await pool?.remove();
  await libvirtd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const builder = (over: Partial<LibvirtBuilder> = {}): LibvirtBuilder =>
  ({
    ...Builder.parse({
      provider: 'libvirt',
      host: hypervisor.address,
      hypervisorSsh: { port: hypervisor.port, privateKeyPath: rig.privateKeyPath },
      pool: pool.name,
      baseVolume: 'base.raw',
      diskSizeGiB: 10,
      memoryMiB: 2048,
      vcpus: 2,
      ssh: { port: vm.port, privateKeyPath: rig.privateKeyPath },
    }),
    ...over,
  }) as LibvirtBuilder;

const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string) => ({ code: 1, stdout: '', stderr });

/** Domains as virsh would report them; storage commands go to the real libvirtd. Every argv is recorded. */
class RecordingHypervisor {
  readonly calls: string[][] = [];
  readonly domains = new Map<string, { xml: string; state: 'running' | 'shut off'; addressAfter: number }>();
  networks = new Map([['default', true]]);
  /** domifaddr answers with no address this many times first, as while the VM boots and asks for a lease. */
  addressDelay = 2;

  connect = async (b: LibvirtBuilder): Promise<HypervisorRunner> => {
    const real = await openHypervisor(b.host, b.hypervisorSsh, b.uri, 'builder.hypervisorSsh');
    const virshCall: HypervisorRunner['virsh'] = async (args, opts) => {
      this.calls.push(args);
      if (/^(vol-|pool-)/.test(args[0])) return await real.virsh(args, opts);
      const res = this.domain(args, typeof opts?.stdin === 'string' ? opts.stdin : opts?.stdin?.toString());
      if (res.code !== 0 && !opts?.allowFailure) throw new Error(`virsh ${args.join(' ')}: ${res.stderr}`);
      return res;
    };
    return { ...real, host: real.host, uri: real.uri, virsh: virshCall, close: () => real.close() };
  };

  private domain(args: string[], stdin?: string) {
    const [cmd, name] = args;
    const dom = this.domains.get(name);
    const missing = fail(`error: failed to get domain '${name}'\n`);
    switch (cmd) {
      case 'define': {
        const defined = /<name>([^<]+)<\/name>/.exec(stdin ?? '')![1];
        this.domains.set(defined, { xml: stdin!, state: 'shut off', addressAfter: this.addressDelay });
        return ok(`Domain '${defined}' defined from /dev/stdin\n`);
      }
      case 'dominfo':
        return dom ? ok(`Name:           ${name}\nState:          ${dom.state}\n`) : missing;
      case 'domstate':
        return dom ? ok(`${dom.state}\n`) : missing;
      case 'start':
        if (!dom) return missing;
        dom.state = 'running';
        return ok(`Domain '${name}' started\n`);
      case 'domifaddr':
        if (!dom) return missing;
        if (dom.state !== 'running' || dom.addressAfter-- > 0) return ok('');
        return ok(` vnet0      52:54:00:12:34:56    ipv4         ${vm.address}/8\n`);
      case 'destroy':
        if (!dom) return missing;
        if (dom.state !== 'running') return fail('error: Failed to destroy domain\nerror: Requested operation is not valid: domain is not running\n');
        dom.state = 'shut off';
        return ok(`Domain '${name}' destroyed\n`);
      case 'undefine':
        if (!dom) return missing;
        this.domains.delete(name);
        return ok(`Domain '${name}' has been undefined\n`);
      case 'list':
        return ok([...this.domains.keys()].map((n) => `${n}\n`).join(''));
      case 'net-info':
        return this.networks.has(name)
          ? ok(`Name:           ${name}\nActive:         ${this.networks.get(name) ? 'yes' : 'no'}\n`)
          : fail(`error: failed to get network '${name}'\nerror: Network not found: no network with matching name '${name}'\n`);
      default:
        return fail(`error: unknown command: '${cmd}'\n`);
    }
  }

  commands = () => this.calls.map((c) => c[0]);
}

const ctx = (releaseId: string) => ({ releaseId, arch: 'x86_64' as const });

describe('libvirt builder provider', () => {
  it('clones the base volume as a thin overlay, defines and starts the domain, waits for its address and SSH', async () => {
    const hv = new RecordingHypervisor();
    const provider = createLibvirtBuilderProvider({ connect: hv.connect, pollIntervalMs: 50 });
    const name = resourceName('r1', 'x86_64', 'builder');
    const host = await provider.acquire(builder(), ctx('r1'));

    expect(host).toMatchObject({ provider: 'libvirt', id: name, address: vm.address, port: vm.port, user: 'root' });
    expect(host.hostKey?.split(' ')[1]).toBe(vm.hostKey.split(' ')[1]);
    expect(host.resources).toEqual([
      { kind: 'libvirt-domain', id: name },
      { kind: 'libvirt-volume', id: `${pool.name}/${name}.qcow2` },
    ]);
    // The real volume is a 10 GiB qcow2 whose backing store is the base volume.
    const xml = await virsh('vol-dumpxml', '--pool', pool.name, `${name}.qcow2`);
    expect(xml).toMatch(/<capacity unit='bytes'>10737418240<\/capacity>/);
    expect(xml).toMatch(new RegExp(`<backingStore>\\s*<path>${pool.dir}/base.raw</path>\\s*<format type='raw'/>`));
    expect(hv.commands()).toEqual([
      'vol-info', 'vol-dumpxml', 'vol-create-as', 'dominfo', 'define', 'domstate', 'start',
      // Twice no address yet (lease, then ARP), then the lease.
      'domifaddr', 'domifaddr', 'domifaddr',
    ]);
    expect(hv.calls.find((c) => c[0] === 'vol-create-as')).toEqual([
      'vol-create-as', '--pool', pool.name, '--name', `${name}.qcow2`, '--capacity', '10G', '--format', 'qcow2', '--backing-vol', 'base.raw', '--backing-vol-format', 'raw',
    ]);
    const domain = hv.domains.get(name)!.xml;
    expect(domain).toContain(`<source pool='${pool.name}' volume='${name}.qcow2'/>`);
    expect(domain).toContain("<memory unit='MiB'>2048</memory>");
    expect(domain).toContain("<source network='default'/>");

    // A retried attempt finds everything in place and creates nothing.
    hv.calls.length = 0;
    const again = await provider.acquire(builder(), ctx('r1'));
    expect(again.address).toBe(vm.address);
    expect(hv.commands()).toEqual(['vol-info', 'dominfo', 'domstate', 'domifaddr']);

    // Release: destroy, undefine, delete the overlay; a second release finds nothing and is fine.
    hv.calls.length = 0;
    await provider.release(builder(), ctx('r1'), host);
    await provider.release(builder(), ctx('r1'), host);
    expect(hv.calls.slice(0, 3)).toEqual([['destroy', name], ['undefine', name, '--nvram'], ['vol-delete', '--pool', pool.name, `${name}.qcow2`]]);
    expect(hv.domains.size).toBe(0);
    expect(await pool.volumes()).toEqual(['base.raw']);
  });

  it('check names the config field of a missing pool, base volume or network', async () => {
    const hv = new RecordingHypervisor();
    const provider = createLibvirtBuilderProvider({ connect: hv.connect });
    expect(await provider.check(builder(), ctx('r1'))).toMatchObject({ ok: true });

    const noPool = await provider.check(builder({ pool: 'no-such-pool' }), ctx('r1'));
    expect(noPool.ok).toBe(false);
    expect(noPool.messages.at(-1)).toMatch(/storage pool "no-such-pool" does not exist; .*architectures\.x86_64\.builder\.pool/);

    const noBase = await provider.check(builder({ baseVolume: 'missing.raw' }), ctx('r1'));
    expect(noBase.messages.at(-1)).toMatch(/base volume "missing.raw" .*architectures\.x86_64\.builder\.baseVolume/);

    hv.networks.set('default', false);
    const netDown = await provider.check(builder(), ctx('r1'));
    expect(netDown.messages.at(-1)).toMatch(/network "default" is not active; .*architectures\.x86_64\.builder\.network/);
  });

  it('lists what it owns by the bootc-release- prefix and deletes it for the janitor', async () => {
    const hv = new RecordingHypervisor();
    hv.addressDelay = 0;
    const provider = createLibvirtBuilderProvider({ connect: hv.connect, pollIntervalMs: 50 });
    await provider.acquire(builder(), ctx('rel-7'));
    const owned = await provider.listOwned!(builder());
    const name = resourceName('rel-7', 'x86_64', 'builder');
    expect(owned).toEqual(
      expect.arrayContaining([
        { kind: 'libvirt-domain', id: name, releaseId: 'rel-7', arch: 'x86_64' },
        { kind: 'libvirt-volume', id: `${pool.name}/${name}.qcow2`, releaseId: 'rel-7', arch: 'x86_64' },
      ]),
    );
    expect(owned.map((o) => o.id)).not.toContain(`${pool.name}/base.raw`);
    for (const r of owned) await provider.deleteOwned!(builder(), r);
    expect(await provider.listOwned!(builder())).toEqual([]);
  });

  it('generates domain XML that the real libvirtd accepts', async () => {
    const name = `bootc-rig-xml-${process.pid}`;
    const xml = domainXml({ name, arch: 'x86_64', memoryMiB: 1024, vcpus: 2, pool: pool.name, volume: 'base.raw', network: 'default', releaseId: 'r1', domainType: 'qemu' });
    const file = path.join(dir, 'domain.xml');
    execFileSync('sh', ['-c', `cat > ${file}`], { input: xml });
    try {
      await virsh('define', file);
      const dumped = await virsh('dumpxml', name);
      expect(dumped).toContain(`<source pool='${pool.name}' volume='base.raw'/>`);
      expect(dumped).toMatch(/<type arch='x86_64' machine='pc-q35-[^']+'>hvm<\/type>/);
    } finally {
      execFileSync(tool('virsh'), ['-q', '-c', libvirtd.uri, 'undefine', name], { stdio: 'ignore' });
    }
  });
});
