// The `directory` target: a path on the worker (or a mounted share). The demo publishes here; operators use it to
// keep a copy of every artifact next to the cloud uploads. Holes stay holes (cp --sparse=always).
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import type { Target } from '../../config/schema';
import type { Candidate, PublishTargetDriver } from '../types';
import { fileUser, listImageFiles } from './retention';
import { activitySignal, withHeartbeats } from '../runtime/heartbeat';

type DirectoryTarget = Extract<Target, { kind: 'directory' }>;
const run = promisify(execFile);

const EXTENSIONS: Record<string, string> = { ami: 'raw', raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vhd: 'vhd', gce: 'tar.gz', iso: 'iso' };

export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20, signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function createDirectoryTarget(): PublishTargetDriver<DirectoryTarget> {
  return {
    async check(target, { targetName }) {
      try {
        await mkdir(target.path, { recursive: true });
        // A name of its own: two releases checking the same directory on one worker removed each other's probe.
        const probe = path.join(target.path, `.bootc-release-probe-${process.pid}-${randomUUID()}`);
        await writeFile(probe, '');
        await rm(probe);
        return { ok: true, messages: [`Directory ${target.path} is writable.`] };
      } catch (err) {
        return { ok: false, messages: [`targets.${targetName}.path: ${target.path} is not writable: ${(err as Error).message}`] };
      }
    },

    async publish({ target, targetName, artifact, imageName, arch }) {
      const file = path.resolve(target.path, `${imageName}.${EXTENSIONS[artifact.type] ?? artifact.type}`);
      const candidate: Candidate = {
        arch,
        target: targetName,
        kind: 'directory',
        imageId: file,
        name: path.basename(file),
        type: artifact.type,
        size: artifact.size,
        sha256: artifact.sha256,
      };
      // A retry after a worker died mid-copy finds either the finished file (sidecar written last) or a partial one.
      // Partial copies of earlier attempts go first: a worker killed mid-copy never removes its own (and a copy it left
      // running writes on into a file no longer there).
      const stem = `${path.basename(file)}.partial-`;
      for (const e of await readdir(target.path).catch(() => [] as string[])) if (e.startsWith(stem)) await rm(path.join(target.path, e), { force: true });
      const sidecar = `${file}.sha256`;
      const recorded = await readFile(sidecar, 'utf8').catch(() => '');
      if (recorded.startsWith(artifact.sha256) && (await stat(file).catch(() => undefined))?.size === artifact.size) return [candidate];
      await mkdir(target.path, { recursive: true });
      // Copying and hashing a 10 GiB image takes a while: keep heartbeating, so Temporal does not think this worker
      // died and start a second attempt. Each attempt writes its own partial file all the same.
      const partial = `${file}.partial-${process.pid}-${Date.now()}`;
      // A cancel (it arrives with a heartbeat) stops the copy: the release waits for its publishes to end.
      const signal = activitySignal();
      try {
        await withHeartbeats(async () => {
          await run('cp', ['--sparse=always', artifact.path, partial], { signal });
          const actual = await sha256File(partial, signal);
          if (actual !== artifact.sha256)
            throw ApplicationFailure.retryable(`${artifact.path}: sha256 ${actual} of the copy differs from the fetched ${artifact.sha256}`);
          await rename(partial, file);
        }, 5_000);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw err;
      } finally {
        await rm(partial, { force: true });
      }
      await writeFile(sidecar, `${artifact.sha256}  ${path.basename(file)}\n`);
      return [candidate];
    },

    async delete(_target, candidate) {
      await rm(candidate.imageId, { force: true });
      await rm(`${candidate.imageId}.sha256`, { force: true });
    },

    /** The image file, its sidecar and any partial copy: every file named `<imageName>.*`. */
    async deleteRelease(target, scope) {
      const entries = await readdir(target.path).catch(() => [] as string[]);
      const ours = entries.filter((e) => scope.imageNames.some((n) => e.startsWith(`${n}.`)));
      for (const e of ours) await rm(path.join(target.path, e), { force: true });
      return ours.map((e) => `file ${path.join(target.path, e)}`);
    },

    /** Retention: the definition's image files, by name (activities/directory/retention.ts). */
    listImages: (target, targetName, definition) => listImageFiles(target.path, targetName, definition),
    inUse: (_target, image) => fileUser(image.imageId),
  };
}
