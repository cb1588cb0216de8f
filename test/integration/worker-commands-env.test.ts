// Commands the worker runs for a definition (a command builder provider, an activation hook) see an explicit
// environment: the variables the definition names in passEnv, PATH, HOME, LANG and the release's own variables.
// A worker variable nobody named (the worker's cloud credentials, its Temporal API key) is not visible to them.
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createActivationActivities, createActivationDrivers } from '../../activities/activation';
import { createCommandProvider, type CommandBuilder } from '../../activities/hosts/command';
import type { Candidate } from '../../activities/types';
import { parsePlan } from '../../config/load';
import { Builder } from '../../config/schema';
import { testDir } from './builder-fixtures';

const UNNAMED = 'BOOTC_TEST_WORKER_ONLY_SECRET';
const NAMED = 'BOOTC_TEST_NAMED_FOR_COMMAND';
/** What sh itself adds to any environment it is given. */
const SHELL_OWN = new Set(['PWD', 'SHLVL', 'OLDPWD', '_']);

afterEach(() => {
  delete process.env[UNNAMED];
  delete process.env[NAMED];
});

function envOf(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readFileSync(file, 'utf8').split('\0').filter(Boolean)) {
    const eq = entry.indexOf('=');
    const key = entry.slice(0, eq);
    if (!SHELL_OWN.has(key)) out[key] = entry.slice(eq + 1);
  }
  return out;
}

describe('environment of worker commands', () => {
  const rig = inject('rig');
  const h = rig.sshHosts[3]!;

  it('a command builder provider sees what passEnv names, PATH, HOME, LANG and the release, not the rest of the worker', async () => {
    process.env[UNNAMED] = 'worker-only-value';
    process.env[NAMED] = 'named-value';
    const dir = testDir(rig, 'command-env');
    const script = path.join(dir, 'allocator');
    // acquire records its environment and prints a handle; wait prints the rig host; release does nothing.
    writeFileSync(script, `#!/bin/sh\ncase "$1" in acquire) env -0 > ${dir}/env; echo t1 ;; wait) echo ${h.address} ;; esac\n`);
    chmodSync(script, 0o755);
    const builder = Builder.parse({
      provider: 'command',
      acquire: [script, 'acquire'],
      wait: [script, 'wait'],
      release: [script, 'release'],
      passEnv: [NAMED],
      ssh: { privateKeyPath: rig.privateKeyPath, port: h.port },
      workDir: path.join(dir, 'work'),
    }) as CommandBuilder;
    const provider = createCommandProvider({ stateDir: path.join(dir, 'state') });
    const ctx = { releaseId: 'env-r1', arch: 'x86_64' as const };
    const host = await provider.acquire(builder, ctx);
    await provider.release(builder, ctx, host);
    const env = envOf(path.join(dir, 'env'));
    expect(env[UNNAMED]).toBeUndefined();
    expect(Object.keys(env).sort()).toEqual(['BOOTC_RELEASE_ARCH', 'BOOTC_RELEASE_ID', NAMED, 'HOME', 'LANG', 'PATH'].sort());
    expect(env).toMatchObject({ [NAMED]: 'named-value', BOOTC_RELEASE_ID: 'env-r1', BOOTC_RELEASE_ARCH: 'x86_64', PATH: process.env.PATH });
  });

  it('an activation hook sees what passEnv names, PATH, HOME, LANG and the release, not the rest of the worker', async () => {
    process.env[UNNAMED] = 'worker-only-value';
    process.env[NAMED] = 'named-value';
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hook-env-'));
    const plan = parsePlan({
      releaseId: 'env-r2',
      stamp: '20261129_120000',
      arches: ['x86_64'],
      definition: {
        name: 'hook-env',
        source: { image: 'quay.io/x/y:1' },
        architectures: { x86_64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['raw'], targets: ['local'] } },
        targets: { local: { kind: 'directory', path: dir } },
        approval: { approvers: ['a'] },
        channels: {
          staging: { activation: [{ kind: 'command', command: ['sh', '-c', `env -0 > ${dir}/env`], passEnv: [NAMED] }] },
        },
      },
    });
    const candidate: Candidate = {
      arch: 'x86_64',
      target: 'local',
      kind: 'directory',
      imageId: path.join(dir, 'hook-env-x86_64.raw'),
      name: 'hook-env-x86_64-20261129_120000',
      type: 'raw',
      size: 10,
      sha256: 'ab',
    };
    await createActivationActivities(createActivationDrivers({ stateDir: dir })).activate({ plan, channel: 'staging', candidates: [candidate], approvedBy: 'a' });
    const env = envOf(path.join(dir, 'env'));
    expect(env[UNNAMED]).toBeUndefined();
    expect(Object.keys(env).sort()).toEqual(['BOOTC_RELEASE_ID', NAMED, 'HOME', 'LANG', 'PATH'].sort());
    expect(env).toMatchObject({ [NAMED]: 'named-value', BOOTC_RELEASE_ID: 'env-r2' });
  });
});
