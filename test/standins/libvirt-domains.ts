// STAND-IN for the running side of libvirt domains, for whole releases whose builder is a libvirt VM. No VM can boot
// on the rig (no KVM, no DHCP on a libvirt network), so the libvirt builder provider is given a runner in which
// everything real stays real: virsh runs over SSH on a rig "hypervisor" against the real libvirtd, which clones the
// overlay volume, defines, lists and undefines the domain (domain type qemu), and deletes the volume. Only what needs a
// booted VM is answered here, from files in a state directory that outlive a SIGKILLed worker:
//   start      the domain is marked running (libvirtd still has it shut off);
//   domstate   `running` while marked, else libvirtd's answer;
//   domifaddr  the VM's address (a rig sshd, or a proxy in front of one) while marked running and no hold is set:
//              `holdLeases(true)` keeps every VM without a DHCP lease, as while it boots;
//   destroy    unmarks it; an unmarked domain gets libvirtd's own "domain is not running";
//   undefine   libvirtd's, and unmarks;
//   net-info   the network is active (the rig's libvirtd has no `default` network);
//   define     libvirtd's, and recorded (`defined()`), so a test can count the VMs a release created.
// What it would not catch against a real hypervisor: docs/real-and-stand-in.md#libvirt.
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LibvirtBuilder, LibvirtBuilderDeps } from '../../activities/libvirt/builder-vm';
import { openHypervisor } from '../../activities/libvirt/hypervisor';
import type { HypervisorRunner, RunOptions } from '../../activities/libvirt/virsh';

export interface StandinDomainsOptions {
  /** Shared by the test and every worker process: which domains run, and whether leases are held. */
  stateDir: string;
  /** The address domifaddr reports for a running VM (builder.ssh.port is where SSH answers). */
  vmAddress: string;
}

const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });

export class StandinDomains {
  constructor(private readonly o: StandinDomainsOptions) {
    mkdirSync(o.stateDir, { recursive: true });
  }

  /** While on, no VM has an address yet: acquire waits in its address loop. */
  holdLeases(on: boolean): void {
    const file = path.join(this.o.stateDir, 'no-leases');
    if (on) writeFileSync(file, '');
    else rmSync(file, { force: true });
  }

  /** The name of every domain defined so far, once per definition. */
  defined(): string[] {
    const log = path.join(this.o.stateDir, 'defined.log');
    return existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  }

  /** For the provider's `connect`: the real hypervisor over SSH, with the domain answers above. */
  readonly connect: NonNullable<LibvirtBuilderDeps['connect']> = async (builder: LibvirtBuilder, signal?: AbortSignal) => {
    const real = await openHypervisor(builder.host, builder.hypervisorSsh, builder.uri, 'builder.hypervisorSsh', signal);
    return { ...real, host: real.host, uri: real.uri, virsh: (args, opts) => this.virsh(real, args, opts), close: () => real.close() };
  };

  private running = (name: string) => path.join(this.o.stateDir, `${name}.running`);

  private async virsh(real: HypervisorRunner, args: string[], opts?: RunOptions) {
    const [cmd, name = ''] = args;
    const marked = existsSync(this.running(name));
    switch (cmd) {
      case 'start': {
        const info = await real.virsh(['dominfo', name], { ...opts, allowFailure: true });
        if (info.code !== 0) return opts?.allowFailure ? info : await real.virsh(['dominfo', name], opts);
        writeFileSync(this.running(name), '');
        return ok(`Domain '${name}' started\n`);
      }
      case 'domstate':
        return marked ? ok('running\n') : await real.virsh(args, opts);
      case 'domifaddr':
        if (!marked || existsSync(path.join(this.o.stateDir, 'no-leases'))) return ok('');
        return ok(` vnet0      52:54:00:12:34:56    ipv4         ${this.o.vmAddress}/8\n`);
      case 'destroy':
        if (!marked) return await real.virsh(args, opts);
        rmSync(this.running(name), { force: true });
        return ok(`Domain '${name}' destroyed\n`);
      case 'undefine': {
        const res = await real.virsh(args, opts);
        rmSync(this.running(name), { force: true });
        return res;
      }
      case 'define': {
        const res = await real.virsh(args, opts);
        const defined = /<name>([^<]+)<\/name>/.exec(typeof opts?.stdin === 'string' ? opts.stdin : (opts?.stdin?.toString() ?? ''))?.[1];
        if (res.code === 0 && defined) appendFileSync(path.join(this.o.stateDir, 'defined.log'), `${defined}\n`);
        return res;
      }
      case 'net-info':
        return ok(`Name:           ${name}\nActive:         yes\n`);
      default:
        return await real.virsh(args, opts);
    }
  }
}
