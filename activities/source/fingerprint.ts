// What a release would be built from, reduced to one digest: for a git source, the last commit at the ref that
// touched the Containerfile or its build context, plus the digest of every image it builds FROM; for an image
// source, the image's digest. Two releases with the same fingerprint build the same thing, so a trigger starts a
// release only when the fingerprint differs from the last activated one's.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import type { Source } from '../../config/schema';
import { baseImages } from './containerfile';
import { manifestDigest, type RegistryOptions } from './registry';
import { FailureType } from '../failures';

const execFileP = promisify(execFile);

export interface SourcePart {
  kind: 'context-commit' | 'base-image' | 'source-image';
  /** What was looked at: the path in the repository, or the image reference. */
  ref: string;
  /** A commit id or an image digest. */
  value: string;
}

export interface SourceFingerprint {
  /** sha256 over the parts, 16 hex digits: short enough for a workflow id, long enough never to collide. */
  digest: string;
  parts: SourcePart[];
}

export interface FingerprintDeps {
  /** Bare mirrors of git sources are kept here between checks. */
  cacheDir: string;
  registry?: RegistryOptions;
}

const digestOf = (parts: SourcePart[]) => createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16);

export async function fingerprintSource(deps: FingerprintDeps, source: Source): Promise<SourceFingerprint> {
  if ('image' in source) {
    const parts: SourcePart[] = [{ kind: 'source-image', ref: source.image, value: await manifestDigest(source.image, deps.registry) }];
    return { digest: digestOf(parts), parts };
  }
  const mirror = path.join(deps.cacheDir, createHash('sha256').update(source.git).digest('hex').slice(0, 16));
  const git = async (...args: string[]) => (await execFileP('git', ['-C', mirror, ...args], { maxBuffer: 16 << 20 })).stdout.trim();
  await mkdir(mirror, { recursive: true });
  await execFileP('git', ['init', '-q', '--bare', mirror]);
  // A ref of this check's own: two checks of one source (a schedule and a webhook) may fetch into the mirror at once.
  const ref = `refs/bootc-release/check-${randomBytes(6).toString('hex')}`;
  try {
    // Only the ref is fetched; the mirror keeps earlier objects, so a later check fetches what is new.
    await git('fetch', '-q', '--no-tags', source.git, `+${source.ref}:${ref}`);
  } catch (err) {
    const why = (err as { stderr?: string }).stderr?.trim().split('\n').at(-1) ?? (err as Error).message;
    const message = `source: cannot fetch ${source.ref} of ${source.git}: ${why}`;
    if (/couldn't find remote ref|not a git repository|does not exist|not found|could not read from remote/i.test(why))
      throw ApplicationFailure.nonRetryable(`${message}; check source.git and source.ref`, FailureType.Config);
    throw new Error(message);
  }
  try {
    const containerfile = source.containerfile; // relative to the repository, as podman build -f takes it
    const touched = await git('rev-list', '-1', ref, '--', containerfile, source.context);
    const text = await git('show', `${ref}:${containerfile}`).catch(() => {
      throw ApplicationFailure.nonRetryable(`source: ${containerfile} is not in ${source.git} at ${source.ref}; check source.containerfile`, FailureType.Config);
    });
    const parts: SourcePart[] = [{ kind: 'context-commit', ref: containerfile, value: touched }];
    for (const image of baseImages(text)) parts.push({ kind: 'base-image', ref: image, value: await manifestDigest(image, deps.registry) });
    return { digest: digestOf(parts), parts };
  } finally {
    await git('update-ref', '-d', ref).catch(() => undefined);
  }
}
