// The builder VM's domain definition. The disk is referenced by pool and volume, so any pool type works; the
// release id sits in the metadata so a person reading `virsh dumpxml` knows whose VM it is.
import type { Arch } from '../../config/schema';

export interface DomainSpec {
  name: string;
  arch: Arch;
  memoryMiB: number;
  vcpus: number;
  pool: string;
  volume: string;
  network: string;
  releaseId: string;
  /** `kvm` on a hypervisor; `qemu` (TCG) where /dev/kvm is missing, as on the test rig. */
  domainType?: 'kvm' | 'qemu';
}

const MACHINE: Record<Arch, { machine: string; efi: boolean; x86: boolean; serial: boolean }> = {
  x86_64: { machine: 'q35', efi: false, x86: true, serial: true },
  aarch64: { machine: 'virt', efi: true, x86: false, serial: true },
  ppc64le: { machine: 'pseries', efi: false, x86: false, serial: true },
  s390x: { machine: 's390-ccw-virtio', efi: false, x86: false, serial: false },
};

const RELEASE_NS = 'https://github.com/bootc-release/1';

/** The release id domainXml() wrote into <metadata>, as `virsh dumpxml` shows it (libvirt may rename the prefix). */
export function releaseInMetadata(xml: string): string | undefined {
  const m = new RegExp(`<(\\w+:)?release xmlns(?::\\w+)?=['"]${RELEASE_NS.replace(/[./]/g, '\\$&')}['"]>([^<]*)</`).exec(xml);
  if (!m) return undefined;
  return m[2].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&apos;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

export function domainXml(spec: DomainSpec): string {
  const m = MACHINE[spec.arch];
  const type = spec.domainType ?? 'kvm';
  return [
    `<domain type='${type}'>`,
    `  <name>${esc(spec.name)}</name>`,
    `  <metadata><bootc:release xmlns:bootc='${RELEASE_NS}'>${esc(spec.releaseId)}</bootc:release></metadata>`,
    `  <memory unit='MiB'>${spec.memoryMiB}</memory>`,
    `  <vcpu>${spec.vcpus}</vcpu>`,
    `  <os${m.efi ? " firmware='efi'" : ''}>`,
    `    <type arch='${spec.arch}' machine='${m.machine}'>hvm</type>`,
    `    <boot dev='hd'/>`,
    `  </os>`,
    ...(m.x86 ? ['  <features><acpi/><apic/></features>'] : []),
    ...(type === 'kvm' ? ["  <cpu mode='host-passthrough'/>"] : []),
    `  <on_poweroff>destroy</on_poweroff>`,
    `  <on_crash>destroy</on_crash>`,
    `  <devices>`,
    `    <disk type='volume' device='disk'>`,
    `      <driver name='qemu' type='qcow2' discard='unmap'/>`,
    `      <source pool='${esc(spec.pool)}' volume='${esc(spec.volume)}'/>`,
    `      <target dev='vda' bus='virtio'/>`,
    `    </disk>`,
    `    <interface type='network'>`,
    `      <source network='${esc(spec.network)}'/>`,
    `      <model type='virtio'/>`,
    `    </interface>`,
    ...(m.serial ? ["    <serial type='pty'/>"] : []),
    `    <console type='pty'/>`,
    `    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>`,
    `  </devices>`,
    `</domain>`,
    '',
  ].join('\n');
}
