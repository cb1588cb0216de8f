// image-map-git against a real git repository (a bare repo on disk, cloned and pushed to with the git CLI): the
// release's entries are merged into the inventory file, committed and pushed; nothing is committed when nothing changes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createActivities } from '../../activities';
import type { Candidate } from '../../activities/types';
import { parsePlan } from '../../config/load';
import { createActivityDeps } from '../../worker/wiring';

const rig = inject('rig');
const dir = mkdtempSync(path.join(rig.dir, 'activation-git-'));
const { activate } = createActivities(
  createActivityDeps({ definitionsDir: dir, stagingDir: dir, stateDir: dir, stagingQueue: 'q@w' }, { state: async () => 'open' as const, idsStartingWith: async () => [] }),
);
const git = (...args: string[]) => execFileSync('git', args, { cwd: dir }).toString().trim();

function seedRepository(): string {
  const bare = path.join(dir, 'ansible.git');
  git('init', '--quiet', '--bare', '--initial-branch', 'main', bare);
  const work = path.join(dir, 'seed');
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

describe('image map in a git repository', () => {
  it('merges, commits and pushes the release’s entries, and commits nothing on a retry', async () => {
    const bare = seedRepository();
    const plan = parsePlan({
      releaseId: 'git-1',
      stamp: '20261126_120000',
      arches: ['aarch64'],
      definition: {
        name: 'copr-builder',
        source: { image: 'quay.io/x/y:1' },
        architectures: { aarch64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['ami'], targets: ['aws'] } },
        targets: { aws: { kind: 'aws', region: 'us-east-1' } },
        approval: { approvers: ['a'] },
        channels: { staging: { activation: [{ kind: 'image-map-git', repository: bare, file: 'inventory/group_vars/copr_aws' }] } },
      },
    });
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
    const input = { plan, channel: 'staging', candidates: [candidate], approvedBy: 'a' };
    const record = await activate(input);
    const retried = await activate(input);

    const file = parse(git('--git-dir', bare, 'show', 'main:inventory/group_vars/copr_aws'));
    expect(file).toEqual({ copr_builder_images: { aws: { x86_64: 'ami-x86-old', aarch64: 'ami-arm-new' } }, copr_other: 'kept' });
    expect(git('--git-dir', bare, 'log', '--format=%s', 'main').split('\n')).toEqual(['Activate images of release git-1', 'seed']);
    const entries = [{ path: ['aws', 'aarch64'], previous: 'ami-arm-old', value: 'ami-arm-new' }];
    expect(record.replaced).toEqual([{ target: `${bare}#main:inventory/group_vars/copr_aws`, entries }]);
    expect(retried.replaced[0]!.entries).toEqual(entries);
  });
});
