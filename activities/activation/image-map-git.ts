// The `image-map-git` activation: the image map in a file of a git repository (Fedora Copr's Ansible inventory). A
// shallow clone, the same merge as a map file, a commit naming the release and its approver, a push. Push access is
// the worker's own git and SSH setup; git never prompts for a password (that would hang the activity).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ActivationConfigs, ActivationDriver, ActivationStep, CheckResult, ReplacedEntry } from '../types';
import { imageMapEntries } from './image-map';
import { localStore, mergeIntoFile } from './map-file';

type MapInGit = ActivationConfigs['image-map-git'];

/** Pushes that lose a race before the activation gives up (and Temporal retries the activity). */
const PUSH_ATTEMPTS = 5;
const GIT_TIMEOUT_MS = 120_000;

const exec = promisify(execFile);

/** Commits are bootc-release's, whatever identity the worker's git has (or lacks). */
const IDENTITY = {
  GIT_AUTHOR_NAME: 'bootc-release',
  GIT_AUTHOR_EMAIL: 'bootc-release@localhost',
  GIT_COMMITTER_NAME: 'bootc-release',
  GIT_COMMITTER_EMAIL: 'bootc-release@localhost',
};

/** Runs `git <args>` (in `cwd`), failing with the command and the last lines git said. */
async function git(args: string[], opts: { cwd?: string; signal?: AbortSignal } = {}): Promise<string> {
  const env = { ...process.env, ...IDENTITY, GIT_TERMINAL_PROMPT: '0' };
  try {
    return (await exec('git', args, { cwd: opts.cwd, env, signal: opts.signal, timeout: GIT_TIMEOUT_MS })).stdout.trim();
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    const e = err as { stderr?: string; message: string };
    // The line that says why comes first (`fatal: '…' does not appear to be a git repository`, `remote: …`).
    const said = (e.stderr ?? '').trim().split('\n').filter((l) => l.trim()).slice(0, 8).join(' | ');
    throw new Error(`git ${args[0]} failed: ${said || e.message}`);
  }
}

const label = (a: MapInGit) => `${a.repository}#${a.branch}:${a.file}`;

const show = (v: unknown) => (v === undefined ? '(none)' : typeof v === 'string' ? v : JSON.stringify(v));

/** Subject names the release, the channel and the approver; the body lists each replaced entry. */
function commitMessage(step: ActivationStep, replaced: ReplacedEntry[]): string {
  const subject = `Activate images of release ${step.plan.releaseId} on ${step.channel}, approved by ${step.approvedBy}`;
  const body = replaced.map((e) => `${e.path.join('.')}: ${show(e.previous)} -> ${show(e.value)}`).join('\n');
  return `${subject}\n\n${body}\n`;
}

/** Commits the map file; false when it holds nothing new. */
async function commit(dir: string, a: MapInGit, message: string): Promise<boolean> {
  await git(['add', '--', a.file], { cwd: dir });
  const changed = await git(['diff', '--cached', '--quiet'], { cwd: dir }).then(
    () => false,
    () => true,
  );
  if (changed) await git(['commit', '--quiet', '-m', message], { cwd: dir });
  return changed;
}

async function check(a: MapInGit): Promise<CheckResult> {
  const messages = [`Checking git repository ${a.repository}…`];
  let heads: string;
  try {
    heads = await git(['ls-remote', '--', a.repository, `refs/heads/${a.branch}`]);
  } catch (err) {
    return { ok: false, messages: [...messages, `cannot reach the repository: ${(err as Error).message}; fix repository or the worker's git access`] };
  }
  if (!heads) return { ok: false, messages: [...messages, `branch ${a.branch} does not exist in ${a.repository}; fix branch`] };
  return { ok: true, messages: [...messages, `Branch ${a.branch} is at ${heads.slice(0, 12)}.`] };
}

export const imageMapGitActivation: ActivationDriver<MapInGit> = {
  writesImageMap: true,
  check,
  describe: (a) => `image map ${a.key} in git repository ${a.repository} (branch ${a.branch}), file ${a.file}`,
  writesTo: label,

  async activate(a, step) {
    const entries = imageMapEntries(step.candidates, step.plan);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bootc-release-git-'));
    try {
      await git(['clone', '--quiet', '--depth', '1', '--branch', a.branch, '--', a.repository, dir], { signal: step.signal });
      const inClone = { cwd: dir, signal: step.signal };
      for (let attempt = 1; ; attempt++) {
        const base = await git(['rev-parse', 'HEAD'], inClone);
        // A private clone: no lock. Another release pushing meanwhile makes our push fail, and we merge again.
        const replaced = await mergeIntoFile(localStore(path.join(dir, a.file), { lock: false }), a.key, entries, step.plan.releaseId);
        if (!(await commit(dir, a, commitMessage(step, replaced)))) return replaced;
        const failed = await git(['push', '--quiet', 'origin', `HEAD:refs/heads/${a.branch}`], inClone).then(
          () => undefined,
          (err: Error) => err,
        );
        if (!failed) return replaced;
        await git(['fetch', '--quiet', '--depth', '1', 'origin', `refs/heads/${a.branch}`], inClone);
        const head = await git(['rev-parse', 'FETCH_HEAD'], inClone);
        // The branch did not move: the push failed for another reason (access, a hook), which a merge cannot fix.
        if (head === base || attempt === PUSH_ATTEMPTS)
          throw new Error(`${failed.message}${head === base ? '' : ` (another push won the race ${attempt} times in a row)`}`);
        await git(['reset', '--quiet', '--hard', 'FETCH_HEAD'], inClone);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
