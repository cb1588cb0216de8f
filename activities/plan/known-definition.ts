// Only definitions the worker knows run by default. A definition sent whole in the start input chooses the commands
// this worker runs (command provider, hooks), the files it ships to builders and the endpoints that receive its API
// keys (iamEndpoint, authUrl), and it lists its own approvers; anyone who can reach Temporal can send one. So a
// whole definition runs only when it equals the worker's definition of the same name, unless the worker allows
// inline definitions (BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS=true, see docs/security.md).
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, findDefinition } from '../../config/load';
import type { ReleaseDefinition } from '../../config/schema';
import { FailureType } from '../failures';

export async function requireKnownDefinition(definitionsDir: string, sent: ReleaseDefinition): Promise<void> {
  let known: ReleaseDefinition;
  try {
    known = await findDefinition(definitionsDir, sent.name);
  } catch (err) {
    // Only "no file declares that name" means the definition is unknown; other errors are the worker's own (an
    // unreadable directory, a broken file, a name declared twice) and are reported as they are.
    if (err instanceof ConfigError && err.problems[0]?.startsWith('unknown release definition'))
      throw refused(sent.name, `it has none named "${sent.name}"`);
    throw err;
  }
  const differences = differingPaths(known, sent);
  if (differences.length)
    throw refused(
      sent.name,
      `its "${sent.name}" differs at ${differences.slice(0, 5).join(', ')}${differences.length > 5 ? ` and ${differences.length - 5} more` : ''}`,
    );
}

function refused(name: string, why: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `input.plan.definition: release definition "${name}" was sent whole in the start input, and this worker runs only ` +
      `the definitions it knows: ${why}. Start it by name from the worker's definitions directory, or allow inline ` +
      `definitions on the worker (BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS=true)`,
    FailureType.Config,
  );
}

/** Leaf paths where two parsed definitions differ (key order and absent-vs-undefined do not count). */
export function differingPaths(a: unknown, b: unknown, at = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (isObject(a) && isObject(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== undefined || b[k] !== undefined).sort();
    return keys.flatMap((k) => differingPaths(a[k], b[k], at ? `${at}.${k}` : k));
  }
  return a === b ? [] : [at || '(top level)'];
}
