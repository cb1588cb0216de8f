// The janitor's side effects: find builder resources (by tag or name) across every definition the worker knows, and
// delete those whose release is positively known to be over: closed, never run (its whole id is known and Temporal
// has no workflow of that id), or open past the TTL. A resource whose release cannot be named for certain (a name
// another tool or an older version cut) is left alone and reported: deleting on a guess destroyed running builders.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseDefinition } from '../../config/load';
import type { Builder } from '../../config/schema';
import { parseResourceName, releaseIdSearchPrefix, resourceName } from '../naming';
import type { OwnedResource } from '../types';
import { providerOf, type BuilderProviders } from '../registry';
import { keepAlive } from '../runtime/heartbeat';

export interface StaleBuilder {
  definition: string;
  arch: string;
  builder: Builder;
  /** With releaseId set to the release it was attributed to. */
  resource: OwnedResource & { releaseId: string };
  reason: string;
}

/** A resource the janitor found and did not delete, and why. */
export interface KeptBuilder {
  kind: string;
  id: string;
  releaseId?: string;
  reason: string;
}

/** What the janitor asks Temporal (worker/wiring.ts answers from the workflow of the same id). */
export interface ReleaseLookup {
  /** 'open' while the release workflow runs; 'unknown' when Temporal has no workflow of that id. */
  state(releaseId: string): Promise<'open' | 'closed' | 'cancelled' | 'unknown'>;
  /** Ids of every workflow (open or closed) whose id starts with prefix. */
  idsStartingWith(prefix: string): Promise<string[]>;
}

export interface JanitorDeps {
  definitionsDir: string;
  providers: BuilderProviders;
  releases: ReleaseLookup;
}

async function knownBuilders(dir: string): Promise<{ builders: { definition: string; arch: string; builder: Builder }[]; unread: KeptBuilder[] }> {
  const builders: { definition: string; arch: string; builder: Builder }[] = [];
  const unread: KeptBuilder[] = [];
  for (const entry of (await readdir(dir).catch(() => [] as string[])).sort()) {
    if (!/\.ya?ml$/.test(entry)) continue;
    try {
      const def = parseDefinition(parseYaml(await readFile(path.join(dir, entry), 'utf8')), entry);
      for (const [arch, spec] of Object.entries(def.architectures)) builders.push({ definition: def.name, arch, builder: spec!.builder });
    } catch (err) {
      // Its builders cannot be listed through it: say so, or a broken file would silently hide leaked VMs.
      const problem = (err as Error).message.split('\n').slice(0, 3).join('; ');
      unread.push({ kind: 'definition', id: path.join(dir, entry), reason: `not read, so its builders were not looked for: ${problem}` });
    }
  }
  return { builders, unread };
}

/** Providers configured identically (same region/endpoint) are listed once. */
const listingKey = (b: Builder) => JSON.stringify({ ...b, ssh: undefined, dataVolume: undefined, workDir: undefined });

type Attribution = { releaseId: string; arch?: string } | { unknown: string };

/** The release a resource belongs to, only when it is certain: a tag, a name holding the whole id, or a hashed name that exactly one workflow id names back to. */
async function attribute(resource: OwnedResource, idsStartingWith: (prefix: string) => Promise<string[]>): Promise<Attribution> {
  if (resource.releaseId) return { releaseId: resource.releaseId, arch: resource.arch };
  const name = resource.name ?? resource.id;
  const parsed = resource.name ? parseResourceName(resource.name, 'builder') : undefined;
  if (!parsed) return { unknown: `its name ${name} does not hold a release id bootc-release can read (made by another tool or cut by an older version); delete it by hand if no release uses it` };
  if (parsed.exact) return { releaseId: parsed.releaseId, arch: parsed.arch };
  const prefix = releaseIdSearchPrefix(parsed);
  const matches = prefix ? (await idsStartingWith(prefix)).filter((id) => resourceName(id, parsed.arch, parsed.step) === name) : [];
  if (matches.length === 1) return { releaseId: matches[0], arch: parsed.arch };
  return { unknown: `no release known to Temporal has the shortened name ${name} (its release may be past retention); delete it by hand if no release uses it` };
}

export async function findStaleBuilders(
  deps: JanitorDeps,
  input: { ttlMs: number; now: string },
): Promise<{ stale: StaleBuilder[]; kept: KeptBuilder[] }> {
  const seen = new Set<string>();
  const stale: StaleBuilder[] = [];
  const kept: KeptBuilder[] = [];
  const listings = new Map<string, Promise<string[]>>();
  const idsStartingWith = (prefix: string) => {
    if (!listings.has(prefix)) listings.set(prefix, deps.releases.idsStartingWith(prefix));
    return listings.get(prefix)!;
  };
  const { builders, unread } = await knownBuilders(deps.definitionsDir);
  kept.push(...unread);
  for (const { definition, arch, builder } of builders) {
    const provider = providerOf(deps.providers, builder.provider);
    if (!provider?.listOwned || seen.has(listingKey(builder))) continue;
    seen.add(listingKey(builder));
    for (const resource of await provider.listOwned(builder)) {
      keepAlive();
      const owner = await attribute(resource, idsStartingWith);
      if ('unknown' in owner) {
        kept.push({ kind: resource.kind, id: resource.id, reason: owner.unknown });
        continue;
      }
      const { releaseId } = owner;
      const state = await deps.releases.state(releaseId);
      const age = resource.createdAt ? Date.parse(input.now) - Date.parse(resource.createdAt) : undefined;
      const reason =
        state === 'closed' || state === 'cancelled'
          ? `release ${releaseId} is closed`
          : state === 'unknown'
            ? `release ${releaseId} is unknown to Temporal`
            : age !== undefined && age > input.ttlMs
              ? `older than the TTL (${Math.round(age / 3600e3)} h)`
              : undefined;
      if (reason) stale.push({ definition, arch, builder, resource: { ...resource, releaseId, arch: resource.arch ?? owner.arch }, reason });
      else kept.push({ kind: resource.kind, id: resource.id, releaseId, reason: `release ${releaseId} is running` });
    }
  }
  return { stale, kept };
}

export async function deleteStaleBuilder(deps: JanitorDeps, item: StaleBuilder): Promise<void> {
  const provider = providerOf(deps.providers, item.builder.provider);
  if (!provider?.deleteOwned) throw new Error(`provider ${item.builder.provider} cannot delete ${item.resource.kind} ${item.resource.id}`);
  await provider.deleteOwned(item.builder, item.resource);
}
