// The repository is read on its own (a clone, a review, the merged tree): what code and docs rely on must be
// findable inside it. So no tracked file may send a reader to design notes kept outside the repository, every
// relative link in README.md and docs/*.md must reach a file (and heading) that exists, and every `docs/<page>.md`
// a comment or test cites must exist too.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '../..');

const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: repo })
  .toString()
  .split('\0')
  .filter(
    (f) =>
      f &&
      f !== 'package-lock.json' &&
      existsSync(path.join(repo, f)) &&
      statSync(path.join(repo, f)).isFile(),
  );

const read = (file: string) => readFileSync(path.join(repo, file), 'utf8');

// Spelled in pieces so that this file does not match itself.
const OUTSIDE = new RegExp(
  ['DESIGN', 'TESTING', 'STYLE']
    .map((n) => `\\b${n}\\.md\\b`)
    .concat(['\\.\\./' + 'shared\\b', '/work/' + 'shared\\b'])
    .join('|'),
);

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of stripCode(markdown).split('\n')) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .replace(/`/g, '')
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n ? `${base}-${n}` : base);
  }
  return anchors;
}

/** Fenced blocks and inline code hold command lines and examples, not links. */
function stripCode(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** `file` (repo-relative) exists, and so does `#anchor` in it when given; returns what is wrong, or undefined. */
function problemWith(file: string, anchor: string | undefined): string | undefined {
  const full = path.join(repo, file);
  if (!existsSync(full)) return `${file} does not exist`;
  if (anchor && file.endsWith('.md') && !anchorsOf(read(file)).has(anchor))
    return `${file} has no heading #${anchor}`;
  return undefined;
}

describe('documents the repository relies on', () => {
  it('are inside the repository: no tracked file cites design notes kept outside it', () => {
    const hits = tracked.flatMap((file) =>
      read(file)
        .split('\n')
        .flatMap((line, i) => (OUTSIDE.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(hits).toEqual([]);
  });

  it('are reached by every relative link in README.md and docs/*.md', () => {
    const pages = tracked.filter((f) => f === 'README.md' || /^docs\/[^/]+\.md$/.test(f));
    expect(pages).toContain('README.md');
    const broken: string[] = [];
    for (const page of pages) {
      for (const m of stripCode(read(page)).matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const link = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // http:, https:, mailto:
        const [target, anchor] = link.split('#') as [string, string | undefined];
        const file = target ? path.posix.normalize(path.posix.join(path.posix.dirname(page), target)) : page;
        const problem = problemWith(file, anchor);
        if (problem) broken.push(`${page}: [${link}]: ${problem}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('exist wherever a tracked file cites docs/<page>.md', () => {
    const broken = tracked.flatMap((file) =>
      [...read(file).matchAll(/(?<![\w/.-])docs\/([\w.-]+\.md)(?:#([\w-]+))?/g)].flatMap((m) => {
        const problem = problemWith(`docs/${m[1]}`, m[2]);
        return problem ? [`${file}: ${m[0]}: ${problem}`] : [];
      }),
    );
    expect(broken).toEqual([]);
  });
});
