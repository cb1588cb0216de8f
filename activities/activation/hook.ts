// The activation hook (a playbook run, `resalloc-maint resource-delete --unused`...): a command on the worker that may
// take long and must never run twice at once for one release. It runs detached in its own process group under
// flock(1) on a lock file in the worker's state directory, and records its exit code there. Any attempt (the first,
// or a retry after a worker died while the hook kept running) takes the same path: a finished hook is not run again,
// a running one is waited for, and only an attempt that wins the lock starts it. Waiting heartbeats; cancellation and
// the hook's timeout kill its whole process group.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { access, constants, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import { durationMs } from '../../config/duration';
import { commandEnv } from '../runtime/command-env';
import { shellQuote } from '../ssh/connection';
import { activityContext, heartbeat } from '../runtime/heartbeat';
import { sleep } from '../runtime/poll';
import type { ActivationConfigs, ActivationDriver, CheckResult } from '../types';
import { buildImageMap } from './image-map';
import { FailureType } from '../failures';

const run = promisify(execFile);

export type HookActivation = ActivationConfigs['command'];

export interface HookDeps {
  /** The worker's state directory: hook locks, exit codes and logs live under activation/<release>/. */
  stateDir: string;
  /** How often a waiting attempt checks the hook and heartbeats (default 1 s). */
  pollMs?: number;
  /** SIGTERM → SIGKILL grace (default 10 s). */
  killGraceMs?: number;
}

export interface HookRun {
  /** State directory of this hook: `lock`, `exit`, `log`, `pgid`, `started`. */
  dir: string;
  timeoutMs: number;
  /** JSON on the hook's stdin. */
  input: unknown;
  env: Record<string, string>;
  where: string;
}

/** Exit status of flock -n when another process holds the lock. */
const LOCKED = 75;

/** The hook runs under the lock; it writes its process group first, its exit code last (atomically). */
function wrapper(dir: string): string {
  const f = (name: string) => shellQuote(path.join(dir, name));
  return [
    `[ -e ${f('exit')} ] && exit 0`, // finished under an earlier holder of the lock
    `echo "$PPID" > ${f('pgid')}`, // flock's pid: the group leader (spawned detached)
    `date +%s > ${f('started.tmp')} && mv ${f('started.tmp')} ${f('started')}`,
    `"$@" < ${f('input.json')}`,
    `echo $? > ${f('exit.tmp')} && mv ${f('exit.tmp')} ${f('exit')}`,
  ].join('\n');
}

async function lockHeld(dir: string): Promise<boolean> {
  try {
    await run('flock', ['-n', '-E', String(LOCKED), path.join(dir, 'lock'), 'true']);
    return false;
  } catch (err) {
    if ((err as { code?: number }).code === LOCKED) return true;
    throw err;
  }
}

/** A number a file holds, or undefined: missing, or empty because the shell's `>` has truncated it and not yet written. */
export const readNumber = (file: string) =>
  readFile(file, 'utf8').then(
    (t) => (/^\d+$/.test(t.trim()) ? Number(t.trim()) : undefined),
    () => undefined,
  );

interface Started {
  pid?: number;
  /** flock's exit status once it has exited: LOCKED when another copy held the lock. */
  exited?: number | null;
}

function start(hook: HookActivation, h: HookRun): Started {
  const log = openSync(path.join(h.dir, 'log'), 'a');
  try {
    const child = spawn('flock', ['-n', '-E', String(LOCKED), path.join(h.dir, 'lock'), 'sh', '-c', wrapper(h.dir), 'sh', ...hook.command], {
      cwd: h.dir,
      env: h.env,
      detached: true, // its own session and process group: it outlives a dying worker, and is killed as one group
      stdio: ['ignore', log, log],
    });
    const started: Started = { pid: child.pid };
    child.once('error', () => (started.exited = -1));
    child.once('exit', (code) => (started.exited = code));
    child.unref();
    return started;
  } finally {
    closeSync(log);
  }
}

async function killGroup(dir: string, graceMs: number, fallbackPgid?: number): Promise<void> {
  const pgid = (await readNumber(path.join(dir, 'pgid'))) ?? fallbackPgid;
  if (!pgid || pgid <= 1) return;
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-pgid, s);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while ((await lockHeld(dir)) && Date.now() < deadline) await sleep(200);
  signal('SIGKILL');
}

/** Runs the hook once per release (per state directory), or waits for the copy already running. */
export async function runHook(hook: HookActivation, h: HookRun, deps: HookDeps): Promise<void> {
  const ctx = activityContext();
  const signal = ctx?.cancellationSignal;
  const pollMs = deps.pollMs ?? 1000;
  const grace = deps.killGraceMs ?? 10_000;
  const exitFile = path.join(h.dir, 'exit');
  const log = path.join(h.dir, 'log');
  await mkdir(h.dir, { recursive: true });
  const input = path.join(h.dir, 'input.json');
  await writeFile(`${input}.tmp`, JSON.stringify(h.input));
  await rename(`${input}.tmp`, input);
  let mine: Started | undefined;
  for (;;) {
    // Our own flock has exited: read the exit file after that, so a hook that just finished is not taken for killed.
    const ours = mine?.exited;
    const code = await readNumber(exitFile);
    if (code !== undefined) {
      if (code === 0) return;
      throw ApplicationFailure.nonRetryable(
        `${h.where}: ${hook.command[0]} exited ${code}; its output is in ${log} on the worker. ` +
          `Fix the cause, then remove ${exitFile} and retry the activation`,
        FailureType.ActivationHookFailed,
      );
    }
    if (signal?.aborted) {
      await killGroup(h.dir, grace, mine?.pid);
      throw signal.reason;
    }
    const since = await readNumber(path.join(h.dir, 'started'));
    // `date +%s` truncates: count from the end of that second, so a hook is never killed before its time.
    if (since !== undefined && Date.now() - (since + 1) * 1000 > h.timeoutMs && (await lockHeld(h.dir))) {
      await killGroup(h.dir, grace, mine?.pid);
      throw ApplicationFailure.nonRetryable(
        `${h.where}: ${hook.command[0]} ran longer than its timeout and was killed; see ${log} on the worker, or raise ${h.where}.timeout`,
        FailureType.ActivationHookTimedOut,
      );
    }
    if (ours === -1)
      throw ApplicationFailure.nonRetryable(`${h.where}: cannot run flock (util-linux) on the worker; install it to run activation hooks`, FailureType.Config);
    if (ours !== undefined && ours !== LOCKED)
      // Started by this attempt, ended, no exit code: killed from outside. A retry starts it again.
      throw new Error(`${h.where}: ${hook.command[0]} ended without an exit code (killed?); see ${log} on the worker`);
    const runningHere = mine !== undefined && mine.exited === undefined;
    if (!runningHere && !(await lockHeld(h.dir))) {
      if (mine && mine.exited === LOCKED) mine = undefined; // the other copy has gone: this attempt may start it
      if (!mine) {
        mine = start(hook, h);
        continue;
      }
    }
    heartbeat({ step: h.where, hook: 'running' });
    await sleep(pollMs);
  }
}

/** The hook's executable as its `sh` finds it: a path, or a name on the hook's PATH. Undefined when there is none. */
async function findExecutable(command: string, pathVar: string): Promise<string | undefined> {
  const candidates = command.includes('/') ? [command] : pathVar.split(':').filter(Boolean).map((d) => path.join(d, command));
  for (const c of candidates) {
    const s = await stat(c).catch(() => undefined);
    if (s?.isFile() && (await access(c, constants.X_OK).then(() => true, () => false))) return c;
  }
  return undefined;
}

async function checkHook(hook: HookActivation, where: string): Promise<CheckResult> {
  const [command] = hook.command;
  const env = commandEnv(hook.passEnv, {});
  if (command!.includes('/') && !path.isAbsolute(command!))
    return { ok: false, messages: [`${command} is a relative path, and the hook runs in its state directory; give its absolute path in ${where}.command`] };
  const found = await findExecutable(command!, env.PATH!);
  if (!found)
    return {
      ok: false,
      messages: [
        command!.includes('/')
          ? `${command} does not exist on the worker or is not executable; install it or fix ${where}.command`
          : `${command} is not an executable on the hook's PATH (${env.PATH}); install it or give its absolute path in ${where}.command`,
      ],
    };
  const flock = await run('flock', ['--version']).then(() => true, () => false);
  if (!flock) return { ok: false, messages: [`${found} is executable.`, 'flock (util-linux) is not installed on the worker; install it to run activation hooks'] };
  return { ok: true, messages: [`${found} is executable.`, 'Hook conditions met.'] };
}

/**
 * The command hook as an activation driver. On stdin: the release's images (`imageMap`), what the channel's first
 * image map held in those entries before (`previousImageMap`, when an image map step came before the hook), and what
 * each step before it replaced.
 */
export function createHookActivation(deps: HookDeps): ActivationDriver<HookActivation> {
  return {
    writesImageMap: false,
    check: (hook, { where }) => checkHook(hook, where),
    describe: (hook) => `command hook ${hook.command.join(' ')}`,
    writesTo: (hook) => `command:${hook.command.join(' ')}`,
    async activate(hook, step) {
      const { releaseId } = step.plan;
      const input = {
        releaseId,
        channel: step.channel,
        approvedBy: step.approvedBy,
        imageMap: buildImageMap(step.candidates, step.plan),
        ...(step.previousImageMap ? { previousImageMap: step.previousImageMap } : {}),
        replaced: step.replaced,
        ...(step.assignment ? { assignment: step.assignment } : {}),
      };
      await runHook(
        hook,
        {
          // One run per channel assignment (`<channel>-<seq>-<step>`): a rollback runs the hook again.
          dir: path.join(deps.stateDir, 'activation', releaseId, step.assignment ? `${step.channel}-${step.assignment.seq}-${step.index}` : `${step.channel}-${step.index}`),
          timeoutMs: durationMs(hook.timeout),
          input,
          // An explicit environment, not the worker's: a hook sees no credentials the worker holds.
          env: commandEnv(hook.passEnv, { BOOTC_RELEASE_ID: releaseId }),
          where: step.where,
        },
        deps,
      );
      return [];
    },
  };
}
