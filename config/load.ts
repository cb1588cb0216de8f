// Loading and validating release definitions. Errors name the path of each problem, one per line,
// so `bootc-release validate` and the first activity of a release report the same thing.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ReleaseDefinition, ReleasePlan } from './schema';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(
      problems.length === 1
        ? `${source}: ${problems[0]}`
        : `${source}: invalid release definition\n${problems.map((p) => `  ${p}`).join('\n')}`,
    );
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

/** What went wrong reading a file, without Node's own wording (which repeats the path). */
function readProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (code ?? (err as Error).message);
  return `cannot be read: ${why}`;
}

/** `line 3, column 1: Flow map must end with a }`: where an editor should jump, then what is wrong there. */
function yamlProblem(err: YAMLParseError): string {
  const what = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  const at = err.linePos?.[0];
  return at ? `line ${at.line}, column ${at.col}: ${what}` : what;
}

/** The YAML of a definition file, parsed but not validated; unreadable files and syntax errors are ConfigErrors. */
export async function readDefinitionData(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [readProblem(err)]);
  }
  return parseYamlText(text, file);
}

function parseYamlText(text: string, source: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: true }) as unknown;
  } catch (err) {
    if (err instanceof YAMLParseError) throw new ConfigError(source, [yamlProblem(err)]);
    throw err;
  }
}

export async function loadDefinitionFile(file: string): Promise<ReleaseDefinition> {
  return parseDefinition(await readDefinitionData(file), file);
}

/**
 * Definitions a worker knows: every *.yaml / *.yml in its definitions directory, by their `name`. A file that cannot
 * be read or parsed does not hide the others (it is named when the definition asked for is not found); a name that
 * two files declare is refused, naming both, rather than one of them winning by file order.
 */
export async function findDefinition(dir: string, definitionName: string): Promise<ReleaseDefinition> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new ConfigError(dir, [`definitions directory ${readProblem(err)}`]);
  }
  const files = new Map<string, { file: string; data: unknown }[]>();
  const unreadable: string[] = [];
  for (const entry of entries.sort()) {
    if (!/\.ya?ml$/.test(entry)) continue;
    const file = path.join(dir, entry);
    try {
      const data = await readDefinitionData(file);
      const declared = (data as { name?: unknown } | null)?.name;
      if (typeof declared === 'string') files.set(declared, [...(files.get(declared) ?? []), { file, data }]);
      else unreadable.push(`${file}: has no name`);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      unreadable.push(...err.problems.map((p) => `${file}: ${p}`));
    }
  }
  const found = files.get(definitionName) ?? [];
  if (found.length > 1)
    throw new ConfigError('definition', [
      `release definition "${definitionName}" is declared by ${found.length === 2 ? 'two' : found.length} files: ` +
        `${found.map((f) => f.file).join(' and ')}; rename or remove one`,
    ]);
  if (found.length === 1) return parseDefinition(found[0]!.data, found[0]!.file);
  throw new ConfigError('definition', [
    `unknown release definition "${definitionName}" (the worker knows: ${[...files.keys()].join(', ') || 'none'}, in ${dir})`,
    ...unreadable,
  ]);
}
