// The import rules of the layout, held against every source file: nothing under activities/ imports from workflows/
// (workflows import activity types, not the other way round); worker/ and client/ never import each other (what both
// need is in config/, e.g. config/temporal.ts); no production code (activities, workflows, worker, client, config,
// scripts) imports from test/. Every import counts: static, type-only, `export ... from`, dynamic `import()` and
// `require()`, found by TypeScript's own pre-processor (so comments and strings do not count).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '../..');
const PRODUCTION = ['activities', 'workflows', 'worker', 'client', 'config', 'scripts'];
const RULES: { from: string[]; to: string; why: string }[] = [
  { from: ['activities'], to: 'workflows', why: 'activities/ must not import workflows/' },
  { from: ['worker'], to: 'client', why: 'worker/ must not import client/' },
  { from: ['client'], to: 'worker', why: 'client/ must not import worker/' },
  { from: PRODUCTION, to: 'test', why: 'production code must not import test/' },
];
/**
 * The one allowed crossing: the demo runs on the local rig, whose builder image is the bootc-image-builder stand-in,
 * and stand-ins live under test/standins/. The worker, the CLI and `bootc-release dev` never load it.
 */
const ALLOWED: { file: string; under: string }[] = [{ file: 'scripts/demo-stack.ts', under: 'test/standins/' }];
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;

/** One line per import that breaks a rule: `file:line: imports 'spec' (target): why`. Paths are repo-relative. */
function importViolations(files: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [file, text] of Object.entries(files)) {
    const top = file.split('/')[0]!;
    for (const { fileName: spec, pos } of ts.preProcessFile(text, true, true).importedFiles) {
      if (!spec.startsWith('.')) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
      const rule = RULES.find((r) => r.from.includes(top) && target.split('/')[0] === r.to);
      if (!rule || ALLOWED.some((a) => a.file === file && target.startsWith(a.under))) continue;
      const line = text.slice(0, pos).split('\n').length;
      found.push(`${file}:${line}: imports '${spec}' (${target}): ${rule.why}`);
    }
  }
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(path.join(repo, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sources(rel);
    return SOURCE.test(e.name) && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

describe('import rules', () => {
  it('hold for every source file in the repository', () => {
    const files = [...PRODUCTION, 'test'].flatMap(sources);
    expect(files.length).toBeGreaterThan(100);
    expect(files).toContain('client/cli.ts');
    expect(importViolations(Object.fromEntries(files.map((f) => [f, readFileSync(path.join(repo, f), 'utf8')])))).toEqual([]);
  });

  it('catch each kind of import that breaks a rule, naming the file and line', () => {
    const violations = importViolations({
      'activities/aws/target.ts': "import { x } from './clients';\nimport type { ReleaseStatus } from '../../workflows/messages';\n",
      'worker/main.ts': "// import { connectClient } from '../client/release-client';\nexport { connectClient } from '../client/release-client';\n",
      'client/cli.ts': "const a = 1;\nconst b = 2;\nconst { runWorkerFromEnv } = await import('../worker/main');\n",
      'scripts/demo-stack.ts': "import { freePort } from './servers/tools';\nconst rig = require('../test/rig/global-setup');\n",
      'config/temporal.ts': "const text = \"import('../test/x')\";\nimport type * as w from '../workflows';\n",
    });
    expect(violations).toEqual([
      "activities/aws/target.ts:2: imports '../../workflows/messages' (workflows/messages): activities/ must not import workflows/",
      "worker/main.ts:2: imports '../client/release-client' (client/release-client): worker/ must not import client/",
      "client/cli.ts:3: imports '../worker/main' (worker/main): client/ must not import worker/",
      "scripts/demo-stack.ts:2: imports '../test/rig/global-setup' (test/rig/global-setup): production code must not import test/",
    ]);
  });

  it('let tests import anything, and workflows import activity types', () => {
    expect(
      importViolations({
        'test/rig/worker-process.ts': "import { connectWorker } from '../../worker/run';\nimport { ReleaseClient } from '../../client/release-client';\n",
        'workflows/image-release.ts': "import type { ReleaseActivities } from '../activities';\n",
        'scripts/dev-stack.ts': "import { runWorkerProgram } from '../client/worker-process';\n",
      }),
    ).toEqual([]);
  });
});
