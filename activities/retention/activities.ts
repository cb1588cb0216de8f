// The retention activities (docs/retention.md). planRetention lists what every target of a definition holds and
// decides (activities/retention/plan.ts); it changes nothing, so `bootc-release retention plan` is a dry run.
// applyRetention does one item of a plan, checking again first that nothing protects or uses it now; the channel
// workflow runs it per item and records each outcome. restoreImages undoes deprecations for a rollback.
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, findDefinition } from '../../config/load';
import type { ReleaseDefinition, Target } from '../../config/schema';
import { retentionRecord, type ChannelState, type RetentionRecord } from '../channels';
import type { Candidate, PublishedImage, PublishTargetDriver } from '../types';
import { heartbeat } from '../runtime/heartbeat';
import type { ChannelLookup, ReleaseCatalog } from './lookup';
import { parseImageName } from './names';
import {
  imagesToCheckForUse,
  knownFromChannels,
  planFrom,
  protectionsOf,
  STAGED_TARGET,
  type ListedImage,
  type PlanInput,
  type Protection,
  type RetentionItem,
  type RetentionPlan,
} from './plan';
import { deleteStaged, listStaged } from './staged';
import { requireDriver, type PublishTargets } from '../registry';
import { FailureType } from '../failures';

export interface RetentionDeps {
  definitionsDir: string;
  targets: PublishTargets;
  channels: ChannelLookup;
  releases: ReleaseCatalog;
  /** This worker's staging directory and queue: its staged artifacts are listed, and deleted on that queue. */
  stagingDir: string;
  stagingQueue: string;
}

export interface PlanRetentionInput {
  /** A definition the worker knows, by name. */
  definition: string;
  /** Releases the caller protects besides what the channels' states say (the channel applying retention: its own). */
  protectedReleases?: string[];
  /** ISO time the plan is for (workflow time); ages are measured to it. */
  now: string;
}

export interface ApplyRetentionInput {
  definition: string;
  item: RetentionItem;
}

export interface RestoreImagesInput {
  definition: string;
  releaseId: string;
  /** The images the rollback will activate: each one a target can list and no longer has is reported `gone`. */
  images?: Pick<Candidate, 'target' | 'arch' | 'imageId' | 'region'>[];
}

export function createRetentionActivities(deps: RetentionDeps) {
  async function definitionOf(name: string): Promise<ReleaseDefinition> {
    try {
      return await findDefinition(deps.definitionsDir, name);
    } catch (err) {
      if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, FailureType.Config);
      throw err;
    }
  }

  async function channelStates(def: ReleaseDefinition): Promise<ChannelState[]> {
    const states = await Promise.all(Object.keys(def.channels).map((c) => deps.channels.stateOf(def.name, c)));
    return states.filter((s): s is ChannelState => !!s);
  }

  async function protections(def: ReleaseDefinition, callers: string[] = []): Promise<{ states: ChannelState[]; protections: Protection[]; known: PlanInput['known'] }> {
    const states = await channelStates(def);
    const open = await deps.releases.open(def.name);
    return {
      states,
      protections: protectionsOf(states, def.retention.keep, open, callers),
      known: [...knownFromChannels(states), ...open.map((r) => ({ releaseId: r.releaseId, imageNames: r.imageNames }))],
    };
  }

  const driverFor = (target: Target): PublishTargetDriver => requireDriver(deps.targets, target);

  function targetOf(def: ReleaseDefinition, name: string): Target {
    const target = def.targets[name];
    if (!target)
      throw ApplicationFailure.nonRetryable(`target ${name} is no longer in definition ${def.name}; retention leaves its images alone`, FailureType.Config);
    return target;
  }

  /** Every image at every target of the definition; a target that refuses (config, permission) is reported, not fatal. */
  async function listAll(def: ReleaseDefinition): Promise<{ images: ListedImage[]; unlisted: RetentionPlan['unlisted'] }> {
    const images: ListedImage[] = [];
    const unlisted: RetentionPlan['unlisted'] = [];
    for (const [name, target] of Object.entries(def.targets)) {
      const driver = driverFor(target);
      if (!driver.listImages) continue;
      heartbeat({ listing: name });
      try {
        for (const image of await driver.listImages(target, name, def.name)) images.push({ target: name, image, canDeprecate: !!driver.deprecate });
      } catch (err) {
        if (!(err instanceof ApplicationFailure && err.nonRetryable)) throw err;
        unlisted.push({ target: name, error: err.message });
      }
    }
    return { images, unlisted };
  }

  async function planRetention(input: PlanRetentionInput): Promise<RetentionPlan> {
    const def = await definitionOf(input.definition);
    const { states, protections: p, known } = await protections(def, input.protectedReleases);
    const { images, unlisted } = await listAll(def);
    const ids = new Set([...images.map((l) => l.image.releaseId), ...known.map((k) => k.releaseId), ...(await deps.releases.all(def.name))]);
    ids.delete(undefined);
    for (const image of await listStaged(deps.stagingDir, deps.stagingQueue, ids as Set<string>))
      images.push({ target: STAGED_TARGET, image, canDeprecate: false, taskQueue: deps.stagingQueue });
    const planInput: PlanInput = {
      definition: def.name,
      settings: def.retention,
      now: input.now,
      images,
      protections: p,
      known,
      holdAll: holdReason(def, states),
      unlisted,
    };
    for (const l of imagesToCheckForUse(planInput)) {
      if (l.target === STAGED_TARGET) continue;
      heartbeat({ checking: l.image.imageId });
      l.usedBy = await driverFor(targetOf(def, l.target)).inUse?.(targetOf(def, l.target), l.image);
    }
    return planFrom(planInput);
  }

  async function applyRetention({ definition, item }: ApplyRetentionInput): Promise<RetentionRecord> {
    const record = (outcome: RetentionRecord['outcome'], detail?: string) => retentionRecord(item, outcome, new Date().toISOString(), detail);
    if (item.action === 'keep') return record('kept', item.why);
    const def = await definitionOf(definition);
    const why = protectedNow(def.name, item, (await protections(def)).protections);
    if (why) return record('kept', why);
    if (item.target === STAGED_TARGET) {
      if (item.action !== 'delete') return record('kept', 'staged artifacts are deleted, never deprecated');
      await deleteStaged(deps.stagingDir, item.image);
      return record('ok', `deleted ${item.image.imageId}`);
    }
    const target = targetOf(def, item.target);
    const driver = driverFor(target);
    if (item.action === 'deprecate') {
      if (!driver.deprecate) return record('kept', `${target.kind} targets cannot deprecate images`);
      return record('ok', await driver.deprecate(target, item.image, new Date().toISOString()));
    }
    const user = await driver.inUse?.(target, item.image);
    if (user) return record('kept', `in use: ${user}`);
    const left = await driver.delete(target, item.image);
    return record('ok', left?.length ? left.join('; ') : undefined);
  }

  async function restoreImages({ definition, releaseId, images = [] }: RestoreImagesInput): Promise<RetentionRecord[]> {
    const def = await definitionOf(definition);
    const records: RetentionRecord[] = [];
    for (const [name, target] of Object.entries(def.targets)) {
      const driver = driverFor(target);
      if (!driver.listImages) continue;
      const listed = await driver.listImages(target, name, def.name);
      records.push(...goneImages(images, name, listed, releaseId));
      if (!driver.restore) continue;
      for (const image of listed) {
        if (image.releaseId !== releaseId || !image.deprecated) continue;
        await driver.restore(target, image);
        records.push({
          at: new Date().toISOString(),
          releaseId,
          target: name,
          arch: image.arch,
          ...(image.region ? { region: image.region } : {}),
          imageId: image.imageId,
          action: 'restore',
          outcome: 'ok',
        });
      }
    }
    return records;
  }

  return { planRetention, applyRetention, restoreImages };
}

/** The images a rollback needs that a target no longer lists (retention deleted them, or a person did). */
function goneImages(images: NonNullable<RestoreImagesInput['images']>, target: string, listed: PublishedImage[], releaseId: string): RetentionRecord[] {
  const present = new Set(listed.map((l) => l.imageId));
  return images
    .filter((i) => i.target === target && !present.has(i.imageId))
    .map((i) => ({
      at: new Date().toISOString(),
      releaseId,
      target,
      arch: i.arch,
      ...(i.region ? { region: i.region } : {}),
      imageId: i.imageId,
      action: 'restore' as const,
      outcome: 'failed' as const,
      gone: true,
      detail: 'no longer at the target: deleted (by retention or by hand)',
    }));
}

/** Nothing is known to be unused until some channel has an assignment: keep everything, and say why. */
function holdReason(def: ReleaseDefinition, states: ChannelState[]): string | undefined {
  if (!Object.keys(def.channels).length) return `definition ${def.name} has no channels, so nothing is known to be unused`;
  if (!states.some((s) => s.current || s.history.length)) return `no channel of ${def.name} has an assignment yet, so nothing is known to be unused`;
  return undefined;
}

/** Why the item's release is protected now (a rollback or promotion since the plan), by its id or its stamp. */
function protectedNow(definition: string, item: RetentionItem, protections: Protection[]): string | undefined {
  const stamp = parseImageName(definition, item.image.imageName)?.stamp;
  const p = protections.find(
    (p) => p.releaseId === item.releaseId || (!!stamp && p.imageNames.some((n) => parseImageName(definition, n)?.stamp === stamp)),
  );
  return p ? `release ${p.releaseId}: ${p.why} (since the plan)` : undefined;
}

export type RetentionActivities = ReturnType<typeof createRetentionActivities>;
