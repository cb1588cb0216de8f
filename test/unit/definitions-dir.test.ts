// The definitions a worker knows, by name: a name declared twice is an error naming both files, and a file that
// cannot be read or parsed does not hide the others.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, findDefinition } from '../../config/load';

const definition = (name: string) => ({
  name,
  source: { image: 'quay.io/example/builder:latest' },
  architectures: {
    s390x: { builder: { provider: 'static', hosts: [{ address: '192.0.2.1' }] }, types: ['qcow2'], targets: ['local'] },
  },
  targets: { local: { kind: 'directory', path: '/srv/images' } },
  approval: { approvers: ['copr-admin'] },
});

const problemsOf = (err: unknown) => (err instanceof ConfigError ? err.problems : [String(err)]);

describe('the definitions directory', () => {
  it('refuses a name declared by two files, naming both', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'defs-dup-'));
    writeFileSync(path.join(dir, 'farm.yaml'), stringify(definition('farm')));
    writeFileSync(path.join(dir, 'farm-copy.yml'), stringify(definition('farm')));
    writeFileSync(path.join(dir, 'other.yaml'), stringify(definition('other')));
    const err = await findDefinition(dir, 'farm').catch((e: unknown) => e);
    expect(problemsOf(err)).toEqual([
      `release definition "farm" is declared by two files: ${path.join(dir, 'farm-copy.yml')} and ${path.join(dir, 'farm.yaml')}; rename or remove one`,
    ]);
    expect((await findDefinition(dir, 'other')).name).toBe('other');
  });

  it('finds a definition past a file that cannot be read and one that is not YAML', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'defs-unreadable-'));
    symlinkSync(path.join(dir, 'gone'), path.join(dir, 'a-dangling.yaml'));
    mkdirSync(path.join(dir, 'b-directory.yaml'));
    writeFileSync(path.join(dir, 'c-broken.yaml'), 'name: broken\nsource: { image: x\n');
    writeFileSync(path.join(dir, 'farm.yaml'), stringify(definition('farm')));
    expect((await findDefinition(dir, 'farm')).name).toBe('farm');
  });

  it('lists the files it could not read when the name is unknown (one of them may be the one asked for)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'defs-unknown-'));
    symlinkSync(path.join(dir, 'gone'), path.join(dir, 'a-dangling.yaml'));
    writeFileSync(path.join(dir, 'c-broken.yaml'), 'name: broken\nsource: { image: x\n');
    writeFileSync(path.join(dir, 'farm.yaml'), stringify(definition('farm')));
    const err = await findDefinition(dir, 'copr').catch((e: unknown) => e);
    expect(problemsOf(err)).toEqual([
      `unknown release definition "copr" (the worker knows: farm, in ${dir})`,
      `${path.join(dir, 'a-dangling.yaml')}: cannot be read: no such file`,
      expect.stringMatching(new RegExp(`^${path.join(dir, 'c-broken.yaml')}: line 3, column 1: `)),
    ]);
  });
});
