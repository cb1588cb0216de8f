// STAND-IN support for bootc-image-builder (contract: docs/contracts.md#bootc-image-builder; what it leaves out:
// docs/real-and-stand-in.md#bootc-image-builder). No registry is reachable, so the real bib image cannot be pulled;
// this builds a real podman image whose entrypoint is bib-standin.sh, from host binaries
// (busybox, qemu-img, openssl, GNU tar, gzip) through `podman import`, the only image source this sandbox has.
// The production command line then runs unchanged: `<engine> run --rm --privileged ... BIB_IMAGE --type ...`.
// The engine prefix the rig uses is `env CONTAINERS_CONF=<file> podman`: the file holds what podman needs here
// (runc, explicit ulimits; crun fails in this sandbox) and the stand-in's knobs as container environment.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BIB_STANDIN_REPO = 'localhost/bootc-release/bib-standin';
const SCRIPT = path.join(__dirname, 'bib-standin.sh');
const BINARIES = [
  '/usr/bin/busybox',
  '/usr/bin/qemu-img',
  '/usr/bin/openssl',
  '/usr/bin/tar',
  '/usr/bin/gzip',
];
const APPLETS = [
  'sh',
  'awk',
  'cat',
  'cut',
  'date',
  'dd',
  'echo',
  'grep',
  'head',
  'mkdir',
  'printf',
  'rm',
  'sed',
  'sha256sum',
  'sleep',
  'stat',
  'tr',
  'truncate',
  'uname',
  'wc',
];

/** Builds the stand-in image once per content (tagged by its hash); returns its reference. */
export function ensureBibStandinImage(): string {
  const script = readFileSync(SCRIPT);
  const tag = `${BIB_STANDIN_REPO}:${createHash('sha256').update(script).update(BINARIES.join()).update(APPLETS.join()).digest('hex').slice(0, 12)}`;
  try {
    execFileSync('podman', ['image', 'exists', tag]);
    return tag;
  } catch {
    // not there yet
  }
  const root = mkdtempSync(path.join(os.tmpdir(), 'bib-standin-'));
  try {
    for (const d of ['bin', 'usr/bin', 'tmp', 'var/tmp', 'output', 'proc', 'sys', 'dev', 'etc'])
      mkdirSync(path.join(root, d), { recursive: true });
    const libs = new Set<string>();
    for (const bin of BINARIES) {
      for (const m of execFileSync('ldd', [bin])
        .toString()
        .matchAll(/(\/\S+)/g))
        libs.add(m[1]);
    }
    execFileSync('cp', ['-L', '--parents', ...BINARIES, ...libs, root]);
    for (const a of APPLETS) execFileSync('ln', ['-sf', '/usr/bin/busybox', path.join(root, 'bin', a)]);
    execFileSync('cp', [SCRIPT, path.join(root, 'usr/bin/bootc-image-builder')]);
    execFileSync('chmod', ['1777', path.join(root, 'tmp'), path.join(root, 'var/tmp')]);
    const tarball = path.join(root, '..', `${path.basename(root)}.tar`);
    execFileSync('tar', ['-C', root, '-cf', tarball, '.']);
    try {
      execFileSync(
        'podman',
        ['import', '--change', 'ENTRYPOINT ["/usr/bin/bootc-image-builder"]', tarball, tag],
        { stdio: 'ignore' },
      );
    } finally {
      rmSync(tarball, { force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return tag;
}

export interface StandinKnobs {
  /** Whole build duration in seconds (default 2). */
  seconds?: number;
  /** `enospc`: osbuild's "No space left on device" in /var/tmp; `exit:N`: exit N after the pipelines. */
  fail?: 'enospc' | `exit:${number}`;
  /** Raw disk size, e.g. 256M (bib's is 10G, the default). */
  diskSize?: string;
  dataMiB?: number;
}

/**
 * Writes `dir/containers.conf` (and `dir/registries.conf` for insecure local registries) and returns the engine
 * argv prefix for imageBuilder.engine: `env CONTAINERS_CONF=... CONTAINERS_REGISTRIES_CONF=... podman`.
 */
export function standinEngine(
  dir: string,
  knobs: StandinKnobs = {},
  insecureRegistries: string[] = [],
): string[] {
  mkdirSync(dir, { recursive: true });
  const env: string[] = [];
  if (knobs.seconds !== undefined) env.push(`BIB_STANDIN_SECONDS=${knobs.seconds}`);
  if (knobs.fail) env.push(`BIB_STANDIN_FAIL=${knobs.fail}`);
  if (knobs.diskSize) env.push(`BIB_STANDIN_DISK_SIZE=${knobs.diskSize}`);
  if (knobs.dataMiB !== undefined) env.push(`BIB_STANDIN_DATA_MIB=${knobs.dataMiB}`);
  const conf = path.join(dir, 'containers.conf');
  writeFileSync(
    conf,
    [
      '[containers]',
      'default_ulimits = ["nofile=20000:20000", "nproc=1000:1000"]',
      `env = [${env.map((e) => JSON.stringify(e)).join(', ')}]`,
      '[engine]',
      'runtime = "runc"',
      '',
    ].join('\n'),
  );
  const registries = path.join(dir, 'registries.conf');
  writeFileSync(
    registries,
    insecureRegistries.map((r) => `[[registry]]\nlocation = "${r}"\ninsecure = true\n`).join('\n'),
  );
  return ['env', `CONTAINERS_CONF=${conf}`, `CONTAINERS_REGISTRIES_CONF=${registries}`, 'podman'];
}
