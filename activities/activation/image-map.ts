// The image map: what builders boot from. Fedora Copr's farm keeps it in its Ansible inventory
// (`copr_builder_images: {aws: {x86_64: ami-...}, ibm_cloud: {s390x: {us_east: r014-...}}}`). A release owns only the
// entries (target × arch × region or type) it produced and the approver chose: activation merges those into the map
// and keeps every other entry, so a one-arch release or a subset approval never drops the rest. Pure code.
import { TARGET_TYPES } from '../../config/constants';
import type { ReleasePlan } from '../../config/schema';
import type { Candidate } from '../types';
import type { ImageMapValue, ReplacedEntry } from '../types';

export type { ImageMapValue, ReplacedEntry };
export type ImageMap = Record<string, Record<string, ImageMapValue>>;

/** One image a release activates: `map[target][arch]`, or `map[target][arch][key]` when the target has several. */
export interface MapEntry {
  target: string;
  arch: string;
  /** Region (Ansible spelling, `us_east_1`) or image type; absent when the target holds one image per arch. */
  key?: string;
  value: string;
}

const regionKey = (region: string) => region.replace(/-/g, '_');

/**
 * Whether (target, arch) holds several images, from the definition rather than from the candidates: a subset approval
 * (one region of an AMI copied to two) must write into the same shape as a full one, or it would replace the map of
 * regions with a single id.
 */
function keyed(plan: ReleasePlan | undefined, c: Candidate, groupSize: number): 'region' | 'type' | undefined {
  const target = plan?.definition.targets[c.target];
  if (!target) return groupSize > 1 ? (c.region ? 'region' : 'type') : undefined;
  switch (target.kind) {
    case 'aws':
      return new Set([target.region, ...target.copyTo]).size > 1 ? 'region' : undefined;
    case 'ibmcloud':
      return target.regions.length > 1 ? 'region' : undefined;
    case 'directory': {
      const types = plan!.definition.architectures[c.arch]?.types ?? [];
      return types.filter((t) => TARGET_TYPES.directory.includes(t)).length > 1 ? 'type' : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The entries a release activates. libvirt hypervisors all hold the same volume name, which is what builders are
 * booted from; elsewhere the cloud's image id.
 */
export function imageMapEntries(candidates: Candidate[], plan?: ReleasePlan): MapEntry[] {
  const groupSize = new Map<string, number>();
  const group = (c: Candidate) => `${c.target}\u0000${c.arch}`;
  for (const c of candidates) groupSize.set(group(c), (groupSize.get(group(c)) ?? 0) + 1);
  const entries = new Map<string, MapEntry>();
  for (const c of candidates) {
    const value = c.kind === 'libvirt' ? c.name : c.imageId;
    const by = c.kind === 'libvirt' ? undefined : keyed(plan, c, groupSize.get(group(c))!);
    const key = by === 'region' ? regionKey(c.region ?? 'default') : by === 'type' ? c.type : undefined;
    entries.set(`${group(c)}\u0000${key ?? ''}`, { target: c.target, arch: c.arch, key, value });
  }
  return [...entries.values()];
}

/** The map a release activates, on its own (what `ActivationRecord.imageMap` shows). */
export function buildImageMap(candidates: Candidate[], plan?: ReleasePlan): ImageMap {
  return mergeImageMap({}, imageMapEntries(candidates, plan), 'image map').map;
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Writes `entries` into a copy of `existing` and returns it with exactly what changed: an entry whose value is already
 * the release's is not recorded. `previous` absent means the entry did not exist (rollback deletes it).
 */
export function mergeImageMap(existing: unknown, entries: MapEntry[], where: string): { map: ImageMap; replaced: ReplacedEntry[] } {
  if (existing !== undefined && existing !== null && !isMapping(existing))
    throw new Error(`${where} is not a mapping of target → arch → image; fix or remove it, then retry the activation`);
  const map = structuredClone((existing ?? {}) as ImageMap);
  const replaced: ReplacedEntry[] = [];
  for (const { target, arch, key, value } of entries) {
    const archs = (map[target] ??= {});
    if (!isMapping(archs)) throw new Error(`${where}: ${target} is not a mapping of arch → image; fix it, then retry the activation`);
    const current = archs[arch];
    if (key === undefined || (current !== undefined && !isMapping(current))) {
      // One image per arch, or the definition went from one region to several: the whole entry is replaced.
      const next: ImageMapValue = key === undefined ? value : { [key]: value };
      if (JSON.stringify(current) !== JSON.stringify(next)) {
        replaced.push({ path: [target, arch], previous: current, value: next });
        archs[arch] = next;
      }
      continue;
    }
    const regions = (archs[arch] ??= {}) as Record<string, string>;
    if (regions[key] !== value) {
      replaced.push({ path: [target, arch, key], previous: regions[key], value });
      regions[key] = value;
    }
  }
  return { map, replaced: structuredClone(replaced) };
}

/**
 * The release's map as it was before one image map step changed it: its `replaced` entries undone. An entry that did
 * not exist before is left out; one that already held the release's image stays as it is.
 */
export function previousImageMap(map: ImageMap, replaced: ReplacedEntry[]): ImageMap {
  const before = structuredClone(map);
  for (const { path: [target, arch, key], previous } of replaced) {
    const archs = before[target!];
    if (!archs || arch === undefined) continue;
    const holder: Record<string, ImageMapValue> | undefined = key === undefined ? archs : (archs[arch] as Record<string, ImageMapValue>);
    const at = key ?? arch;
    if (!isMapping(holder)) continue;
    if (previous === undefined) delete holder[at];
    else holder[at] = previous;
    if (key !== undefined && Object.keys(holder).length === 0) delete archs[arch];
    if (Object.keys(archs).length === 0) delete before[target!];
  }
  return before;
}
