// image-map-git against a real git repository (a bare repo on disk, cloned and pushed to with the git CLI): the
// release's entries are merged into the inventory file, committed (naming the release and the approver) and pushed;
// nothing is committed when nothing changes; a push that loses a race to another clone is merged again and pushed.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createActivities } from '../../activities';
import { createActivationDrivers } from '../../activities/activation';
import type { Candidate } from '../../activities/types';
import { parsePlan } from '../../config/load';
import { createActivityDeps } from '../../worker/wiring';

const rig = inject('rig');
const dir = mkdtempSync(path.join(rig.dir, 'activation-git-'));
const { activate } = createActivities(
  createActivityDeps({ definitionsDir: dir, stagingDir: dir, stateDir: dir, stagingQueue: 'q@w' }, { state: async () => 'open' as const, idsStartingWith: async () => [] }),
);
const git = (...args: string[]) => execFileSync('git', args, { cwd: dir }).toString().trim();

function seedRepository(name = 'ansible'): string {
  const bare = path.join(dir, `${name}.git`);
  git('init', '--quiet', '--bare', '--initial-branch', 'main', bare);
  const work = path.join(dir, `${name}-seed`);
  git('clone', '--quiet', bare, work);
  execFileSync('mkdir', ['-p', path.join(work, 'inventory/group_vars')]);
  writeFileSync(
    path.join(work, 'inventory/group_vars/copr_aws'),
    stringify({ copr_builder_images: { aws: { x86_64: 'ami-x86-old', aarch64: 'ami-arm-old' } }, copr_other: 'kept' }),
  );
  const id = ['-c', 'user.name=seed', '-c', 'user.email=seed@localhost'];
  git('-C', work, 'add', '.');
  git('-C', work, ...id, 'commit', '--quiet', '-m', 'seed');
  git('-C', work, 'push', '--quiet', 'origin', 'HEAD:main');
  return bare;
}

const candidate: Candidate = {
  arch: 'aarch64',
  target: 'aws',
  kind: 'aws',
  region: 'us-east-1',
  imageId: 'ami-arm-new',
  name: 'copr-builder-aarch64-20261126_120000',
  type: 'ami',
  size: 10,
  sha256: 'ab',
};

function planFor(releaseId: string, repository: string, branch = 'main') {
  return parsePlan({
    releaseId,
    stamp: '20261126_120000',
    arches: ['aarch64'],
    definition: {
      name: 'copr-builder',
      source: { image: 'quay.io/x/y:1' },
      architectures: { aarch64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['ami'], targets: ['aws'] } },
      targets: { aws: { kind: 'aws', region: 'us-east-1' } },
      approval: { approvers: ['copr-admin'] },
      channels: { staging: { activation: [{ kind: 'image-map-git', repository, branch, file: 'inventory/group_vars/copr_aws' }] } },
    },
  });
}

describe('image map in a git repository', () => {
  it('merges, commits naming the release and the approver, pushes, and commits nothing on a retry', async () => {
    const bare = seedRepository();
    const input = { plan: planFor('git-1', bare), channel: 'staging', candidates: [candidate], approvedBy: 'copr-admin' };
    const record = await activate(input);
    const retried = await activate(input);

    const file = parse(git('--git-dir', bare, 'show', 'main:inventory/group_vars/copr_aws'));
    expect(file).toEqual({ copr_builder_images: { aws: { x86_64: 'ami-x86-old', aarch64: 'ami-arm-new' } }, copr_other: 'kept' });
    expect(git('--git-dir', bare, 'log', '--format=%s', 'main').split('\n')).toEqual([
      'Activate images of release git-1 on staging, approved by copr-admin',
      'seed',
    ]);
    expect(git('--git-dir', bare, 'log', '-1', '--format=%b%an', 'main')).toBe('aws.aarch64: ami-arm-old -> ami-arm-new\nbootc-release');
    const entries = [{ path: ['aws', 'aarch64'], previous: 'ami-arm-old', value: 'ami-arm-new' }];
    expect(record.replaced).toEqual([{ target: `${bare}#main:inventory/group_vars/copr_aws`, entries }]);
    expect(retried.replaced[0]!.entries).toEqual(entries);
  });

  it('merges again into the new head when another clone pushed between its clone and its push, keeping that change', async () => {
    const bare = seedRepository('raced');
    // Another person's change, committed in another clone and pushed by a pre-push hook of the activation's own push:
    // after git read the branch's head, before it sends its update. Once only (the marker).
    const other = path.join(dir, 'raced-other');
    git('clone', '--quiet', bare, other);
    const file = path.join(other, 'inventory/group_vars/copr_aws');
    writeFileSync(file, readFileSync(file, 'utf8').replace('ami-x86-old', 'ami-x86-other'));
    git('-C', other, '-c', 'user.name=other', '-c', 'user.email=other@localhost', 'commit', '--quiet', '-am', 'x86_64 by hand');
    const hooks = path.join(dir, 'raced-hooks');
    const marker = path.join(dir, 'raced-pushed');
    mkdirSync(hooks);
    writeFileSync(
      path.join(hooks, 'pre-push'),
      `#!/bin/sh\ncat >/dev/null\n[ -e ${marker} ] && exit 0\ntouch ${marker}\nunset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n` +
        `git -C ${other} push --quiet origin HEAD:main\n`,
    );
    chmodSync(path.join(hooks, 'pre-push'), 0o755);
    const hookConfig = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'core.hooksPath', GIT_CONFIG_VALUE_0: hooks };
    Object.assign(process.env, hookConfig);
    let record;
    try {
      record = await activate({ plan: planFor('git-race', bare), channel: 'staging', candidates: [candidate], approvedBy: 'copr-admin' });
    } finally {
      for (const k of Object.keys(hookConfig)) delete process.env[k];
    }

    expect(existsSync(marker)).toBe(true);
    expect(git('--git-dir', bare, 'log', '--format=%s', 'main').split('\n')).toEqual([
      'Activate images of release git-race on staging, approved by copr-admin',
      'x86_64 by hand',
      'seed',
    ]);
    const merged = parse(git('--git-dir', bare, 'show', 'main:inventory/group_vars/copr_aws'));
    expect(merged.copr_builder_images.aws).toEqual({ x86_64: 'ami-x86-other', aarch64: 'ami-arm-new' });
    expect(record.replaced[0]!.entries).toEqual([{ path: ['aws', 'aarch64'], previous: 'ami-arm-old', value: 'ami-arm-new' }]);
  });

  it('fails naming the step when the push is refused for another reason than a race, and leaves the branch alone', async () => {
    const bare = seedRepository('refused');
    const head = git('--git-dir', bare, 'rev-parse', 'main');
    writeFileSync(path.join(bare, 'hooks/pre-receive'), '#!/bin/sh\necho "inventory is frozen" >&2\nexit 1\n');
    chmodSync(path.join(bare, 'hooks/pre-receive'), 0o755);
    await expect(
      activate({ plan: planFor('git-refused', bare), channel: 'staging', candidates: [candidate], approvedBy: 'copr-admin' }),
    ).rejects.toThrow(/^channels\.staging\.activation\.0 \(.*refused\.git#main:inventory\/group_vars\/copr_aws\): .*git push failed: .*inventory is frozen/);
    expect(git('--git-dir', bare, 'rev-parse', 'main')).toBe(head);
  });
});

describe('image map in a git repository: preflight check', () => {
  const driver = createActivationDrivers({ stateDir: dir })['image-map-git'];
  const where = 'channels.staging.activation.0';
  const config = (repository: string, branch = 'main') => planFor('git-check', repository, branch).definition.channels.staging!.activation[0] as never;

  it('passes for a reachable repository with the branch, writing nothing', async () => {
    const bare = seedRepository('checked');
    const head = git('--git-dir', bare, 'rev-parse', 'main');
    const result = await driver.check(config(bare), { plan: planFor('git-check', bare), where });
    expect(result).toEqual({ ok: true, messages: [`Checking git repository ${bare}…`, `Branch main is at ${head.slice(0, 12)}.`] });
    expect(git('--git-dir', bare, 'rev-parse', 'main')).toBe(head);
  });

  it('fails for a repository that does not exist, and for a branch it does not have', async () => {
    const missing = path.join(dir, 'no-such-repository.git');
    const gone = await driver.check(config(missing), { plan: planFor('git-check', missing), where });
    expect(gone.ok).toBe(false);
    expect(gone.messages.at(-1)).toMatch(/cannot reach the repository: git ls-remote failed: .*does not appear to be a git repository.*fix repository/);
    const bare = seedRepository('branchless');
    const branch = await driver.check(config(bare, 'production'), { plan: planFor('git-check', bare, 'production'), where });
    expect(branch).toMatchObject({ ok: false, messages: [expect.any(String), `branch production does not exist in ${bare}; fix branch`] });
  });
});
