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
import type { Arch, ReleasePlan } from '../config/schema';
import type { BuilderHost } from '../activities/types';
import { archProgressSignal, type ArchBuildInput, type ArchBuildResult, type ArchStatus } from './messages';
import { activityOptions } from './timeouts';

export async function archBuild({ plan, arch, parentId }: ArchBuildInput): Promise<ArchBuildResult> {
  const report = progressReporter(parentId, arch);
  const steps = archSteps(plan, arch);
  const run: BuilderRun = { acquiring: false, failed: false, cancelled: false };
  try {
    return await buildOnBuilder(plan, arch, steps, report, run);
  } catch (err) {
    run.failed = true;
    run.cancelled = isCancellation(err);
    await CancellationScope.nonCancellable(() =>
      report({ stage: run.cancelled ? 'cancelled' : 'failed', error: run.cancelled ? undefined : describe(err) }),
    );
    throw err;
  } finally {
    // An acquire that was cancelled or failed may still have created a VM before it could say which: the provider
    // then finds it by the release's tag or name.
    if (run.host || run.acquiring) await tearDown(plan, arch, steps, report, run);
  }
}

type Report = (status: Partial<ArchStatus>) => Promise<void>;

/** What the build knows of its builder: whether it is being acquired, the host once it is, how the build ended. */
interface BuilderRun {
  host?: BuilderHost;
  acquiring: boolean;
  failed: boolean;
  cancelled: boolean;
}

/** Progress to the parent release, best-effort: the parent may have been closed (terminated). */
function progressReporter(parentId: string, arch: Arch): Report {
  const parent = getExternalWorkflowHandle(parentId);
  return async (status) => {
    try {
      await parent.signal(archProgressSignal, { arch, status });
    } catch (err) {
      log.warn('progress report not delivered', { arch, error: String(err) });
    }
  };
}

/** The activity options of each kind of step, on the builder's queue; each step carries a summary for the Web UI. */
function archSteps(plan: ReleasePlan, arch: Arch) {
  const builderQueue = plan.definition.architectures[arch]!.builder.taskQueue;
  const t = plan.definition.timeouts;
  return {
    step: (options: ActivityOptions, summary: string) => proxyActivities<ReleaseActivities>({ ...options, summary }),
    quick: activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue }),
    long: activityOptions(t, { startToCloseTimeout: plan.definition.imageBuilder.timeout, taskQueue: builderQueue }),
    // Teardown must outlive every transient fault: it retries until it succeeds.
    teardown: activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue, maximumAttempts: 0 }),
    acquire: activityOptions(t, { startToCloseTimeout: '30m', taskQueue: builderQueue, waitForCancellation: true }),
  };
}

/** Builder VM → data volume → container image → bootc-image-builder → fetch. */
async function buildOnBuilder(plan: ReleasePlan, arch: Arch, s: ReturnType<typeof archSteps>, report: Report, run: BuilderRun): Promise<ArchBuildResult> {
  const spec = plan.definition.architectures[arch]!;
  const types = spec.types.join('+');
  await report({ stage: 'provisioning' });
  run.acquiring = true;
  const host = (run.host = await s.step(s.acquire, `provision the ${arch} builder (${spec.builder.provider})`).acquireBuilder({ plan, arch }));
  await report({ builder: { provider: host.provider, id: host.id, address: host.address } });

  if (spec.builder.dataVolume) {
    await report({ stage: 'preparing-volume' });
    await s.step(s.quick, `prepare the data volume on ${arch} builder ${host.id}`).prepareDataVolume({ plan, arch, host });
  }

  await report({ stage: 'preparing-image' });
  const image = await s.step(s.long, `get the container image on ${arch} builder ${host.id}`).prepareContainerImage({ plan, arch, host });
  await report({ imageDigest: image.digest });

  await report({ stage: 'building-image' });
  const built = await s.step(s.long, `build ${arch} ${types} on ${host.id}`).runImageBuild({ plan, arch, host, imageRef: image.imageRef });

  await report({ stage: 'fetching' });
  const artifacts = await s.step(s.long, `fetch ${arch} ${types} from ${host.id}`).fetchArtifacts({ plan, arch, host, artifacts: built.artifacts });
  await report({ artifacts: artifacts.map(({ type, size, dataBytes, sha256 }) => ({ type, size, dataBytes, sha256 })) });
  return { arch, artifacts, imageDigest: image.digest, buildLogs: built.logs };
}

/** Releases the builder, non-cancellable, unless a failed build keeps it for inspection (keepBuilderOnFailure). */
async function tearDown(plan: ReleasePlan, arch: Arch, s: ReturnType<typeof archSteps>, report: Report, run: BuilderRun): Promise<void> {
  const { host, failed, cancelled } = run;
  const keep = failed && !cancelled && !!host && plan.definition.architectures[arch]!.builder.keepBuilderOnFailure;
  await CancellationScope.nonCancellable(async () => {
    if (keep) {
      log.warn('keeping the builder for inspection (keepBuilderOnFailure)', { arch, builder: host!.id, address: host!.address });
      return;
    }
    await report({ stage: 'tearing-down' });
    await s.step(s.teardown, `tear down the ${arch} builder ${host?.id ?? '(found by its release tag)'}`).releaseBuilder({ plan, arch, host });
    if (failed) await report({ stage: cancelled ? 'cancelled' : 'failed' });
  });
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
