// Which images retention deprecates, deletes or keeps, decided from what the targets hold and what the channels
// still need. Pure (no I/O, no node imports): the activity lists, asks and applies; this decides, and unit tests
// read the rules here. Never deleted: an image of a release a channel runs or may roll back to (`keep`), of a
// release still running (building, awaiting approval, activating), younger than `minAge`, or in use.
import { protectedReleases, type ChannelState } from '../channels';
import { durationMs } from '../../config/duration';
import type { PublishedImage } from '../types';
import { parseImageName, stampTime, unknownRelease } from './names';

/** The target name of the artifacts in a worker's staging directory: not a name a definition can give a target. */
export const STAGED_TARGET = '(staged)';

export interface RetentionSettings {
  keep: number;
  minAge: string;
  deprecateFirst: boolean;
}

export type RetentionAction = 'deprecate' | 'delete' | 'keep';

/** One image and what retention does to it. */
export interface RetentionItem {
  action: RetentionAction;
  /** The target's name in the definition, or STAGED_TARGET. */
  target: string;
  /** Its release: as the target records it, found through the stamp, or unknownRelease(stamp). */
  releaseId: string;
  image: PublishedImage;
  /** Run applyRetention for this item on this task queue: staged artifacts live on one worker. */
  taskQueue?: string;
  /** Why it is kept, or what the action waits for. */
  why?: string;
}

export interface RetentionPlan {
  definition: string;
  /** ISO time the plan was made for. */
  at: string;
  settings: RetentionSettings;
  /** The releases nothing is deleted of, and why. */
  protected: { releaseId: string; why: string }[];
  deprecate: RetentionItem[];
  delete: RetentionItem[];
  kept: RetentionItem[];
  /** Targets whose images could not be listed (a refused credential, an unreachable host): none of theirs is in the plan. */
  unlisted: { target: string; error: string }[];
}

/** A release nothing may be deleted of, with the names of the images it is known to have (they tell its stamp). */
export interface Protection {
  releaseId: string;
  why: string;
  imageNames: string[];
}

/** A running release of the definition, as its status query lists it. */
export interface OpenRelease {
  releaseId: string;
  stage: string;
  imageNames: string[];
}

/** An image some target holds, as the activity listed it. */
export interface ListedImage {
  target: string;
  image: PublishedImage;
  /** The target can deprecate it (AWS). */
  canDeprecate: boolean;
  taskQueue?: string;
  /** What uses it, when the activity asked (only for images nothing else keeps). */
  usedBy?: string;
}

export interface PlanInput {
  definition: string;
  settings: RetentionSettings;
  now: string;
  images: ListedImage[];
  protections: Protection[];
  /** Every release whose image names are known (channel histories, running releases): links stamps to releases. */
  known: { releaseId: string; imageNames: string[] }[];
  /** When set, every image is kept for this reason (no channel has an assignment yet). */
  holdAll?: string;
  unlisted?: RetentionPlan['unlisted'];
}

/**
 * Protected releases from the channels' states (each channel's current release and its rollback window of `keep`
 * releases), the running releases, and the caller's own list.
 */
export function protectionsOf(channels: ChannelState[], keep: number, open: OpenRelease[], callers: string[] = []): Protection[] {
  const byId = new Map<string, Protection>();
  const add = (releaseId: string, why: string, imageNames: string[]) => {
    const p = byId.get(releaseId) ?? byId.set(releaseId, { releaseId, why, imageNames: [] }).get(releaseId)!;
    if (!p.why.includes(why)) p.why = `${p.why}; ${why}`;
    for (const n of imageNames) if (!p.imageNames.includes(n)) p.imageNames.push(n);
  };
  for (const state of channels)
    for (const id of protectedReleases(state, keep)) {
      const why = state.current?.releaseId === id ? `current on channel ${state.channel}` : `in channel ${state.channel}'s rollback window (keep ${keep})`;
      add(id, why, namesIn(state, id));
    }
  for (const r of open) add(r.releaseId, `release is ${r.stage}`, r.imageNames);
  for (const id of callers) add(id, 'protected by the channel applying retention', []);
  return [...byId.values()];
}

const namesIn = (state: ChannelState, releaseId: string) =>
  state.history.filter((a) => a.releaseId === releaseId).flatMap((a) => a.images.map((i) => i.name));

/** Every release whose image names a channel history holds. */
export function knownFromChannels(channels: ChannelState[]): { releaseId: string; imageNames: string[] }[] {
  return channels.flatMap((s) => s.history.map((a) => ({ releaseId: a.releaseId, imageNames: a.images.map((i) => i.name) })));
}

interface Triaged {
  kept: RetentionItem[];
  /** Nothing keeps these but what may still use them. */
  candidates: (ListedImage & { releaseId: string })[];
  protectedList: RetentionPlan['protected'];
}

function triage(input: PlanInput): Triaged {
  const stampOwner = new Map<string, string>();
  const link = (releaseId: string, name: string) => {
    const stamp = parseImageName(input.definition, name)?.stamp;
    if (stamp && !stampOwner.has(stamp)) stampOwner.set(stamp, releaseId);
  };
  for (const l of input.images) if (l.image.releaseId) link(l.image.releaseId, l.image.imageName);
  for (const k of [...input.known, ...input.protections]) for (const n of k.imageNames) link(k.releaseId, n);

  const protectedIds = new Map(input.protections.map((p) => [p.releaseId, p.why]));
  const stampsOf = (id: string) => [...stampOwner].filter(([, owner]) => owner === id).map(([stamp]) => stamp);
  // A protected release none of whose image names is known: an image that records no release could be one of its.
  const blind = input.protections.filter((p) => stampsOf(p.releaseId).length === 0).map((p) => p.releaseId);

  const minAgeMs = durationMs(input.settings.minAge);
  const now = Date.parse(input.now);
  const kept: RetentionItem[] = [];
  const candidates: Triaged['candidates'] = [];
  for (const l of input.images) {
    const stamp = parseImageName(input.definition, l.image.imageName)?.stamp;
    const releaseId = l.image.releaseId ?? (stamp ? stampOwner.get(stamp) : undefined);
    const label = releaseId ?? (stamp ? unknownRelease(stamp) : '(unknown release)');
    const keep = (why: string) => kept.push({ action: 'keep', target: l.target, releaseId: label, image: l.image, taskQueue: l.taskQueue, why });
    if (input.holdAll) keep(input.holdAll);
    else if (releaseId && protectedIds.has(releaseId)) keep(`release ${releaseId}: ${protectedIds.get(releaseId)}`);
    else if (!releaseId && blind.length)
      keep(`its target records no release id, and protected release ${blind.join(', ')} has no image whose name tells its stamp`);
    else {
      const created = l.image.createdAt ?? (stamp ? stampTime(stamp) : undefined);
      const age = created ? now - Date.parse(created) : 0;
      if (!created || age < minAgeMs) keep(`younger than minAge ${input.settings.minAge}${created ? ` (made ${created})` : ''}`);
      else candidates.push({ ...l, releaseId: label });
    }
  }
  return { kept, candidates, protectedList: input.protections.map(({ releaseId, why }) => ({ releaseId, why })) };
}

/** The images nothing keeps but use (the input's own objects): the activity asks their targets and sets `usedBy`. */
export function imagesToCheckForUse(input: PlanInput): ListedImage[] {
  const candidates = new Set(triage(input).candidates.map((c) => c.image));
  return input.images.filter((l) => candidates.has(l.image));
}

/**
 * The plan. With deprecateFirst, a release whose images can be deprecated (AWS) and are not yet gets them deprecated
 * and everything else of it kept; a later run, finding them deprecated, deletes the whole release. A rollback in
 * between (restoreImages) finds every image of it still there.
 */
export function planFrom(input: PlanInput): RetentionPlan {
  const { kept, candidates, protectedList } = triage(input);
  const plan: RetentionPlan = {
    definition: input.definition,
    at: input.now,
    settings: input.settings,
    protected: protectedList,
    deprecate: [],
    delete: [],
    kept,
    unlisted: input.unlisted ?? [],
  };
  const item = (l: (typeof candidates)[number], action: RetentionAction, why?: string): RetentionItem => ({
    action,
    target: l.target,
    releaseId: l.releaseId,
    image: l.image,
    ...(l.taskQueue ? { taskQueue: l.taskQueue } : {}),
    ...(why ? { why } : {}),
  });
  const unused: typeof candidates = [];
  for (const l of candidates) {
    if (l.usedBy) plan.kept.push(item(l, 'keep', `in use: ${l.usedBy}`));
    else unused.push(l);
  }
  const byRelease = new Map<string, typeof candidates>();
  for (const l of unused) byRelease.set(l.releaseId, [...(byRelease.get(l.releaseId) ?? []), l]);
  for (const [releaseId, images] of byRelease) {
    const toDeprecate = input.settings.deprecateFirst ? images.filter((l) => l.canDeprecate && !l.image.deprecated) : [];
    if (!toDeprecate.length) {
      plan.delete.push(...images.map((l) => item(l, 'delete')));
      continue;
    }
    for (const l of images)
      if (toDeprecate.includes(l)) plan.deprecate.push(item(l, 'deprecate', 'deprecateFirst: deleted by a later retention run'));
      else plan.kept.push(item(l, 'keep', `deprecateFirst: deleted with release ${releaseId} once its images are deprecated`));
  }
  return plan;
}
