// Running bootc-image-builder on a builder: each run detached in `<workDir>/<releaseId>/<arch>/<run>/`, polled over
// SSH with small progress reports, re-attached (never started twice) after a retry, a worker restart or a dropped
// connection, killed with its container on cancellation, and classified when it fails.
import path from 'node:path';
import type { Arch, Builder, ImageType } from '../../config/schema';
import type { BuilderHost, BuiltArtifact } from '../types';
import { bibRuns, type ImageBuilderConfig } from './bib-runs';
import { BuildRuns } from './image-build-runs';

export interface RunImageBuildInput {
  releaseId: string;
  arch: Arch;
  host: BuilderHost;
  builder: Builder;
  imageBuilder: ImageBuilderConfig;
  /** The source image in the builder's container storage (prepareContainerImage's imageRef). */
  imageRef: string;
  types: ImageType[];
}

/** What a heartbeat carries: a few short fields, never log text beyond one line. */
export interface BuildProgress {
  run: string;
  /** 1-based index of the run and how many there are (ami and raw are two runs). */
  runIndex: number;
  runs: number;
  phase: 'starting' | 'building' | 'checksumming' | 'reconnecting' | 'done';
  /** Stages begun so far and the manifest's total, when known. */
  step: number;
  total?: number;
  message: string;
}

export interface ImageBuildResult {
  artifacts: BuiltArtifact[];
  /** Full build logs on the worker, one per run: `<stagingDir>/<releaseId>/<arch>/build-<run>.log`. */
  logs: string[];
}

export interface RunImageBuildOptions {
  /** The worker's staging directory; logs are copied under it. */
  stagingDir: string;
  signal?: AbortSignal;
  onProgress?: (p: BuildProgress) => void;
  pollIntervalMs?: number;
  reconnectWindowMs?: number;
  /** Seconds between SIGTERM (podman forwards it into the container) and SIGKILL on cancellation. */
  killGraceSeconds?: number;
}

export const releaseWorkDir = (builder: Pick<Builder, 'workDir'>, releaseId: string, arch: Arch) =>
  path.posix.join(builder.workDir, releaseId, arch);

export async function runImageBuild(
  input: RunImageBuildInput,
  opts: RunImageBuildOptions,
): Promise<ImageBuildResult> {
  const { releaseId, arch, builder, imageBuilder } = input;
  const workDir = releaseWorkDir(builder, releaseId, arch);
  const configPath = imageBuilder.config ? path.posix.join(workDir, 'config.toml') : undefined;
  const runs = bibRuns(imageBuilder, { types: input.types, imageRef: input.imageRef, workDir, configPath });
  const build = new BuildRuns(input, opts, runs);
  try {
    if (imageBuilder.config) await build.uploadConfig(imageBuilder.config, workDir, configPath!);
    const artifacts: BuiltArtifact[] = [];
    const logs: string[] = [];
    for (const [i, run] of runs.entries()) {
      logs.push(await build.drive(run, i));
      artifacts.push(...(await build.describeArtifacts(run)));
    }
    build.report('done', `${artifacts.length} artifact(s) built`);
    return { artifacts, logs };
  } catch (err) {
    if (opts.signal?.aborted) await build.cancelActive().catch(() => undefined);
    throw err;
  } finally {
    build.link.drop();
  }
}
