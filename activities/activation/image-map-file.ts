// The `image-map-file` activation: an image map in a YAML file on the worker, or on a host over SSH (`host:/path`).
// Its check writes nothing: the map's directory must be writable (a missing one is created on the worker, never on a
// host), the host must answer with the pinned key, and flock(1) must be there, since every merge runs under its lock.
import { execFile } from 'node:child_process';
import { access, constants, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ActivationConfigs, ActivationDriver, CheckResult } from '../types';
import { shellCommand, withSsh } from '../ssh/connection';
import { imageMapEntries } from './image-map';
import { localStore, mergeIntoFile, sftpStore } from './map-file';
import { remoteMapPath } from './remote-path';

type MapFile = ActivationConfigs['image-map-file'];

const run = promisify(execFile);

/** The closest directory that exists on the way up from `dir`: where the missing part would be created. */
async function closestExisting(dir: string): Promise<string> {
  for (let d = dir; ; d = path.dirname(d)) {
    const s = await stat(d).catch(() => undefined);
    if (s?.isDirectory()) return d;
    if (s) throw new Error(`${d} is not a directory; fix path`);
    if (d === path.dirname(d)) return d;
  }
}

async function checkLocal(a: MapFile): Promise<CheckResult> {
  const file = path.resolve(a.path);
  const messages = [`Checking ${file} on the worker…`];
  const existing = await stat(file).catch(() => undefined);
  if (existing && !existing.isFile()) return { ok: false, messages: [...messages, `${file} is not a file; fix path`] };
  const dir = path.dirname(file);
  let parent: string;
  try {
    parent = await closestExisting(dir);
  } catch (err) {
    return { ok: false, messages: [...messages, (err as Error).message] };
  }
  try {
    await access(parent, constants.W_OK | constants.X_OK);
  } catch {
    return { ok: false, messages: [...messages, `${parent} is not writable by the worker (uid ${process.getuid?.()}); fix its permissions or path`] };
  }
  messages.push(parent === dir ? `${dir} is writable.` : `${dir} does not exist yet; it will be created in ${parent}, which is writable.`);
  try {
    await run('flock', ['--version']);
  } catch {
    return { ok: false, messages: [...messages, 'flock (util-linux) is not installed on the worker; install it to activate into a map file'] };
  }
  return { ok: true, messages: [...messages, 'Map file conditions met.'] };
}

/** Exit codes of the remote check, each with what a person should do. */
const REMOTE_PROBLEMS: Record<number, (dir: string) => string> = {
  3: (dir) => `directory ${dir} does not exist on the host; create it or fix path`,
  4: (dir) => `directory ${dir} is not writable by the ssh user; fix its permissions or ssh.user`,
  5: () => 'flock (util-linux) is not installed on the host; install it to activate into a map there',
};

type RemoteMap = NonNullable<ReturnType<typeof remoteMapPath>>;
const remoteLabel = (remote: RemoteMap) => `${remote.endpoint.user}@${remote.endpoint.address}:${remote.file}`;

async function checkRemote(remote: RemoteMap): Promise<CheckResult> {
  const label = remoteLabel(remote);
  const dir = path.posix.dirname(remote.file);
  const script = '[ -d "$1" ] || exit 3; [ -w "$1" ] || exit 4; command -v flock >/dev/null || exit 5';
  const messages = [`Checking ${label} over SSH with the pinned host key…`];
  try {
    const { code } = await withSsh(remote.endpoint, remote.credentials, (ssh) =>
      ssh.exec(shellCommand(['sh', '-c', script, 'sh', dir]), { allowFailure: true }),
    );
    const problem = REMOTE_PROBLEMS[code];
    if (problem) return { ok: false, messages: [...messages, problem(dir)] };
    if (code !== 0) return { ok: false, messages: [...messages, `the check on the host exited ${code}`] };
  } catch (err) {
    return { ok: false, messages: [...messages, `${label}: ${(err as Error).message}`] };
  }
  return { ok: true, messages: [...messages, `The host answered with the pinned key and ${dir} is writable.`, 'Map file conditions met.'] };
}

export const imageMapFileActivation: ActivationDriver<MapFile> = {
  writesImageMap: true,
  async check(a, { where }) {
    const remote = remoteMapPath(a, where);
    return remote ? await checkRemote(remote) : await checkLocal(a);
  },
  describe: (a) => `image map ${a.key} in file ${a.path}`,

  writesTo(a, { where }) {
    const remote = remoteMapPath(a, where);
    return remote ? remoteLabel(remote) : a.path;
  },

  async activate(a, step) {
    const entries = imageMapEntries(step.candidates, step.plan);
    const { releaseId } = step.plan;
    const remote = remoteMapPath(a, step.where);
    if (!remote) return await mergeIntoFile(localStore(a.path), a.key, entries, releaseId);
    const label = remoteLabel(remote);
    return await withSsh(
      remote.endpoint,
      remote.credentials,
      async (ssh) => mergeIntoFile(sftpStore(ssh, await ssh.sftp(), label, remote.file), a.key, entries, releaseId),
      { signal: step.signal },
    );
  },
};
