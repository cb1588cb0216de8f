// The demo's backstop (scripts/demo-reaper.mjs) stops what a killed demo left running, knowing each process by the
// pid and start time the demo recorded (scripts/demo-stop.ts). A process that rewrites its own command line, as
// OpenSSH's listener does while a connection authenticates, is still stopped; a pid that now names another process
// is left alone. (A reaper that matched command lines once left two sshd of a SIGKILLed demo running.)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, Stopper } from '../../scripts/demo-stop';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A child that renames itself as sshd's listener does once `rename` is written to its stdin. */
function renamingChild(): ChildProcess {
  const child = spawn(
    process.execPath,
    ['-e', "process.stdin.once('data', () => { process.title = 'sshd: [listener] 1 of 10-100 startups'; }); setInterval(() => {}, 1000);"],
    { stdio: ['pipe', 'ignore', 'ignore'] },
  );
  children.push(child);
  return child;
}

/** The state the demo records, cut down to `pids` (this test process may have other children the reaper must spare). */
function recordOnly(stateFile: string, pids: number[]): void {
  new Stopper(stateFile).note({});
  const state = JSON.parse(readFileSync(stateFile, 'utf8'));
  state.processes = state.processes.filter((p: { pid: number }) => pids.includes(p.pid));
  expect(state.processes.map((p: { pid: number }) => p.pid).sort()).toEqual([...pids].sort());
  writeFileSync(stateFile, JSON.stringify(state));
}

/** A renaming child, and the state file the demo would have written with it recorded. */
async function recordedChild(): Promise<{ child: ChildProcess; stateFile: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-release-reaper-'));
  dirs.push(dir);
  const child = renamingChild();
  await until('the child to start', () => cmdline(child.pid!).includes('setInterval'));
  const stateFile = path.join(dir, 'reaper.json');
  recordOnly(stateFile, [child.pid!]);
  return { child, stateFile };
}

describe('the demo reaper', () => {
  it('stops a recorded process that has rewritten its command line since', async () => {
    const { child, stateFile } = await recordedChild();
    child.stdin!.write('rename\n');
    await until('the child to rename itself', () => cmdline(child.pid!).startsWith('sshd: [listener]'));

    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    // The reaper runs to its end first (spawnSync): it waits up to 3 s for the child, a zombie until this process
    // reaps it, then sends SIGKILL, which a zombie ignores. The child ended by the reaper's SIGTERM.
    new Stopper(stateFile).clearLeftovers();
    expect(await Promise.race([exited, sleep(5_000).then(() => 'still running')])).toBe('SIGTERM');
  });

  it('leaves alone a process whose pid is recorded with another start time (a pid reused since)', async () => {
    const { child, stateFile } = await recordedChild();
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    state.processes[0].start = String(Number(state.processes[0].start) - 1);
    writeFileSync(stateFile, JSON.stringify(state));

    new Stopper(stateFile).clearLeftovers();
    await sleep(500);
    expect(alive(child.pid!)).toBe(true);
    expect(child.exitCode).toBeNull();
  });
});
