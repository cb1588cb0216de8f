// Staged artifacts are copies of what the builder made, kept on the fetching worker only while publishing (and a
// retried publish) may need them: gigabytes per architecture per release, so they go when the release ends. Build
// logs next to them stay. Only paths inside this worker's staging directory are touched, whatever the input says.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { StagedArtifact } from '../types';
import { FailureType } from '../failures';

export function createStagingCleanup(deps: { stagingDir: string }) {
  return {
    /** Removes each artifact's directory (`<stagingDir>/<releaseId>/<arch>/<type>/`, with converted copies); returns them. */
    async deleteStagedArtifacts(input: { releaseId: string; artifacts: StagedArtifact[] }): Promise<string[]> {
      const root = path.resolve(deps.stagingDir, input.releaseId);
      const dirs = [...new Set(input.artifacts.map((a) => path.dirname(path.resolve(a.path))))];
      for (const dir of dirs) {
        if (!dir.startsWith(`${root}${path.sep}`))
          throw ApplicationFailure.nonRetryable(
            `staged artifact directory ${dir} is outside release ${input.releaseId}'s staging directory ${root}; not deleting it`,
            FailureType.Config,
          );
        await rm(dir, { recursive: true, force: true });
      }
      return dirs;
    },
  };
}
