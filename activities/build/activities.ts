// The builder's activities: what happens on a builder VM once it answers SSH. Each wraps a library function with
// the activity's cancellation signal and heartbeats (small progress, never logs).
import { activityLog, activitySignal, heartbeat, withHeartbeats } from '../runtime/heartbeat';
import {
  prepareContainerImage,
  type ContainerImage,
  type PrepareContainerImageInput,
} from './container-image';
import { prepareDataVolume, type DataVolumeResult, type PrepareDataVolumeInput } from './data-volume';
import {
  runImageBuild,
  type BuildProgress,
  type ImageBuildResult,
  type RunImageBuildInput,
} from './image-build';

export interface BuilderActivityDeps {
  /** The worker's staging directory: build logs land in `<stagingDir>/<releaseId>/<arch>/build-<run>.log`. */
  stagingDir: string;
  /** How often a running build is polled (default 10 s); heartbeats follow the polls. */
  pollIntervalMs?: number;
  /** How long a builder may stay unreachable before the attempt fails (default 15 min; the retry re-attaches). */
  reconnectWindowMs?: number;
  /** SIGTERM → SIGKILL delay when a build is cancelled (default 10 s). */
  killGraceSeconds?: number;
}

export type {
  BuildProgress,
  ContainerImage,
  DataVolumeResult,
  ImageBuildResult,
  PrepareContainerImageInput,
  PrepareDataVolumeInput,
  RunImageBuildInput,
};

export const createBuilderActivities = (deps: BuilderActivityDeps) => ({
  async prepareDataVolume(input: PrepareDataVolumeInput): Promise<DataVolumeResult> {
    heartbeat({ step: 'data-volume' });
    return await withHeartbeats(async () => {
      const result = await prepareDataVolume(input, { signal: activitySignal() });
      for (const m of result.messages) activityLog(`${input.arch}: ${m}`);
      return result;
    });
  },

  async prepareContainerImage(input: PrepareContainerImageInput): Promise<ContainerImage> {
    let last = '';
    // Between polls (and through an SSH reconnect) the last progress is repeated, so only a dead worker goes silent.
    return await withHeartbeats(() => prepareContainerImage(input, {
      signal: activitySignal(),
      pollIntervalMs: deps.pollIntervalMs,
      onProgress: (p) => {
        heartbeat(p);
        if (p.phase !== last) activityLog(`${input.arch}: ${p.message}`);
        last = p.phase;
      },
    }));
  },

  async runImageBuild(input: RunImageBuildInput): Promise<ImageBuildResult> {
    let last = '';
    const result = await withHeartbeats(() => runImageBuild(input, {
      stagingDir: deps.stagingDir,
      signal: activitySignal(),
      pollIntervalMs: deps.pollIntervalMs,
      reconnectWindowMs: deps.reconnectWindowMs,
      killGraceSeconds: deps.killGraceSeconds,
      onProgress: (p: BuildProgress) => {
        heartbeat(p);
        const line = `${input.arch}: ${p.run} ${p.phase} ${p.message}`;
        if (line !== last && p.phase !== 'building') activityLog(line);
        last = line;
      },
    }));
    activityLog(`${input.arch}: bootc-image-builder finished; logs: ${result.logs.join(', ')}`);
    return result;
  },
});

export type BuilderActivities = ReturnType<typeof createBuilderActivities>;
