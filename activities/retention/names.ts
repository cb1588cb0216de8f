// Image names as a release's publish writes them: `<definition>-<arch>-<stamp>[-<type>]`, where the stamp is the
// release's start (YYYYMMDD_HHMMSS, one per release). Targets that cannot hold a release id (libvirt volumes,
// directory files) are tied to their release through it: every image of one release carries the same stamp.
// Pure (no node imports): the channel workflow may use it too.
import { ARCHES, type ArchName } from '../../config/constants';

export interface ImageNameParts {
  arch: ArchName;
  /** YYYYMMDD_HHMMSS */
  stamp: string;
  /** The `-<type>` suffix a release adds when it publishes two types of one arch to one target. */
  type?: string;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
// IBM Cloud VPC names cannot hold "_": vpcImageName writes x86-64 and 20250101-120000 (activities/naming.ts).
const ARCH_PATTERN = ARCHES.map((a) => a.replace('_', '[-_]')).join('|');

/**
 * Reads the arch and stamp from a name the definition's publishes wrote: the image name itself, a directory file
 * (`<image name>.<ext>`) or a plain VPC image name. Undefined for anything else, another definition's images too
 * (`copr-x86_64-…` is not an image of `copr-x86`).
 */
export function parseImageName(definition: string, name: string): ImageNameParts | undefined {
  const m = new RegExp(`^${escape(definition)}-(${ARCH_PATTERN})-(\\d{8})[_-](\\d{6})(?:-([a-z0-9]+))?(?:\\.[a-z0-9.]+)?$`).exec(name);
  if (!m) return undefined;
  const arch = m[1]!.replace('-', '_') as ArchName;
  return { arch, stamp: `${m[2]}_${m[3]}`, ...(m[4] ? { type: m[4] } : {}) };
}

/** The stamp's time as ISO (the release's start): the age of an image whose target keeps no creation time. */
export function stampTime(stamp: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})$/.exec(stamp);
  if (!m) throw new Error(`not a release stamp: ${stamp}`);
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.000Z`;
}

/** How a plan names the release of an image that records none and whose stamp no known release has. */
export const unknownRelease = (stamp: string) => `(unknown release, stamp ${stamp})`;
