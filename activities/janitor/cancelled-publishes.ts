// The janitor's other half: what cancelled releases published and could not delete themselves (the worker that ran
// the cleanup was lost, a cloud refused for a while). Found by tag at every target of the definitions the worker
// knows; only releases Temporal reports as cancelled count, since a closed release's images may be in use.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseDefinition } from '../../config/load';
import type { Target } from '../../config/schema';
import type { PublishScope } from '../types';
import { driverOf, type PublishTargets } from '../registry';
import { keepAlive } from '../runtime/heartbeat';
import type { JanitorDeps } from './stale-builders';

export interface CancelledPublish {
  definition: string;
  target: Target;
  scope: PublishScope;
}

export async function findCancelledPublishes(
  deps: Pick<JanitorDeps, 'definitionsDir' | 'releases'> & { targets: PublishTargets },
): Promise<CancelledPublish[]> {
  const found: CancelledPublish[] = [];
  const seen = new Set<string>();
  for (const entry of (await readdir(deps.definitionsDir).catch(() => [] as string[])).sort()) {
    if (!/\.ya?ml$/.test(entry)) continue;
    let def;
    try {
      def = parseDefinition(parseYaml(await readFile(path.join(deps.definitionsDir, entry), 'utf8')), entry);
    } catch {
      continue; // `validate` reports a broken definition
    }
    for (const [targetName, target] of Object.entries(def.targets)) {
      const driver = driverOf(deps.targets, target.kind);
      const key = JSON.stringify([targetName, target]);
      if (!driver?.listReleases || seen.has(key)) continue;
      seen.add(key);
      for (const scope of await driver.listReleases(target, targetName)) {
        keepAlive();
        if ((await deps.releases.state(scope.releaseId)) === 'cancelled') found.push({ definition: def.name, target, scope });
      }
    }
  }
  return found;
}
