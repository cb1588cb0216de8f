// Long-running real servers the rig starts: the Temporal dev server and moto. Each returns a stop function.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { freePort, tool, waitForPort } from './tools';

export interface Service {
  address: string;
  stop(): Promise<void>;
}

function startLogged(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  mkdirSync(path.dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile);
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}

/** SIGTERM to the child's process group, SIGKILL after 5 s; resolves once it has exited. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {
    child.kill('SIGTERM');
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export interface TemporalDevServer extends Service {
  uiAddress?: string;
}

export async function startTemporal(
  logDir: string,
  opts: { port?: number; uiPort?: number; headless?: boolean; dbFile?: string } = {},
): Promise<TemporalDevServer> {
  const port = opts.port ?? (await freePort());
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', 'default', '--log-level', 'warn'];
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  let uiAddress: string | undefined;
  if (opts.headless ?? true) args.push('--headless');
  else {
    const uiPort = opts.uiPort ?? port + 1000;
    args.push('--ui-port', String(uiPort));
    uiAddress = `http://127.0.0.1:${uiPort}`;
  }
  const child = startLogged(tool('temporal'), args, path.join(logDir, 'temporal.log'));
  await waitForPort('127.0.0.1', port, 60_000, 'temporal dev server');
  return { address: `127.0.0.1:${port}`, uiAddress, stop: () => stopProcess(child) };
}

/** `env` adds moto settings, e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 for a moto that checks credentials. */
export async function startMoto(logDir: string, env: NodeJS.ProcessEnv = {}, logName = 'moto.log'): Promise<Service> {
  const port = await freePort();
  const child = startLogged(tool('moto_server'), ['-H', '127.0.0.1', '-p', String(port)], path.join(logDir, logName), {
    ...process.env,
    MOTO_EC2_LOAD_DEFAULT_AMIS: 'false',
    ...env,
  });
  await waitForPort('127.0.0.1', port, 30_000, 'moto_server');
  return { address: `http://127.0.0.1:${port}`, stop: () => stopProcess(child) };
}

/**
 * A real container registry (Debian's docker-registry, the CNCF distribution) on loopback: builders pull
 * `source.image` from it with podman, as they would from quay.io.
 */
export async function startRegistry(dir: string, opts: { address?: string; port?: number } = {}): Promise<Service> {
  const host = opts.address ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'registry.yml');
  writeFileSync(
    config,
    `version: 0.1\nlog: { level: error }\nstorage: { filesystem: { rootdirectory: ${path.join(dir, 'data')} } }\nhttp: { addr: "${host}:${port}" }\n`,
  );
  const child = startLogged(tool('docker-registry'), ['serve', config], path.join(dir, 'registry.log'));
  await waitForPort(host, port, 15_000, 'docker-registry');
  return { address: `${host}:${port}`, stop: () => stopProcess(child) };
}

/** A small real image (its own content, so its own digest) pushed to the registry; returns its reference. */
export function pushSourceImage(registry: string, name: string, content = name): string {
  const ref = `${registry}/${name}`;
  const root = mkdtempSync(path.join(os.tmpdir(), 'source-image-'));
  try {
    writeFileSync(path.join(root, 'os-release'), `NAME=${content}\n`);
    execFileSync('sh', ['-c', `tar -C ${root} -cf - . | podman import - ${ref}`], { stdio: 'ignore' });
    execFileSync('podman', ['push', '--tls-verify=false', ref], { stdio: 'ignore' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return ref;
}
