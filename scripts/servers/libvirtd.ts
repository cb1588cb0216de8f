// The real libvirtd (Debian's monolithic daemon) for the storage tests and the demo. There is one per machine, like
// on a hypervisor: startLibvirtd reuses a running one (its pid file is the lock, so two test files starting it at
// once end up with one daemon), and every test (and the demo) gets its own dir pool, removed at the end. VMs cannot
// boot here.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { tool } from './tools';

const execFileP = promisify(execFile);
export const LIBVIRT_URI = 'qemu:///system';
/** Every pool the rig creates starts with this, so a later run can clear what a killed one left. */
export const RIG_POOL_PREFIX = 'bootc-rig-';

export async function virsh(...args: string[]): Promise<string> {
  const { stdout } = await execFileP(tool('virsh'), ['-q', '-c', LIBVIRT_URI, ...args], { maxBuffer: 64 << 20 });
  return stdout;
}

/**
 * `virsh pool-refresh`, waiting out the pool's asynchronous jobs: libvirt refuses a refresh while a volume is being
 * uploaded or cloned into the pool ("has asynchronous jobs running"), which a test polling during a release meets.
 */
export async function refreshPool(name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await virsh('pool-refresh', name);
      return;
    } catch (err) {
      if (attempt >= 50 || !/asynchronous jobs running/.test(String((err as { stderr?: string }).stderr ?? err))) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const responds = () =>
  execFileP(tool('virsh'), ['-c', LIBVIRT_URI, 'version'], { timeout: 5_000 }).then(
    () => true,
    () => false,
  );

export interface Libvirtd {
  uri: string;
  /** Stops the daemon only if this call started it and no rig pool is still in use (other test files share it). */
  stop(): Promise<void>;
}

export async function startLibvirtd(logDir: string): Promise<Libvirtd> {
  const pidFile = '/run/bootc-rig-libvirtd.pid';
  let started: number | undefined;
  if (!(await responds())) {
    mkdirSync(logDir, { recursive: true });
    const log = openSync(path.join(logDir, 'libvirtd.log'), 'a');
    // It logs harmless errors here (no D-Bus, udev, dnsmasq, /dev/mem): they go to the log, not the test output.
    const child = spawn(tool('libvirtd'), ['--pid-file', pidFile], { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    started = child.pid;
    const deadline = Date.now() + 30_000;
    while (!(await responds())) {
      if (Date.now() > deadline) throw new Error(`libvirtd did not answer on ${LIBVIRT_URI} within 30 s; see ${logDir}/libvirtd.log`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await clearStalePools();
  return {
    uri: LIBVIRT_URI,
    async stop() {
      if (!started) return;
      const pools = (await virsh('pool-list', '--all', '--name')).split('\n').filter((p) => p.startsWith(RIG_POOL_PREFIX));
      if (pools.length) return;
      try {
        process.kill(started, 'SIGTERM');
      } catch {
        /* already gone (another file's daemon won the pid file) */
      }
    },
  };
}

/** Pools of earlier runs whose directory is gone (global setup wipes .rig/last): nobody can be using them. */
async function clearStalePools(): Promise<void> {
  const pools = (await virsh('pool-list', '--all', '--name')).split('\n').map((p) => p.trim()).filter((p) => p.startsWith(RIG_POOL_PREFIX));
  for (const pool of pools) {
    const dir = /<path>([^<]+)<\/path>/.exec(await virsh('pool-dumpxml', pool).catch(() => ''))?.[1];
    if (dir && existsSync(dir)) continue;
    await virsh('pool-destroy', pool).catch(() => undefined);
    await virsh('pool-undefine', pool).catch(() => undefined);
  }
}

export interface RigPool {
  name: string;
  dir: string;
  /** Names of the volumes in the pool now. */
  volumes(): Promise<string[]>;
  remove(): Promise<void>;
}

/** A dir pool of its own for one test: defined, built and started; remove() deletes its volumes and undefines it. */
export async function createPool(baseDir: string, label: string): Promise<RigPool> {
  const name = `${RIG_POOL_PREFIX}${label}-${randomBytes(3).toString('hex')}`;
  const dir = path.join(baseDir, name);
  mkdirSync(dir, { recursive: true });
  await virsh('pool-define-as', name, 'dir', '--target', dir);
  await virsh('pool-build', name);
  await virsh('pool-start', name);
  const volumes = async () => {
    await refreshPool(name);
    return (await virsh('vol-list', '--pool', name)).split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
  };
  return {
    name,
    dir,
    volumes,
    async remove() {
      for (const vol of await volumes().catch(() => [])) await virsh('vol-delete', '--pool', name, vol).catch(() => undefined);
      await virsh('pool-destroy', name).catch(() => undefined);
      await virsh('pool-undefine', name).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
