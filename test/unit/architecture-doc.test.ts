// docs/architecture.md stays true to the code: every folder under activities/ and every file under workflows/ has a
// row in its module table, and every path the table names exists.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '../..');
const doc = readFileSync(path.join(repo, 'docs/architecture.md'), 'utf8');
const table = doc.slice(doc.indexOf('## Where things live'));
const rows = [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);

describe('docs/architecture.md', () => {
  it('has a row for every activities/ folder and every workflows/ file', () => {
    const folders = readdirSync(path.join(repo, 'activities'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `activities/${e.name}/`);
    const workflows = readdirSync(path.join(repo, 'workflows'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `workflows/${f}`);
    const rootActivities = readdirSync(path.join(repo, 'activities'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `activities/${f}`);
    const missing = [...folders, ...workflows, ...rootActivities].filter((p) => !rows.includes(p));
    expect(missing, 'parts of the code docs/architecture.md does not describe').toEqual([]);
  });

  it('names only paths that exist', () => {
    expect(rows.length).toBeGreaterThan(20);
    expect(rows.filter((p) => !existsSync(path.join(repo, p)))).toEqual([]);
  });
});
