// A real container registry and the source images pushed to it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLogged, stopProcess, type Service } from './process';
import { freePort, tool, waitForPort } from './tools';

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
