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

  const quick = proxyActivities<ReleaseActivities>(activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue }));
  const long = proxyActivities<ReleaseActivities>(
    activityOptions(t, { startToCloseTimeout: plan.definition.imageBuilder.timeout, taskQueue: builderQueue }),
  );
  // Teardown must outlive every transient fault: it retries until it succeeds.
  const teardown = proxyActivities<ReleaseActivities>(
    activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue, maximumAttempts: 0 }),
  );

  const acquire = proxyActivities<ReleaseActivities>(
    activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue, waitForCancellation: true }),
  );

  let host: BuilderHost | undefined;
  let acquiring = false;
  let failed = false;
  let cancelled = false;
  try {
    await report({ stage: 'provisioning' });
    acquiring = true;
    host = await acquire.acquireBuilder({ plan, arch });
    await report({ builder: { provider: host.provider, id: host.id, address: host.address } });

    if (spec.builder.dataVolume) {
      await report({ stage: 'preparing-volume' });
      await quick.prepareDataVolume({ plan, arch, host });
    }

    await report({ stage: 'preparing-image' });
    const image = await long.prepareContainerImage({ plan, arch, host });
    await report({ imageDigest: image.digest });

    await report({ stage: 'building-image' });
    const built = await long.runImageBuild({ plan, arch, host, imageRef: image.imageRef });

    await report({ stage: 'fetching' });
    const artifacts = await long.fetchArtifacts({ plan, arch, host, artifacts: built.artifacts });
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
        await teardown.releaseBuilder({ plan, arch, host });
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
