// The CLI's answer to a file it cannot use: exit 2 and one line naming the file (and the line, for YAML), before it
// tries to reach Temporal; and the arch override's error said once.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { resolvePlan } from '../../activities/plan/resolve-plan';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'cli-input-'));

/** Runs the CLI against a Temporal address nobody listens on: reaching it would fail with exit 1, not 2. */
const cli = (...args: string[]) =>
  run('npx', ['tsx', path.join(repo, 'client/cli.ts'), ...args], {
    cwd: repo,
    env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9' },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

const definition = {
  name: 'one-arch',
  source: { image: 'quay.io/example/builder:latest' },
  architectures: {
    s390x: { builder: { provider: 'static', hosts: [{ address: '192.0.2.1' }] }, types: ['qcow2'], targets: ['local'] },
  },
  targets: { local: { kind: 'directory', path: '/srv/images' } },
  approval: { approvers: ['copr-admin'] },
};

const brokenYaml = ['name: broken', 'source: { image: quay.io/x/y:1', 'approval:', '  approvers: [a]', ''].join('\n');

describe('bootc-release validate', () => {
  it('exits 2 naming a file that does not exist', async () => {
    const missing = path.join(dir, 'missing.yaml');
    const r = await cli('validate', missing);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${missing}: cannot be read: no such file`);
  });

  it('exits 2 with the file and the line of a YAML syntax error', async () => {
    const file = path.join(dir, 'broken-validate.yaml');
    writeFileSync(file, brokenYaml);
    const r = await cli('validate', file);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(new RegExp(`^${file}: line 3, column 1: [^\\n]+$`));
  });
});

describe('bootc-release release start FILE', () => {
  it('exits 2 with the file and the line of a YAML syntax error, before connecting to Temporal', async () => {
    const file = path.join(dir, 'broken-start.yaml');
    writeFileSync(file, brokenYaml);
    const r = await cli('release', 'start', file);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(new RegExp(`^${file}: line 3, column 1: [^\\n]+$`));
  });

  it('exits 2 for a missing file, before connecting to Temporal', async () => {
    const missing = path.join(dir, 'nowhere.yaml');
    const r = await cli('release', 'start', missing);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${missing}: cannot be read: no such file`);
  });

  it('says an --arch the definition lacks once, before connecting to Temporal', async () => {
    const file = path.join(dir, 'one-arch.yaml');
    writeFileSync(file, stringify(definition));
    const r = await cli('release', 'start', file, '--arch', 'x86_64');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('--arch: x86_64 not in the definition (it has s390x)');
  });

  it('refuses an approval timeout the workflow could never wait for, before anything starts', async () => {
    const file = path.join(dir, 'forever.yaml');
    writeFileSync(file, stringify({ ...definition, approval: { approvers: ['copr-admin'], timeout: '100000000d' } }));
    const r = await cli('release', 'start', file);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${file}: approval.timeout: must be at most 90d`);
  });

  it('names a schema problem with the file it is in', async () => {
    const file = path.join(dir, 'no-target.yaml');
    writeFileSync(file, stringify({ ...definition, targets: {} }));
    const r = await cli('release', 'start', file);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${file}: architectures.s390x.targets.0: unknown target "local" (define it under targets)`);
  });
});

describe('arches asked of the worker', () => {
  it('says an architecture the definition lacks once', async () => {
    const defs = mkdtempSync(path.join(os.tmpdir(), 'cli-input-defs-'));
    writeFileSync(path.join(defs, 'one-arch.yaml'), stringify(definition));
    const err = await resolvePlan({ definitionsDir: defs }, {
      input: { definition: 'one-arch', arches: ['x86_64'] },
      releaseId: 'r1',
      startedAt: '2026-11-29T12:00:00Z',
    }).catch((e: Error) => e);
    expect((err as Error).message).toBe('input.arches: x86_64 not in the definition (it has s390x)');
  });
});
