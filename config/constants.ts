// Plain constants of the release definition, free of zod so that workflow code can import them.
export const ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
export type ArchName = (typeof ARCHES)[number];

/** bootc-image-builder --type values. */
export const IMAGE_TYPES = ['ami', 'raw', 'qcow2', 'vmdk', 'vhd', 'gce', 'iso'] as const;
export type ImageTypeName = (typeof IMAGE_TYPES)[number];

export const TARGET_KINDS = ['directory', 'aws', 'ibmcloud', 'libvirt', 'openstack'] as const;

/** The architectures EC2 has instances of: an AMI of any other cannot be registered. */
export const AWS_ARCHES: readonly ArchName[] = ['x86_64', 'aarch64'];

/**
 * Which image types each target kind accepts, in order of preference. IBM Cloud VPC imports qcow2 or vhd only;
 * an AMI is made from the raw disk bib writes for `ami`; libvirt and Glance prefer raw (boots in ~30 s vs 10+ min).
 */
export const TARGET_TYPES: Record<(typeof TARGET_KINDS)[number], ImageTypeName[]> = {
  directory: [...IMAGE_TYPES],
  aws: ['ami'],
  ibmcloud: ['qcow2', 'vhd'],
  libvirt: ['raw', 'qcow2'],
  openstack: ['raw', 'qcow2'],
};
