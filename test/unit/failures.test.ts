// One list of failure types (activities/failures.ts): every type the production code throws is in it, every type a
// retry policy names is in it, and workflows can import it. A type spelled differently by a thrower and a policy
// would make a retry policy wait for a failure that never comes (workflows/timeouts.ts once named PermissionDenied,
// which nothing threw).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { FailureType, NOT_RETRIED } from '../../activities/failures';
import { activationOptions, activityOptions } from '../../workflows/timeouts';
import type { ReleaseDefinition } from '../../config/schema';

const repo = path.resolve(__dirname, '../..');
const LISTED = new Set<string>(Object.values(FailureType));
const PRODUCTION = ['activities', 'workflows', 'worker', 'client', 'config', 'scripts'];

const sources = execFileSync('git', ['ls-files', '-z', ...PRODUCTION], { cwd: repo })
  .toString()
  .split('\0')
  .filter((f) => f.endsWith('.ts'))
  .map((file) => ({ file, source: ts.createSourceFile(file, readFileSync(path.join(repo, file), 'utf8'), ts.ScriptTarget.Latest, true) }));

/**
 * The type names an expression can evaluate to: a literal, FailureType.X, either branch of a conditional, and the
 * fallback of `caught.type ?? fallback` (a failure passed on keeps the type its thrower gave it).
 */
function typeNames(e: ts.Expression, where: string): string[] {
  if (ts.isBinaryExpression(e) && e.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken) {
    const passedOn = ts.isPropertyAccessExpression(e.left) && e.left.name.text === 'type';
    return [...(passedOn ? [] : typeNames(e.left, where)), ...typeNames(e.right, where)];
  }
  if (ts.isStringLiteralLike(e)) return [e.text];
  if (ts.isPropertyAccessExpression(e) && e.expression.getText() === 'FailureType') {
    const name = e.name.text as keyof typeof FailureType;
    return [FailureType[name] ?? `FailureType.${name} (not in the list)`];
  }
  if (ts.isConditionalExpression(e)) return [...typeNames(e.whenTrue, where), ...typeNames(e.whenFalse, where)];
  if (ts.isParenthesizedExpression(e)) return typeNames(e.expression, where);
  return [`${where}: a failure type the test cannot read (${e.getText()}); use a FailureType constant`];
}

function walk(node: ts.Node, visit: (n: ts.Node) => void) {
  visit(node);
  node.forEachChild((c) => walk(c, visit));
}

/** Every failure type given to ApplicationFailure.nonRetryable / retryable / create / fromError, with where. */
function thrownTypes(): { type: string; where: string }[] {
  const out: { type: string; where: string }[] = [];
  for (const { file, source } of sources)
    walk(source, (n) => {
      if (!ts.isCallExpression(n) || !ts.isPropertyAccessExpression(n.expression)) return;
      const method = n.expression.name.text;
      if (n.expression.expression.getText() !== 'ApplicationFailure') return;
      const where = `${file}:${source.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
      let type: ts.Expression | undefined;
      if (method === 'nonRetryable' || method === 'retryable') type = n.arguments[1];
      else if (method === 'create' || method === 'fromError') {
        const options = n.arguments[method === 'create' ? 0 : 1];
        if (options && ts.isObjectLiteralExpression(options))
          type = options.properties.find((p): p is ts.PropertyAssignment => ts.isPropertyAssignment(p) && p.name.getText() === 'type')?.initializer;
      } else return;
      if (type) for (const t of typeNames(type, where)) out.push({ type: t, where });
    });
  return out;
}

/** Every name in a `nonRetryableErrorTypes: [...]` written in the code. */
function policyTypes(): { type: string; where: string }[] {
  const out: { type: string; where: string }[] = [];
  for (const { file, source } of sources)
    walk(source, (n) => {
      if (!ts.isPropertyAssignment(n) || n.name.getText() !== 'nonRetryableErrorTypes') return;
      const where = `${file}:${source.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
      const list = n.initializer;
      if (!ts.isArrayLiteralExpression(list)) return out.push({ type: `${where}: ${list.getText()} (not a list the test can read)`, where });
      for (const e of list.elements) {
        if (ts.isSpreadElement(e) && e.expression.getText() === 'NOT_RETRIED') continue;
        for (const t of typeNames(e as ts.Expression, where)) out.push({ type: t, where });
      }
    });
  return out;
}

describe('failure types', () => {
  it('every type the code throws is in the one list', () => {
    const thrown = thrownTypes();
    expect(thrown.length).toBeGreaterThan(50);
    expect(thrown.filter((t) => !LISTED.has(t.type))).toEqual([]);
    // The list holds nothing that nothing throws.
    const used = new Set(thrown.map((t) => t.type));
    expect([...LISTED].filter((t) => !used.has(t))).toEqual([]);
  });

  it('every type a retry policy names is in the list, as the activity options carry them', () => {
    expect(policyTypes().filter((t) => !LISTED.has(t.type))).toEqual([]);
    for (const t of NOT_RETRIED) expect(LISTED.has(t)).toBe(true);
    const timeouts: ReleaseDefinition['timeouts'] = { heartbeat: '2m', retryInitial: '10s', retryMax: '10m', maxAttempts: 0, stagingWait: '30m' };
    const options = [activityOptions(timeouts, { startToCloseTimeout: '1h' }), activationOptions({ timeouts, channels: {} }, 'stable')];
    for (const o of options) {
      expect(o.retry?.nonRetryableErrorTypes).toContain(FailureType.Permission);
      for (const t of o.retry?.nonRetryableErrorTypes ?? []) expect(LISTED.has(t), t).toBe(true);
    }
  });

  it('lives in a module without imports, so workflow code may use it', () => {
    const text = readFileSync(path.join(repo, 'activities/failures.ts'), 'utf8');
    expect(text).not.toMatch(/^\s*import\b|require\(/m);
  });
});
