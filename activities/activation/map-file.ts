// An image map in a YAML file (an Ansible inventory's group_vars): on the worker, in a git clone, or on a host over
// SSH. Read, merge the release's entries, write a temporary file and rename it over the old one, so a reader never
// sees half a file. A header line records which release wrote the file and what it replaced: a retried activation
// finds the file already holding its images and reports what the first attempt replaced.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { SFTPWrapper } from 'ssh2';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { shellCommand, type SshSession } from '../ssh/connection';
import { mergeImageMap, type MapEntry, type ReplacedEntry } from './image-map';

const HEADER = '# bootc-release: ';

interface FileHeader {
  releaseId: string;
  replaced?: ReplacedEntry[];
}

/** Where the file lives: read it (undefined when absent) and replace it whole, under a lock. */
export interface MapFileStore {
  label: string;
  read(): Promise<string | undefined>;
  replace(text: string): Promise<void>;
  /** Holds the map's lock (`.<name>.lock` beside it) around fn: releases activating at once would lose updates. */
  locked<T>(fn: () => Promise<T>): Promise<T>;
}

/** Merges the entries into `key` of the file; returns what the release replaced there. */
export async function mergeIntoFile(store: MapFileStore, key: string, entries: MapEntry[], releaseId: string): Promise<ReplacedEntry[]> {
  return await store.locked(() => mergeUnlocked(store, key, entries, releaseId));
}

async function mergeUnlocked(store: MapFileStore, key: string, entries: MapEntry[], releaseId: string): Promise<ReplacedEntry[]> {
  const existing = await store.read();
  let doc: Record<string, unknown> = {};
  let header: FileHeader | undefined;
  if (existing !== undefined) {
    const line = existing.split('\n').find((l) => l.startsWith(HEADER));
    try {
      header = line ? (JSON.parse(line.slice(HEADER.length)) as FileHeader) : undefined;
    } catch {
      header = undefined; // an edited header is only a comment: the release's own record is what matters
    }
    try {
      doc = (parseYaml(existing) as Record<string, unknown> | null) ?? {};
    } catch (err) {
      throw new Error(`${store.label} is not valid YAML (${(err as Error).message.split('\n')[0]}); fix it, then retry the activation`);
    }
  }
  const { map, replaced } = mergeImageMap(doc[key], entries, `${store.label}: ${key}`);
  // Nothing to change: the map already holds these images. On a retry the first attempt recorded what they replaced.
  if (replaced.length === 0) return header?.releaseId === releaseId ? (header.replaced ?? []) : [];
  doc[key] = map;
  const text =
    `${HEADER}${JSON.stringify({ releaseId, replaced } satisfies FileHeader)}\n` +
    `# Written by bootc-release. Each release changes only the entries it built; edit others freely.\n${toYaml(doc)}`;
  await store.replace(text);
  return replaced;
}

const tmpName = (file: string) => `${file}.tmp-${randomBytes(6).toString('hex')}`;
const lockName = (file: string) => path.posix.join(path.posix.dirname(file), `.${path.posix.basename(file)}.lock`);

/** How long an activation waits for another release's activation of the same map. */
const LOCK_WAIT_S = 120;

/**
 * The argv of a lock holder: flock(1) takes the lock, says so, and holds it until its stdin closes, which also
 * happens when the worker or the connection dies.
 */
const lockHolder = (file: string) => ['flock', '-w', String(LOCK_WAIT_S), lockName(file), 'sh', '-c', 'echo locked; exec cat >/dev/null'];

/** Resolves once the holder printed "locked"; rejects, naming the lock, when it exited first. */
function acquired(label: string, file: string, stdout: Readable, exited: Promise<number | null>): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked')) resolve();
    });
    void exited.then((code) =>
      reject(
        new Error(
          code === 127
            ? `${label}: flock (util-linux) is not installed there; install it to activate into this map`
            : `${label}: could not lock ${lockName(file)} within ${LOCK_WAIT_S} s (exit ${code}): another activation holds it`,
        ),
      ),
    );
  });
}

export function localStore(file: string, opts: { lock?: boolean } = {}): MapFileStore {
  return {
    label: file,
    read: () =>
      readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      }),
    async replace(text) {
      await mkdir(path.dirname(file), { recursive: true });
      const tmp = tmpName(file);
      await writeFile(tmp, text);
      await rename(tmp, file);
    },
    async locked(fn) {
      if (opts.lock === false) return await fn();
      await mkdir(path.dirname(file), { recursive: true });
      const [cmd, ...args] = lockHolder(file);
      const holder = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'ignore'] });
      const exited = new Promise<number | null>((r) => {
        holder.once('exit', r);
        holder.once('error', () => r(127));
      });
      try {
        await acquired(file, file, holder.stdout, exited);
        return await fn();
      } finally {
        holder.stdin.end();
      }
    },
  };
}

const sftpCall = <T>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));

/**
 * A file on a host: SFTP read, write beside it, then OpenSSH's posix-rename (plain SFTP rename refuses to replace).
 * The lock is held by flock on the host, through an exec channel of the same connection.
 */
export function sftpStore(ssh: SshSession, sftp: SFTPWrapper, label: string, file: string): MapFileStore {
  return {
    async locked(fn) {
      const channel = await ssh.channel(shellCommand(lockHolder(file)));
      const exited = new Promise<number | null>((r) => {
        channel.once('exit', (code: number | null) => r(code));
        channel.once('close', () => r(null));
      });
      try {
        await acquired(label, file, channel, exited);
        return await fn();
      } finally {
        channel.end();
      }
    },
    label,
    read: () =>
      sftpCall<Buffer>((cb) => sftp.readFile(file, cb)).then(
        (b) => b.toString('utf8'),
        (err: Error & { code?: number }) => {
          if (err.code === 2) return undefined; // SSH_FX_NO_SUCH_FILE
          throw new Error(`${label}: cannot read: ${err.message}`);
        },
      ),
    async replace(text) {
      const tmp = tmpName(file);
      await sftpCall<void>((cb) => sftp.writeFile(tmp, text, cb)).catch((err: Error) => {
        throw new Error(`${label}: cannot write ${tmp}: ${err.message}; does ${path.posix.dirname(file)} exist and is it writable?`);
      });
      try {
        await sftpCall<void>((cb) => sftp.ext_openssh_rename(tmp, file, cb));
      } catch (err) {
        await sftpCall<void>((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
        throw new Error(`${label}: cannot rename ${tmp} over the map: ${(err as Error).message}`);
      }
    },
  };
}
