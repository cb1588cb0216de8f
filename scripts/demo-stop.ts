// Stopping what the demo started, within a bound. Ctrl-C used to run the stop functions one after another, the
// worker's first: its shutdown waited on a running activity, so nothing after it ran and the Temporal dev server kept
// :7233 and :8233. Now every stop runs at once, and whatever is still alive after the grace period is SIGKILLed:
// the demo's own child processes, found through /proc, whoever started them.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';

export interface Stop {
  name: string;
  stop(): Promise<void>;
  /** Stopped before the rest (the worker, so it does not watch its servers vanish), for at most a third of the grace. */
  first?: boolean;
}

/** pid → parent pid and command name, for every process visible in /proc. */
function processTable(): Map<number, { ppid: number; comm: string }> {
  const table = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ")".
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      table.set(Number(entry), { ppid, comm: stat.slice(stat.indexOf('(') + 1, close) });
    } catch {
      /* exited while we looked */
    }
  }
  return table;
}

/** Every live descendant of `root` (children, their children, ...), with its command name. */
export function descendants(root: number): { pid: number; comm: string }[] {
  const table = processTable();
  const found: { pid: number; comm: string }[] = [];
  const walk = (parent: number) => {
    for (const [pid, p] of table)
      if (p.ppid === parent) {
        found.push({ pid, comm: p.comm });
        walk(pid);
      }
  };
  walk(root);
  return found;
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * When the process started (clock ticks after boot, /proc/<pid>/stat field 22): with the pid, it names one process for
 * good. Its command line does not: OpenSSH's listener rewrites its own ("[listener] 1 of 10-100 startups" while a
 * connection authenticates), and a reaper matching the command line once missed two sshd that way.
 */
function startTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const REAPER = path.join(__dirname, 'demo-reaper.mjs');

/** What demo-reaper.mjs reads: the demo's processes (pid and start time, so a reused pid is never hit) and its pool. */
interface ReaperState {
  processes: { pid: number; name: string; start: string }[];
  pool?: string;
  libvirtd?: { pid: number; start: string };
}

export class Stopper {
  private readonly stops: Stop[] = [];
  /** Child processes the sweep leaves alone (libvirtd: other users' pools may still be in it). */
  private readonly spared = new Set<string>();
  private readonly state: ReaperState = { processes: [] };
  private reaperPid?: number;

  /** `stateFile` is where the reaper (demo-reaper.mjs) finds what to stop if the demo dies without stopping. */
  constructor(private readonly stateFile: string) {}

  /** Stops what an earlier run left behind (its reaper state is still in the state file). */
  clearLeftovers(): void {
    spawnSync(process.execPath, [REAPER, this.stateFile], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15_000 });
  }

  /** Starts this run's reaper: its stdin is a pipe only the demo holds, so it closes when the demo ends, however. */
  startReaper(): void {
    const reaper = spawn(process.execPath, [REAPER, this.stateFile], { stdio: ['pipe', 'inherit', 'inherit'], detached: true });
    reaper.unref();
    (reaper.stdin as Socket).unref();
    this.reaperPid = reaper.pid;
  }

  add(name: string, stop: () => Promise<void>, opts: { first?: boolean } = {}): void {
    this.stops.push({ name, stop, ...opts });
    this.record();
  }

  spare(comm: string): void {
    this.spared.add(comm);
  }

  note(extra: { pool?: string; libvirtdPid?: number }): void {
    if (extra.pool) this.state.pool = extra.pool;
    if (extra.libvirtdPid) this.state.libvirtd = { pid: extra.libvirtdPid, start: startTime(extra.libvirtdPid) };
    this.record();
  }

  /** The demo's child processes the sweep may kill: all but the spared ones and the reaper (it outlives the demo). */
  private ours(): { pid: number; comm: string }[] {
    const reaper = new Set(this.reaperPid ? [this.reaperPid] : []);
    return descendants(process.pid).filter((p) => !this.spared.has(p.comm) && !reaper.has(p.pid));
  }

  /** Writes the demo's current child processes for the reaper. */
  record(): void {
    this.state.processes = this.ours()
      .map((p) => ({ pid: p.pid, name: p.comm, start: startTime(p.pid) }));
    try {
      writeFileSync(this.stateFile, JSON.stringify(this.state));
    } catch {
      /* .demo not there yet: the next record writes it */
    }
  }

  /**
   * Runs every stop at once; after `graceMs` SIGKILLs this process's remaining descendants. Returns the names of
   * the stops that had not finished in time, so the demo can say what it had to kill.
   */
  async stopAll(graceMs: number): Promise<string[]> {
    // Taken first: a process whose parent stops first (an sshd session) is no descendant any more afterwards.
    const before = this.ours();
    const pending = new Set(this.stops.map((s) => s.name));
    const run = (stops: Stop[]) =>
      Promise.allSettled(
        stops.map(async (s) => {
          await s.stop().catch((err: Error) => console.error(`[demo] stopping ${s.name}: ${err.message}`));
          pending.delete(s.name);
        }),
      );
    const start = Date.now();
    await Promise.race([run(this.stops.filter((s) => s.first)), sleep(graceMs / 3)]);
    await Promise.race([run(this.stops.filter((s) => !s.first)), sleep(graceMs - (Date.now() - start))]);
    const left = [...before, ...this.ours()].filter((p) => alive(p.pid));
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    const deadline = Date.now() + 2_000;
    while (left.some((p) => alive(p.pid)) && Date.now() < deadline) await sleep(50);
    return [...pending];
  }
}
