// Staged artifacts as retention sees them: `<stagingDir>/<releaseId>/<arch>/<type>/` on the worker that fetched
// them, kept after the release when the definition says `staging.keep`. Only directories of releases known to be
// the definition's are listed (a staging directory serves every definition, and its names carry no definition),
// and only inside the staging directory is anything deleted. Build logs beside them stay, as after a release.
import { readdir, rm, stat } from 'node:fs/promises';
import { FailureType } from '../failures';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { ARCHES, IMAGE_TYPES } from '../../config/constants';
import type { Arch, ImageType } from '../../config/schema';
import type { PublishedImage } from '../types';
import { STAGED_TARGET } from './plan';

const dirsIn = async (dir: string) =>
  (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => e.name);

/** One image per `<releaseId>/<arch>/<type>/` directory of the given releases; region and imageId say where. */
export async function listStaged(stagingDir: string, stagingQueue: string, releaseIds: Set<string>): Promise<PublishedImage[]> {
  const found: PublishedImage[] = [];
  for (const releaseId of (await dirsIn(stagingDir)).filter((d) => releaseIds.has(d)).sort())
    for (const arch of (await dirsIn(path.join(stagingDir, releaseId))).filter((a) => (ARCHES as readonly string[]).includes(a)))
      for (const type of (await dirsIn(path.join(stagingDir, releaseId, arch))).filter((t) => (IMAGE_TYPES as readonly string[]).includes(t))) {
        const dir = path.join(stagingDir, releaseId, arch, type);
        const files = await readdir(dir);
        const sizes = await Promise.all(files.map(async (f) => (await stat(path.join(dir, f)).catch(() => undefined))?.size ?? 0));
        found.push({
          arch: arch as Arch,
          target: STAGED_TARGET,
          kind: 'directory',
          region: stagingQueue,
          imageId: dir,
          name: files[0] ?? type,
          type: type as ImageType,
          size: sizes.reduce((a, b) => a + b, 0),
          sha256: '',
          imageName: `${releaseId}/${arch}/${type}`,
          releaseId,
          createdAt: (await stat(dir)).mtime.toISOString(),
        });
      }
  return found;
}

/** Removes one staged artifact directory; refuses any path outside `<stagingDir>/<releaseId>/`. */
export async function deleteStaged(stagingDir: string, image: PublishedImage): Promise<void> {
  const root = path.resolve(stagingDir, image.releaseId ?? '');
  const dir = path.resolve(image.imageId);
  if (!image.releaseId || !dir.startsWith(`${root}${path.sep}`))
    throw ApplicationFailure.nonRetryable(`staged artifact ${dir} is not inside ${root}; not deleting it`, FailureType.Config);
  await rm(dir, { recursive: true, force: true });
}
