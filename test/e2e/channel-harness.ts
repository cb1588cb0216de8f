// What the channel end-to-end tests share: approvers' SSH keys, an activation hook that records its input and can be
// held, an inventory in a bare git repository (the image-map-git target), and the real CLI.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import type { RigInfo } from '../rig/release-harness';

const repo = path.resolve(__dirname, '../..');

/** An ed25519 key pair for an approver, under <base>/keys. */
export function sshKey(base: string, who: string): { privateKey: string; publicKey: string } {
  const file = path.join(base, 'keys', who);
  mkdirSync(path.dirname(file), { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', who, '-f', file]);
  return { privateKey: file, publicKey: readFileSync(`${file}.pub`, 'utf8').trim() };
}

/** A hook that appends its input to <dir>/inputs.jsonl and waits while <dir>/hold exists. */
export const hook = (dir: string) => ({
  kind: 'command',
  command: ['sh', '-c', 'tr -d "\\n" >> "$0/inputs.jsonl"; echo >> "$0/inputs.jsonl"; while [ -e "$0/hold" ]; do sleep 0.2; done', dir],
});

/** Every input the hook in `dir` was run with, in order. */
export const hookInputs = (dir: string): any[] =>
  existsSync(path.join(dir, 'inputs.jsonl'))
    ? readFileSync(path.join(dir, 'inputs.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
    : [];

/**
 * A bare repository <base>/inventory.git on branch main, seeded with `files` (each holding entries of other teams
 * that activation must keep), as the Ansible inventory an image-map-git target writes to.
 */
export function inventoryRepo(base: string, files: string[]) {
  const bare = path.join(base, 'inventory.git');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: base }).toString();
  git('init', '--quiet', '--bare', '--initial-branch', 'main', bare);
  const work = path.join(base, 'seed');
  git('clone', '--quiet', bare, work);
  const other = { copr_builder_images: { ibm_cloud: { s390x: { us_east: 'r014-kept' } } }, copr_other: 'kept' };
  for (const f of files) writeFileSync(path.join(work, f), stringify(other));
  git('-C', work, 'add', '.');
  git('-C', work, '-c', 'user.name=seed', '-c', 'user.email=seed@localhost', 'commit', '--quiet', '-m', 'seed');
  git('-C', work, 'push', '--quiet', 'origin', 'HEAD:main');
  return {
    bare,
    /** The file as main has it now. */
    read: (file: string) => parseYaml(git('--git-dir', bare, 'show', `main:${file}`)),
    /** Subjects of the commits on main that changed `file`, newest first. */
    commits: (file: string) => git('--git-dir', bare, 'log', '--format=%s', 'main', '--', file).trim().split('\n').filter(Boolean),
  };
}

/** The real CLI (tsx client/cli.ts) against the rig's Temporal, on the test's task queue, its output piped. */
export function cli(rig: RigInfo, taskQueue: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(repo, 'node_modules/.bin/tsx'), [path.join(repo, 'client/cli.ts'), ...args], {
      cwd: repo,
      env: { ...process.env, TEMPORAL_ADDRESS: rig.temporalAddress, BOOTC_RELEASE_TASK_QUEUE: taskQueue, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
