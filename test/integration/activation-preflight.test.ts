// The release's preflight checks every activation of every channel, not only the builders and targets: a git
// repository that does not exist and a hook whose executable is missing refuse the release before any builder is
// provisioned, each failure naming its config path (`channels.<channel>.activation.<i>`); reachable ones pass.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, inject, it } from 'vitest';
import { createActivities } from '../../activities';
import { createActivationDrivers } from '../../activities/activation';
import { parsePlan } from '../../config/load';
import type { Activation } from '../../config/schema';
import { createActivityDeps } from '../../worker/wiring';

const rig = inject('rig');
const dir = mkdtempSync(path.join(rig.dir, 'activation-preflight-'));
const host = rig.sshHosts[0]!;
const { preflight } = createActivities(
  createActivityDeps({ definitionsDir: dir, stagingDir: dir, stateDir: dir, stagingQueue: 'q@w' }, { state: async () => 'open' as const, idsStartingWith: async () => [] }),
);

/** A bare repository with a `main` branch, as the farm's inventory repository would be. */
function repository(): string {
  const bare = path.join(dir, 'inventory.git');
  const work = path.join(dir, 'inventory-seed');
  execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch', 'main', bare]);
  execFileSync('git', ['clone', '--quiet', bare, work]);
  mkdirSync(path.join(work, 'group_vars'));
  writeFileSync(path.join(work, 'group_vars/copr'), 'copr_builder_images: {}\n');
  const id = ['-c', 'user.name=seed', '-c', 'user.email=seed@localhost'];
  execFileSync('git', ['-C', work, 'add', '.']);
  execFileSync('git', ['-C', work, ...id, 'commit', '--quiet', '-m', 'seed']);
  execFileSync('git', ['-C', work, 'push', '--quiet', 'origin', 'HEAD:main']);
  return bare;
}
const bare = repository();

function plan(channels: Record<string, Activation[]>) {
  return parsePlan({
    releaseId: 'preflight-activation',
    stamp: '20261126_120000',
    arches: ['x86_64'],
    definition: {
      name: 'copr-builder',
      source: { image: 'quay.io/x/y:1' },
      architectures: {
        x86_64: {
          builder: { provider: 'static', hosts: [{ address: host.address, port: host.port }], ssh: { privateKeyPath: rig.privateKeyPath } },
          types: ['qcow2'],
          targets: ['local'],
        },
      },
      targets: { local: { kind: 'directory', path: path.join(dir, 'images') } },
      approval: { approvers: ['copr-admin'] },
      channels: Object.fromEntries(Object.entries(channels).map(([name, activation]) => [name, { activation }])),
    },
  });
}

const mapFile: Activation = { kind: 'image-map-file', path: path.join(dir, 'inventory', 'copr.yaml'), key: 'copr_builder_images' };
const gitMap = (repository: string): Activation => ({ kind: 'image-map-git', repository, branch: 'main', file: 'group_vars/copr', key: 'copr_builder_images' });
const hook = (command: string): Activation => ({ kind: 'command', command: [command, '--instance', 'dev'], passEnv: [], timeout: '30m' });

describe('preflight of the activations', () => {
  it('refuses a release whose git repository does not exist and whose hook is missing, naming each step, in every channel', async () => {
    const missingRepository = path.join(dir, 'no-such-inventory.git');
    const missingHook = path.join(dir, 'bin', 'copr-recycle-builders');
    const run = new MockActivityEnvironment().run(preflight, {
      plan: plan({ staging: [mapFile, gitMap(missingRepository)], production: [gitMap(bare), hook(missingHook)] }),
    });
    const error = await run.then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error?.message).toMatch(/^preflight failed; nothing was created:\n/);
    const failed = error!.message.split('\n').slice(1);
    expect(failed).toEqual([
      expect.stringMatching(
        new RegExp(
          `^  channels\\.staging\\.activation\\.1 \\(image map copr_builder_images in git repository ${missingRepository} \\(branch main\\), ` +
            'file group_vars/copr\\): Checking git repository .*; cannot reach the repository: git ls-remote failed: .*does not appear to be a git repository',
        ),
      ),
      `  channels.production.activation.1 (command hook ${missingHook} --instance dev): ` +
        `${missingHook} does not exist on the worker or is not executable; install it or fix channels.production.activation.1.command`,
    ]);
  });

  it('passes when every activation can be done, saying so for each, and writes nothing', async () => {
    const result: { messages: string[] } = await new MockActivityEnvironment().run(preflight, {
      plan: plan({ staging: [mapFile, hook('sh')], production: [gitMap(bare)] }),
    });
    const about = (where: string) => result.messages.filter((m) => m.startsWith(where));
    expect(about('channels.staging.activation.0 (image map copr_builder_images in file ').at(-1)).toMatch(/: Map file conditions met\.$/);
    expect(about('channels.staging.activation.1 (command hook sh --instance dev)').at(-1)).toMatch(/: Hook conditions met\.$/);
    expect(about('channels.production.activation.0 (image map copr_builder_images in git repository ').at(-1)).toMatch(/: Branch main is at [0-9a-f]{12}\.$/);
    expect(execFileSync('git', ['--git-dir', bare, 'rev-list', '--count', 'main']).toString().trim()).toBe('1');
  });
});

describe('preflight of an image map file on the worker', () => {
  const driver = createActivationDrivers({ stateDir: dir })['image-map-file'];
  const where = 'channels.staging.activation.0';
  const check = (file: string) => driver.check({ kind: 'image-map-file', path: file, key: 'copr_builder_images' }, { plan: plan({}), where });

  it('passes for a writable directory, and for one it would create, without creating it', async () => {
    const existing = await check(path.join(dir, 'copr.yaml'));
    expect(existing).toEqual({ ok: true, messages: [`Checking ${path.join(dir, 'copr.yaml')} on the worker…`, `${dir} is writable.`, 'Map file conditions met.'] });
    const later = path.join(dir, 'not-yet', 'inventory');
    const created = await check(path.join(later, 'copr.yaml'));
    expect(created.ok).toBe(true);
    expect(created.messages[1]).toBe(`${later} does not exist yet; it will be created in ${dir}, which is writable.`);
    expect(existsSync(path.join(dir, 'not-yet'))).toBe(false);
  });

  it('fails for a map path that is a directory, and for one under a file', async () => {
    mkdirSync(path.join(dir, 'a-directory'));
    expect((await check(path.join(dir, 'a-directory'))).messages.at(-1)).toBe(`${path.join(dir, 'a-directory')} is not a file; fix path`);
    writeFileSync(path.join(dir, 'a-file'), '');
    expect(await check(path.join(dir, 'a-file', 'copr.yaml'))).toMatchObject({ ok: false, messages: [expect.any(String), `${path.join(dir, 'a-file')} is not a directory; fix path`] });
  });
});
