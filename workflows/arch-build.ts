// One architecture of a release: builder VM → data volume → container image → bootc-image-builder → fetch.
// The builder is torn down in a non-cancellable scope whatever happens, so a release never leaks a VM.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ReleaseActivities } from '../activities';
import type { BuilderHost } from '../activities/types';
import { archProgressSignal, type ArchBuildInput, type ArchBuildResult, type ArchStatus } from './messages';
import { activityOptions } from './timeouts';

export async function archBuild({ plan, arch, parentId }: ArchBuildInput): Promise<ArchBuildResult> {
  const spec = plan.definition.architectures[arch]!;
  const builderQueue = spec.builder.taskQueue;
  const t = plan.definition.timeouts;
  const parent = getExternalWorkflowHandle(parentId);
  const report = async (status: Partial<ArchStatus>) => {
    try {
      await parent.signal(archProgressSignal, { arch, status });
    } catch (err) {
      // The parent may have been closed (terminated): progress reports are best-effort.
      log.warn('progress report not delivered', { arch, error: String(err) });
    }
  };

  // Each step carries a one-line summary that the Web UI shows beside the activity: what it does, and where.
  const step = (options: ActivityOptions, summary: string) => proxyActivities<ReleaseActivities>({ ...options, summary });
  const quick = activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue });
  const long = activityOptions(t, { startToCloseTimeout: plan.definition.imageBuilder.timeout, taskQueue: builderQueue });
  // Teardown must outlive every transient fault: it retries until it succeeds.
  const teardown = activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue, maximumAttempts: 0 });
  const acquire = activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue, waitForCancellation: true });
  const types = spec.types.join('+');

  let host: BuilderHost | undefined;
  let acquiring = false;
  let failed = false;
  let cancelled = false;
  try {
    await report({ stage: 'provisioning' });
    acquiring = true;
    host = await step(acquire, `provision the ${arch} builder (${spec.builder.provider})`).acquireBuilder({ plan, arch });
    await report({ builder: { provider: host.provider, id: host.id, address: host.address } });

    if (spec.builder.dataVolume) {
      await report({ stage: 'preparing-volume' });
      await step(quick, `prepare the data volume on ${arch} builder ${host.id}`).prepareDataVolume({ plan, arch, host });
    }

    await report({ stage: 'preparing-image' });
    const image = await step(long, `get the container image on ${arch} builder ${host.id}`).prepareContainerImage({ plan, arch, host });
    await report({ imageDigest: image.digest });

    await report({ stage: 'building-image' });
    const built = await step(long, `build ${arch} ${types} on ${host.id}`).runImageBuild({ plan, arch, host, imageRef: image.imageRef });

    await report({ stage: 'fetching' });
    const artifacts = await step(long, `fetch ${arch} ${types} from ${host.id}`).fetchArtifacts({ plan, arch, host, artifacts: built.artifacts });
    await report({
      artifacts: artifacts.map(({ type, size, dataBytes, sha256 }) => ({ type, size, dataBytes, sha256 })),
    });
    return { arch, artifacts, imageDigest: image.digest, buildLogs: built.logs };
  } catch (err) {
    failed = true;
    cancelled = isCancellation(err);
    await CancellationScope.nonCancellable(() =>
      report({ stage: cancelled ? 'cancelled' : 'failed', error: cancelled ? undefined : describe(err) }),
    );
    throw err;
  } finally {
    // An acquire that was cancelled or failed may still have created a VM before it could say which: the provider
    // then finds it by the release's tag or name.
    if (host || acquiring) {
      const keep = failed && !cancelled && !!host && spec.builder.keepBuilderOnFailure;
      await CancellationScope.nonCancellable(async () => {
        if (keep) {
          log.warn('keeping the builder for inspection (keepBuilderOnFailure)', { arch, builder: host!.id, address: host!.address });
          return;
        }
        await report({ stage: 'tearing-down' });
        await step(teardown, `tear down the ${arch} builder ${host?.id ?? '(found by its release tag)'}`).releaseBuilder({ plan, arch, host });
        if (failed) await report({ stage: cancelled ? 'cancelled' : 'failed' });
      });
    }
  }
}

/** The innermost message of an activity/child failure: what a person needs to read. */
export function describe(err: unknown): string {
  let e: unknown = err;
  while ((e instanceof ActivityFailure || (e instanceof Error && e.name === 'ChildWorkflowFailure')) && (e as Error).cause) {
    e = (e as Error).cause;
  }
  if (e instanceof ApplicationFailure || e instanceof Error) return e.message;
  return String(e);
}
