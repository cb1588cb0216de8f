import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, loadDefinitionFile, parseDefinition } from '../../config/load';

const run = promisify(execFile);
const repo = path.resolve(__dirname, '../..');

const valid = () => ({
  name: 'copr-builder',
  source: { image: 'quay.io/example/builder:latest' },
  architectures: {
    s390x: {
      builder: {
        provider: 'ibmcloud',
        region: 'us-east',
        zone: 'us-east-1',
        profile: 'bz2-4x16',
        image: 'r014-abc',
        vpc: 'r014-vpc',
        subnet: '0757-subnet',
        keys: ['r014-key'],
      },
      types: ['qcow2'],
      targets: ['ibm'],
    },
  },
  targets: { ibm: { kind: 'ibmcloud', regions: ['us-east'], cosBucket: 'copr-images' } },
  approval: { approvers: ['copr-admin'] },
});

function problems(data: unknown): string[] {
  try {
    parseDefinition(data);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('release definition', () => {
  it('accepts the Fedora Copr farm example with all four architectures and every target kind', async () => {
    const def = await loadDefinitionFile(path.join(repo, 'examples/copr.yaml'));
    expect(Object.keys(def.architectures).sort()).toEqual(['aarch64', 'ppc64le', 's390x', 'x86_64']);
    expect(new Set(Object.values(def.targets).map((t) => t.kind))).toEqual(new Set(['aws', 'libvirt', 'openstack', 'ibmcloud']));
  });

  it('accepts the local demo definition', async () => {
    const def = await loadDefinitionFile(path.join(repo, 'examples/demo.yaml'));
    expect(Object.keys(def.architectures).length).toBeGreaterThanOrEqual(2);
  });

  it('fills defaults a reader would expect', () => {
    const def = parseDefinition(valid());
    expect(def.imageBuilder.rootfs).toBe('xfs');
    expect(def.imageBuilder.engine).toEqual(['podman']);
    expect(def.approval.timeout).toBe('7d');
    expect(def.architectures.s390x!.builder.ssh.user).toBe('root');
  });

  it('names the path of a missing field', () => {
    const data = valid();
    delete (data.architectures.s390x.builder as Record<string, unknown>).region;
    expect(problems(data)).toContain('architectures.s390x.builder.region: required');
  });

  it('refuses raw images for an IBM Cloud target, saying which types it takes', () => {
    const data = valid();
    data.architectures.s390x.types = ['raw'];
    expect(problems(data)).toContain(
      'architectures.s390x.targets.0: target "ibm" (ibmcloud) takes qcow2 or vhd images, and s390x builds only raw',
    );
  });

  it('refuses an aws target for an architecture EC2 has no instances of, before anything is uploaded', () => {
    const data = valid() as any;
    data.targets.ec2 = { kind: 'aws', region: 'us-east-1' };
    data.architectures.s390x.types = ['qcow2', 'ami'];
    data.architectures.s390x.targets = ['ibm', 'ec2'];
    expect(problems(data)).toContain('architectures.s390x.targets.1: target "ec2" (aws) cannot take s390x images: EC2 has x86_64 and aarch64 instances only');
  });

  it('refuses a reference to an undefined target', () => {
    const data = valid();
    data.architectures.s390x.targets = ['nope'];
    expect(problems(data)).toContain('architectures.s390x.targets.0: unknown target "nope" (define it under targets)');
  });

  it('refuses a secret pasted where only references belong', () => {
    const data = valid() as any;
    data.targets.ibm.apiKey = 'hunter2';
    expect(problems(data)).toContain('targets.ibm: unknown key "apiKey"');
  });

  it('refuses names that could reach a shell unquoted', () => {
    const data = valid() as any;
    data.name = 'x; rm -rf /';
    expect(problems(data)[0]).toMatch(/^name: must be 1-63 lowercase letters/);
  });

  it('refuses mixing iso with disk types', () => {
    const data = valid() as any;
    data.targets = {};
    data.architectures.s390x.targets = [];
    data.architectures.s390x.types = ['iso', 'qcow2'];
    expect(problems(data)).toContain('architectures.s390x.types: iso cannot be mixed with disk image types in one build');
  });
});

describe('bootc-release validate', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'validate-'));
  const cli = (file: string) => run('npx', ['tsx', path.join(repo, 'client/cli.ts'), 'validate', file], { cwd: repo });

  it('exits 0 for a valid definition', async () => {
    const file = path.join(dir, 'ok.yaml');
    writeFileSync(file, stringify(valid()));
    const { stdout } = await cli(file);
    expect(stdout).toMatch(/valid \(copr-builder: s390x\)/);
  });

  it('exits 2 with one line per problem naming its path', async () => {
    const data = valid() as any;
    delete data.architectures.s390x.builder.region;
    data.approval.approvers = [];
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, stringify(data));
    const err = await cli(file).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    const lines = err!.stderr.trim().split('\n');
    expect(lines).toContain(`${file}: architectures.s390x.builder.region: required`);
    expect(lines.some((l) => l.startsWith(`${file}: approval.approvers:`))).toBe(true);
    expect(lines).toHaveLength(2);
  });
});

describe('JSON Schema for editors', () => {
  it('is committed as generated from the zod schema (run `npm run schema` after changing it)', async () => {
    const { releaseJsonSchema } = await import('../../scripts/export-json-schema');
    const committed = JSON.parse(readFileSync(path.join(repo, 'config/release.schema.json'), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(releaseJsonSchema())));
  });
});
