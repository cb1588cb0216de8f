// The janitor's side effects: find builder resources (by tag or name prefix) whose release is closed, unknown, or
// older than the TTL, across every definition the worker knows, and delete them one by one.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { heartbeat } from '@temporalio/activity';
import { parse as parseYaml } from 'yaml';
import { parseDefinition } from '../../config/load';
import type { Builder } from '../../config/schema';
import type { BuilderProvider, OwnedResource } from '../types';

export interface StaleBuilder {
  definition: string;
  arch: string;
  builder: Builder;
  resource: OwnedResource;
  reason: string;
}

export interface JanitorDeps {
  definitionsDir: string;
  providers: Partial<Record<Builder['provider'], BuilderProvider<any>>>;
  /** 'open' while the release workflow runs; 'closed', 'cancelled' or 'unknown' otherwise. */
  releaseState(releaseId: string): Promise<'open' | 'closed' | 'cancelled' | 'unknown'>;
}

async function knownBuilders(dir: string): Promise<{ definition: string; arch: string; builder: Builder }[]> {
  const out: { definition: string; arch: string; builder: Builder }[] = [];
  for (const entry of (await readdir(dir).catch(() => [] as string[])).sort()) {
    if (!/\.ya?ml$/.test(entry)) continue;
    try {
      const def = parseDefinition(parseYaml(await readFile(path.join(dir, entry), 'utf8')), entry);
      for (const [arch, spec] of Object.entries(def.architectures)) out.push({ definition: def.name, arch, builder: spec!.builder });
    } catch {
      // A broken definition cannot own builders we could find through it; `validate` reports it.
    }
  }
  return out;
}

/** Providers configured identically (same region/endpoint) are listed once. */
const listingKey = (b: Builder) => JSON.stringify({ ...b, ssh: undefined, dataVolume: undefined, workDir: undefined });

export async function findStaleBuilders(deps: JanitorDeps, input: { ttlMs: number; now: string }): Promise<StaleBuilder[]> {
  const seen = new Set<string>();
  const stale: StaleBuilder[] = [];
  for (const { definition, arch, builder } of await knownBuilders(deps.definitionsDir)) {
    const provider = deps.providers[builder.provider];
    if (!provider?.listOwned || seen.has(listingKey(builder))) continue;
    seen.add(listingKey(builder));
    for (const resource of await provider.listOwned(builder)) {
      heartbeat();
      const state = await deps.releaseState(resource.releaseId);
      const age = resource.createdAt ? Date.parse(input.now) - Date.parse(resource.createdAt) : undefined;
      const reason =
        state === 'closed' || state === 'cancelled'
          ? `release ${resource.releaseId} is closed`
          : state === 'unknown'
            ? `release ${resource.releaseId} is unknown to Temporal`
            : age !== undefined && age > input.ttlMs
              ? `older than the TTL (${Math.round(age / 3600e3)} h)`
              : undefined;
      if (reason) stale.push({ definition, arch, builder, resource, reason });
    }
  }
  return stale;
}

export async function deleteStaleBuilder(deps: JanitorDeps, item: StaleBuilder): Promise<void> {
  const provider = deps.providers[item.builder.provider];
  if (!provider?.deleteOwned) throw new Error(`provider ${item.builder.provider} cannot delete ${item.resource.kind} ${item.resource.id}`);
  await provider.deleteOwned(item.builder, item.resource);
}
