// A long command on a remote host that outlives the SSH connection and the worker: it runs in its own process group
// (systemd-run where systemd is init, else setsid, else a job-control shell), writes its output to a log, its process
// group leader's pid to `pid` and, when it ends, its status to `exit-code`. These files are the whole state, so any
// later connection from any worker can re-attach: a live pid means "keep polling", an exit-code means "done".
import { shellCommand, shellQuote, type SshSession } from './connection';
import type { BuilderLink } from './link';
import { sleep } from '../runtime/poll';

export type DetachedState =
  | { state: 'running'; pid: number }
  | { state: 'exited'; code: number }
  /** Never started here, or its previous attempt was archived. */
  | { state: 'absent' }
  /** A pid was recorded but the process is gone without an exit code (reboot, SIGKILL). */
  | { state: 'lost' };

export const DETACHED_FILES = { log: 'build.log', pid: 'pid', exitCode: 'exit-code' } as const;

/**
 * Shell that prints the job's state as `state=...` (+ `pid=` / `code=`) lines. The pid only counts if that process
 * still has the job directory as its $0: after a reboot the number may belong to something else.
 */
export function probeScript(dir: string): string {
  const d = shellQuote(dir);
  return [
    `if [ -f ${d}/exit-code ]; then echo state=exited; echo "code=$(cat ${d}/exit-code)";`,
    `elif [ -f ${d}/pid ]; then p=$(cat ${d}/pid);`,
    `  if kill -0 "$p" 2>/dev/null && tr '\\0' '\\n' < "/proc/$p/cmdline" 2>/dev/null | grep -qxF -- ${d}; then echo state=running; echo "pid=$p"; else echo state=lost; fi;`,
    `else echo state=absent; fi`,
  ].join('\n');
}

export function parseFields(stdout: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return fields;
}

export function parseState(fields: Record<string, string>): DetachedState {
  switch (fields.state) {
    case 'running':
      return { state: 'running', pid: Number(fields.pid) };
    case 'exited': {
      const code = Number.parseInt(fields.code ?? '', 10);
      return { state: 'exited', code: Number.isNaN(code) ? -1 : code };
    }
    case 'lost':
      return { state: 'lost' };
    default:
      return { state: 'absent' };
  }
}

export async function probeDetached(
  ssh: SshSession,
  dir: string,
  signal?: AbortSignal,
): Promise<DetachedState> {
  const { stdout } = await ssh.exec(probeScript(dir), { signal });
  return parseState(parseFields(stdout));
}

/**
 * Starts argv detached in dir unless a run is already there (running or exited): under a lock on the host, so two
 * workers re-attaching at once still start one process. `prepare` is shell run first, for a fresh start only.
 */
export async function startDetached(
  ssh: SshSession,
  dir: string,
  argv: string[],
  opts: { prepare?: string; signal?: AbortSignal } = {},
): Promise<DetachedState & { started: boolean }> {
  const d = shellQuote(dir);
  // $0 is the job directory (what probeScript matches in /proc/PID/cmdline); "$@" is the command.
  const job = shellQuote(
    'echo $$ > "$0/pid.tmp" && mv "$0/pid.tmp" "$0/pid"; "$@" >> "$0/build.log" 2>&1 < /dev/null; ' +
      'echo $? > "$0/exit-code.tmp"; mv "$0/exit-code.tmp" "$0/exit-code"',
  );
  const command = `sh -c ${job} ${d} ${shellCommand(argv)}`;
  const script = [
    'set -e',
    `mkdir -p ${d}`,
    `exec 9> ${d}/.lock`,
    'if command -v flock >/dev/null 2>&1; then flock -x 9; fi',
    `s=$(${probeScript(dir)})`,
    'case "$s" in state=running*|state=exited*) echo "$s"; echo started=0; exit 0 ;; esac',
    `rm -f ${d}/pid ${d}/exit-code ${d}/exit-code.tmp`,
    opts.prepare ?? ':',
    `: > ${d}/build.log`,
    'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then',
    // A transient unit: outside the SSH session's scope, so logind cannot reap it when the session ends.
    `  systemd-run --quiet --collect --unit "bootc-release-$(date +%s)-$$" --property KillMode=mixed -- ${command} 9>&-`,
    'elif command -v setsid >/dev/null 2>&1; then',
    `  setsid ${command} < /dev/null > /dev/null 2>&1 9>&- &`,
    'else',
    `  set -m; nohup ${command} < /dev/null > /dev/null 2>&1 9>&- &`,
    'fi',
    'i=0',
    `while [ ! -s ${d}/pid ] && [ ! -f ${d}/exit-code ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done`,
    `[ -s ${d}/pid ] || { echo "the detached command did not start in ${dir}" >&2; exit 1; }`,
    probeScript(dir),
    'echo started=1',
  ].join('\n');
  const { stdout } = await ssh.exec(script, { signal: opts.signal });
  const fields = parseFields(stdout);
  return { ...parseState(fields), started: fields.started === '1' };
}

/**
 * Ends the job: SIGTERM to its process group, SIGKILL after graceSeconds, then `after` (e.g. removing a container
 * that a killed client left behind), and forgets the pid so a later call starts afresh.
 */
export async function killDetached(
  ssh: SshSession,
  dir: string,
  opts: { graceSeconds?: number; after?: string } = {},
): Promise<void> {
  const d = shellQuote(dir);
  const ticks = Math.max(1, Math.round((opts.graceSeconds ?? 10) * 10));
  const script = [
    `if [ -f ${d}/pid ]; then p=$(cat ${d}/pid);`,
    `  if kill -0 "$p" 2>/dev/null && tr '\\0' '\\n' < "/proc/$p/cmdline" 2>/dev/null | grep -qxF -- ${d}; then`,
    '    kill -TERM -- "-$p" 2>/dev/null || true; i=0',
    `    while kill -0 -- "-$p" 2>/dev/null && [ $i -lt ${ticks} ]; do sleep 0.1; i=$((i+1)); done`,
    '    kill -KILL -- "-$p" 2>/dev/null || true',
    '  fi',
    'fi',
    opts.after ?? ':',
    `rm -f ${d}/pid`,
  ].join('\n');
  await ssh.exec(script);
}

export interface DriveOptions {
  signal?: AbortSignal;
  pollIntervalMs?: number;
  /** Shell run on a fresh start only (e.g. emptying an output directory). */
  prepare?: string;
  /** Extra shell appended to every poll; its `key=value` lines reach onPoll. */
  pollScript?: string;
  onPoll?: (fields: Record<string, string>, state: DetachedState, ssh: SshSession) => Promise<void> | void;
  onStart?: (previous: 'absent' | 'lost') => void;
}

/**
 * Starts the job or re-attaches to it, and polls until it has exited. Safe to call again at any point (after a
 * retry, a worker restart or a dropped connection): it never starts a second process while one is alive.
 */
export async function driveDetached(
  link: BuilderLink,
  dir: string,
  argv: string[],
  opts: DriveOptions = {},
): Promise<number> {
  const poll = (ssh: SshSession) =>
    ssh.exec(`${probeScript(dir)}\n${opts.pollScript ?? ''}`, { signal: opts.signal });
  let state = await link.run(async (ssh) => {
    const fields = parseFields((await poll(ssh)).stdout);
    const s = parseState(fields);
    await opts.onPoll?.(fields, s, ssh);
    return s;
  });
  for (;;) {
    if (state.state === 'exited') return state.code;
    if (state.state === 'absent' || state.state === 'lost') {
      opts.onStart?.(state.state);
      state = await link.run((ssh) =>
        startDetached(ssh, dir, argv, { prepare: opts.prepare, signal: opts.signal }),
      );
      continue;
    }
    await sleep(opts.pollIntervalMs ?? 10_000, opts.signal);
    state = await link.run(async (ssh) => {
      const fields = parseFields((await poll(ssh)).stdout);
      const s = parseState(fields);
      await opts.onPoll?.(fields, s, ssh);
      return s;
    });
  }
}

/**
 * Puts a failed attempt aside (`failed-<time>.log`, `.exit-code`) so that the next call starts afresh instead of
 * reporting the same failure forever; returns the last lines of its log.
 */
export async function archiveFailedAttempt(ssh: SshSession, dir: string, tailLines = 60): Promise<string> {
  const d = shellQuote(dir);
  const { stdout } = await ssh.exec(`tail -n ${tailLines} ${d}/build.log 2>/dev/null || true`);
  const stamp = new Date().toISOString().replace(/[:.]/g, '');
  await ssh.exec(
    `if [ -f ${d}/exit-code ]; then mv ${d}/exit-code ${d}/failed-${stamp}.exit-code; mv ${d}/build.log ${d}/failed-${stamp}.log 2>/dev/null; fi; rm -f ${d}/pid`,
  );
  return stdout;
}
