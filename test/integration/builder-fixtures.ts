// Shared set-up for the builder tests: a rig sshd host as a builder, a real podman source image, the
// bootc-image-builder stand-in image, and helpers to look at processes on "the builder" (this machine).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Builder, ImageBuilder } from '../../config/schema';
import type { BuilderHost } from '../../activities/types';
import type { SshHost } from '../../scripts/servers/sshd';
import {
  ensureBibStandinImage,
  standinEngine,
  type StandinKnobs,
} from '../standins/bootc-image-builder/image';

export interface Rig {
  sshHosts: SshHost[];
  privateKeyPath: string;
  dir: string;
}

export function testDir(rig: Rig, name: string): string {
  const dir = path.join(rig.dir, 'builder', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function staticBuilder(rig: Rig, dir: string, extra: Record<string, unknown> = {}): Builder {
  return Builder.parse({
    provider: 'static',
    hosts: [{ address: rig.sshHosts[0].address, port: rig.sshHosts[0].port }],
    ssh: { privateKeyPath: rig.privateKeyPath },
    workDir: path.join(dir, 'work'),
    ...extra,
  });
}

export function hostOf(ssh: SshHost, resources: BuilderHost['resources'] = []): BuilderHost {
  return {
    provider: 'static',
    id: `${ssh.address}:${ssh.port}`,
    address: ssh.address,
    port: ssh.port,
    user: 'root',
    hostKey: ssh.hostKey,
    resources,
  };
}

export function standinImageBuilder(
  dir: string,
  knobs: StandinKnobs = {},
  extra: Record<string, unknown> = {},
) {
  return ImageBuilder.parse({
    image: ensureBibStandinImage(),
    engine: standinEngine(path.join(dir, 'engine'), { diskSize: '256M', seconds: 1, ...knobs }),
    ...extra,
  });
}

/** A small real image in local container storage, with content of its own (so its own image id). */
export function makeSourceImage(dir: string, tag: string, content = tag): string {
  const root = mkdtempSync(path.join(dir, 'src-'));
  try {
    writeFileSync(path.join(root, 'os-release'), `NAME=${content}\n`);
    execFileSync('sh', ['-c', `tar -C ${root} -cf - . | podman import - ${tag}`], { stdio: 'ignore' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return tag;
}

export function removeImage(tag: string): void {
  try {
    execFileSync('podman', ['rmi', '-f', tag], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** Processes whose command line mentions `needle` (the run directory), excluding this query. */
export function processesMentioning(needle: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,args=']).toString();
  return out.split('\n').filter((l) => l.includes(needle) && !l.includes('ps -eo'));
}

/** Containers of the stand-in that mount a path under `needle`. */
export function containersMounting(needle: string): string[] {
  const ids = execFileSync('podman', ['ps', '-q', '--no-trunc']).toString().split('\n').filter(Boolean);
  return ids.filter((id) => {
    try {
      return execFileSync('podman', ['inspect', '--format', '{{range .Mounts}}{{.Source}} {{end}}', id])
        .toString()
        .includes(needle);
    } catch {
      return false;
    }
  });
}

export const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
