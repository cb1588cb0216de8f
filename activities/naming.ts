// Names of what bootc-release creates where no tag can hold the release id (libvirt domains and volumes, IBM Cloud
// instances and floating IPs, VPC images): the name is how a retried acquire finds its VM again and how the janitor
// tells whose a VM is. Those clouds allow 63 characters of [a-z0-9-], so a long or unusual release id cannot be
// written out whole. Cutting it made two architectures or two releases of a long-named definition share one VM, and
// made the janitor read back a release id that no workflow has. Such a name instead keeps a readable head of the id
// and ends in a hash of the full (release id, arch, step): it stays unique, and a candidate release id can be checked
// against it (resourceName(id, arch, step) === name) instead of being guessed from a cut.
import { createHash } from 'node:crypto';
import { ARCHES } from '../config/constants';

export const NAME_PREFIX = 'bootc-release-';
export const MAX_NAME_LENGTH = 63;
const HASH_LENGTH = 8;

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9-]/g, '-');
const hashOf = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, HASH_LENGTH);

/** `bootc-release-<releaseId>-<arch>-<step>`, or `bootc-release-<head of id>-<arch>-<step>-<hash>` when that would not fit or not be exact. */
export function resourceName(releaseId: string, arch: string, step: string): string {
  const tail = `-${slug(arch)}-${slug(step)}`;
  const whole = `${NAME_PREFIX}${releaseId}${tail}`;
  if (/^[a-z0-9-]+$/.test(releaseId) && whole.length <= MAX_NAME_LENGTH) return whole;
  const room = MAX_NAME_LENGTH - NAME_PREFIX.length - tail.length - 1 - HASH_LENGTH;
  const head = slug(releaseId).slice(0, Math.max(room, 0)).replace(/^-+|-+$/g, '');
  return `${NAME_PREFIX}${head || 'x'}${tail}-${hashOf(releaseId, arch, step)}`;
}

export type ParsedName =
  /** The name holds the whole release id. */
  | { exact: true; releaseId: string; arch: string; step: string }
  /** The name holds a lower-cased, possibly cut head of the id: only a candidate that names back to it is its release. */
  | { exact: false; head: string; arch: string; step: string };

/** Reads a name resourceName(…, arch, step) wrote; undefined for anything else (other tools' names, names cut by older versions). */
export function parseResourceName(name: string, step: string): ParsedName | undefined {
  if (!name.startsWith(NAME_PREFIX)) return undefined;
  const rest = name.slice(NAME_PREFIX.length);
  for (const arch of ARCHES) {
    const tail = `-${slug(arch)}-${slug(step)}`;
    if (rest.endsWith(tail)) {
      const releaseId = rest.slice(0, -tail.length);
      // A name an older version cut never round-trips, so it is not read as an id it does not hold.
      if (releaseId && resourceName(releaseId, arch, step) === name) return { exact: true, releaseId, arch, step };
    }
    const hashed = new RegExp(`^(.+)${tail}-[0-9a-f]{${HASH_LENGTH}}$`).exec(rest);
    if (hashed) return { exact: false, head: hashed[1], arch, step };
  }
  return undefined;
}

/**
 * The longest start that every release id behind a hashed name shares: the head up to its first "-", because a "-"
 * in the name may stand for any character the name could not hold ("." "_"), and letters were lower-cased.
 */
export const releaseIdSearchPrefix = (parsed: Extract<ParsedName, { exact: false }>) => /^[a-z0-9]*/.exec(parsed.head)![0];

/**
 * A VPC image name for a publish's image name (`<definition>-<arch>-YYYYMMDD_HHMMSS[-type]`): written out when it
 * fits and maps back without loss (`copr-s390x-20250101_120000` → `copr-s390x-20250101-120000`), else a readable
 * head plus a hash of the full image name, so that two arches or two releases never share one image.
 */
export function vpcImageName(imageName: string): string {
  const m = /^(.*)-(x86_64|aarch64|ppc64le|s390x)-(\d{8})_(\d{6})(-[a-z0-9]+)?$/.exec(imageName);
  const valid = (s: string) => /^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(s);
  const plain = m ? `${m[1]}-${slug(m[2])}-${m[3]}-${m[4]}${m[5] ?? ''}` : imageName;
  if ((m ? valid(m[1]) : valid(imageName)) && plain.length <= MAX_NAME_LENGTH) return plain;
  const head = slug(imageName)
    .replace(/^[^a-z]+/, '')
    .slice(0, MAX_NAME_LENGTH - 1 - HASH_LENGTH)
    .replace(/-+$/, '');
  return `${head || 'image'}-${hashOf(imageName)}`;
}

/** What a provider lists for the janitor under a name: the owner when the name holds it whole, else the name to match. */
export function ownerOfName(name: string, step = 'builder'): { releaseId: string; arch: string } | { name: string } {
  const parsed = parseResourceName(name, step);
  return parsed?.exact ? { releaseId: parsed.releaseId, arch: parsed.arch } : { name };
}
