// Hypervisors get the format the target asks for; a qcow2 artifact for a raw pool is converted on the worker with
// qemu-img (its output is sparse), next to the staged artifact, and reused by later attempts and other targets.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import type { ImageType } from '../../config/schema';
import type { StagedArtifact } from '../types';
import { FailureType } from '../failures';

const execFileP = promisify(execFile);

export type DiskFormat = 'raw' | 'qcow2';

/** qemu-img's name for the file each bootc-image-builder type produces. */
const QEMU_FORMAT: Partial<Record<ImageType, string>> = { ami: 'raw', raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vhd: 'vpc' };

export interface PreparedImage {
  path: string;
  format: DiskFormat;
  size: number;
  sha256: string;
}

export async function sha256File(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20, signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function prepareImage(
  artifact: StagedArtifact,
  format: DiskFormat,
  opts: { qemuImg?: string; signal?: AbortSignal; where: string },
): Promise<PreparedImage> {
  const from = QEMU_FORMAT[artifact.type];
  if (!from)
    throw ApplicationFailure.nonRetryable(`${opts.where}: a ${artifact.type} artifact cannot be written to a libvirt pool; publish raw or qcow2 images there`, FailureType.Config);
  if (from === format) return { path: artifact.path, format, size: artifact.size, sha256: artifact.sha256 };

  const out = `${artifact.path}.${format}`;
  const sumFile = `${out}.sha256`;
  const done = await readFile(sumFile, 'utf8').catch(() => undefined);
  if (done) {
    const st = await stat(out).catch(() => undefined);
    if (st) return { path: out, format, size: st.size, sha256: done.trim() };
  }
  // Unique partial names: two targets may convert the same artifact on this worker at once.
  const partial = `${out}.${randomBytes(4).toString('hex')}.partial`;
  try {
    await execFileP(opts.qemuImg ?? 'qemu-img', ['convert', '-f', from, '-O', format, artifact.path, partial], { signal: opts.signal });
    const sha256 = await sha256File(partial, opts.signal);
    await rename(partial, out);
    await writeFile(sumFile, `${sha256}\n`);
    return { path: out, format, size: (await stat(out)).size, sha256 };
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}
