// Loading and validating release definitions. Errors name the path of each problem, one per line,
// so `bootc-release validate` and the first activity of a release report the same thing.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ReleaseDefinition, ReleasePlan, type ReleaseDefinitionInput } from './schema';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source}: invalid release definition\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `architectures.s390x.builder.region: required` */
export function formatIssues(error: z.ZodError, prefix: (string | number)[] = []): string[] {
  return error.issues.map((issue) => {
    const where = [...prefix, ...issue.path].map(String).join('.') || '(top level)';
    return `${where}: ${describeIssue(issue)}`;
  });
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) return 'required';
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator') {
    return issue.message;
  }
  return issue.message;
}

export function parseDefinition(data: unknown, source = 'definition'): ReleaseDefinition {
  const result = ReleaseDefinition.safeParse(data);
  if (!result.success) throw new ConfigError(source, formatIssues(result.error));
  return result.data;
}

export function parsePlan(data: unknown, source = 'plan'): ReleasePlan {
  const result = ReleasePlan.safeParse(data);
  if (!result.success) throw new ConfigError(source, formatIssues(result.error));
  return result.data;
}

export function parseDefinitionYaml(text: string, source: string): ReleaseDefinition {
  let data: unknown;
  try {
    data = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    if (err instanceof YAMLParseError) throw new ConfigError(source, [`(yaml) ${err.message.split('\n')[0]}`]);
    throw err;
  }
  return parseDefinition(data, source);
}

export async function loadDefinitionFile(file: string): Promise<ReleaseDefinition> {
  return parseDefinitionYaml(await readFile(file, 'utf8'), file);
}

/** Raw (unvalidated, defaults not applied) YAML, for the CLI to send as a plan the worker validates again. */
export async function readDefinitionInput(file: string): Promise<ReleaseDefinitionInput> {
  const def = await loadDefinitionFile(file);
  return def as ReleaseDefinitionInput;
}

/**
 * Definitions a worker knows: every *.yaml / *.yml in its definitions directory, by their `name`.
 * A broken file is reported when it is asked for, not when another one is.
 */
export async function findDefinition(dir: string, definitionName: string): Promise<ReleaseDefinition> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new ConfigError(dir, [`definitions directory cannot be read: ${(err as Error).message}`]);
  }
  const known: string[] = [];
  for (const entry of entries.sort()) {
    if (!/\.ya?ml$/.test(entry)) continue;
    const file = path.join(dir, entry);
    const text = await readFile(file, 'utf8');
    let declared: unknown;
    try {
      declared = (parseYaml(text) as { name?: unknown } | null)?.name;
    } catch {
      continue;
    }
    if (typeof declared === 'string') known.push(declared);
    if (declared === definitionName) return parseDefinitionYaml(text, file);
  }
  throw new ConfigError('definition', [
    `unknown release definition "${definitionName}" (the worker knows: ${known.join(', ') || 'none'}, in ${dir})`,
  ]);
}
