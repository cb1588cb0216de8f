// One release, as its story: resolve the plan, preflight everything, build every architecture in parallel (child
// workflows) and publish its artifacts as soon as they are fetched, wait for a person's decision, activate the
// chosen images. Each step is a function below the story; what the release shows of itself is in
// release-status.ts, its publishing in publisher.ts, its decision in approval.ts.
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  executeChild,
  isCancellation,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { Arch, ReleaseInput, ReleasePlan } from '../config/schema';
import type { ReleaseActivities } from '../activities';
import type { ActivationRecord, Candidate } from '../activities/types';
import { archBuild, describe } from './arch-build';
import { installApprovalGate } from './approval';
import { archBuildId, type ReleaseResult, type ReleaseStatus } from './messages';
import { releaseNameKey } from './search-attributes';
import { deleteStaged, installPublisher, type ReleasePublisher } from './publisher';
import { recordReleaseEnd } from './release-metrics';
import { noCandidatesMessage } from './release-rules';
import { trackRelease, type ReleaseTracker } from './release-status';
import { activationOptions } from './timeouts';
import { FailureType } from '../activities/failures';

const setup = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '5m',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.Config] },
});

export async function imageRelease(input: ReleaseInput): Promise<ReleaseResult> {
  const release = trackRelease(workflowInfo());
  const { releaseId, status } = release;
  const gate = installApprovalGate({ status, plan: () => release.plan, setStage: release.setStage });
  const publisher = installPublisher({ releaseId, status, plan: () => release.plan!, refresh: release.refresh });
  try {
    const plan = await resolve(release, input);
    release.setStage('preflight');
    await setup.preflight({ plan });

    release.setStage('building');
    await settleBuilds(plan.arches.map((arch) => buildAndPublish(release, publisher, arch)));
    if (status.candidates.length === 0) throw ApplicationFailure.nonRetryable(noCandidatesMessage(status), FailureType.NoCandidates);

    const verdict = await gate.decide(plan.definition.approval.timeout, () => publisher.idle());
    if (verdict.stage !== 'approved') {
      await cleanUpCandidates(plan, status.candidates);
      release.setStage(verdict.stage);
      return result(status);
    }
    release.setStage('activating');
    try {
      status.activation = await activateChosen(plan, verdict.chosen, verdict.by, verdict.channel);
    } catch (err) {
      // Cancelled mid-activation: the hook is killed, but the steps before it may already have put the chosen images in
      // use (an image map written). Deleting them would leave those targets pointing at nothing, so they stay: the
      // release ends cancelled without its cleanup, completed in Temporal's eyes, which the janitor leaves alone too.
      // Releases that ran before this patch replay as they ran.
      if (!isCancellation(err) || !patched('activation-cancel-keeps-images')) throw err;
      status.error = `cancelled while activating: the chosen images are kept, as steps of channel ${verdict.channel} may already use them`;
      await CancellationScope.nonCancellable(async () => release.setStage('cancelled'));
      return result(status, verdict.chosen);
    }
    upsertMemo({ activation: status.activation });
    release.setStage('activated');
    return result(status, verdict.chosen);
  } catch (err) {
    await releaseFailed(release, publisher, err);
    throw err;
  } finally {
    await releaseEnded(release, publisher);
  }
}

/** The plan of the input (a definition's name, or a whole plan), checked by the worker that knows the definitions. */
async function resolve(release: ReleaseTracker, input: ReleaseInput): Promise<ReleasePlan> {
  release.setStage('resolving');
  const plan = await setup.resolvePlan({ input, releaseId: release.releaseId, startedAt: release.status.startedAt });
  release.resolved(plan);
  return plan;
}

/** One architecture: its build (a child workflow), then its publishes. A failure fails the architecture, not the release. */
async function buildAndPublish(release: ReleaseTracker, publisher: ReleasePublisher, arch: Arch): Promise<void> {
  const { releaseId, status } = release;
  const plan = release.plan!;
  status.arches[arch] = { stage: 'pending' };
  try {
    const built = await executeChild(archBuild, {
      workflowId: archBuildId(releaseId, arch),
      args: [{ plan, arch, parentId: releaseId }],
      // A cancelled or terminated release still lets each build tear its builder down.
      cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      searchAttributes: { [releaseNameKey.name]: [plan.definition.name] },
    });
    status.arches[arch] = { ...status.arches[arch]!, stage: 'publishing' };
    await publisher.publishArch(arch, built.artifacts);
    status.arches[arch] = { ...status.arches[arch]!, stage: publisher.failed(arch) ? 'failed' : 'published' };
  } catch (err) {
    if (isCancellation(err)) throw err;
    status.arches[arch] = { ...status.arches[arch]!, stage: 'failed', error: describe(err) };
  }
}

/**
 * Every architecture's build and publish, settled: a cancel rejects them all, and the release ends (and says cancelled)
 * only once each has torn its builder down, not when the first one has.
 */
async function settleBuilds(builds: Promise<void>[]): Promise<void> {
  // Releases started before this patch ended at the first cancelled build; they replay as they ran.
  if (!patched('release-waits-for-every-teardown')) {
    await Promise.all(builds);
    return;
  }
  const rejected = (await Promise.allSettled(builds)).find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
}

/** Rejected or timed out: the candidates go when the definition says so (approval.onReject: delete). */
async function cleanUpCandidates(plan: ReleasePlan, candidates: Candidate[]): Promise<void> {
  if (plan.definition.approval.onReject !== 'delete') return;
  await Promise.all(
    candidates.map((candidate) => setup.deleteCandidate({ target: plan.definition.targets[candidate.target]!, candidate })),
  );
}

/**
 * Approved: the chosen candidates are assigned to the channel the approval names, whose workflow (channel.ts) activates
 * them and keeps the assignment. Releases whose history predates channels (no `channels` marker) activate directly.
 */
function activateChosen(plan: ReleasePlan, chosen: Candidate[], approvedBy: string, approvedFor: string): Promise<ActivationRecord> {
  if (patched('channels')) {
    // Waits for the channel's activation, which may queue behind another there: attempts re-attach, unbounded.
    const options = activationOptions(plan.definition, approvedFor);
    options.retry = { ...options.retry, maximumAttempts: Number.POSITIVE_INFINITY, nonRetryableErrorTypes: [FailureType.Config, FailureType.ChannelRequestRefused, FailureType.ActivationFailed] };
    const { releaseId, definition } = plan;
    return proxyActivities<ReleaseActivities>(options).assignToChannel({ releaseId, channel: approvedFor, definition, taskQueue: workflowInfo().taskQueue });
  }
  const channel = plan.definition.approval.channel ?? Object.keys(plan.definition.channels)[0] ?? 'default';
  return proxyActivities<ReleaseActivities>(activationOptions(plan.definition, channel)).activate({
    plan,
    channel,
    candidates: chosen,
    approvedBy,
  });
}

/** A failed release says why; a cancelled one keeps nothing it published, finished or half-made. */
async function releaseFailed(release: ReleaseTracker, publisher: ReleasePublisher, err: unknown): Promise<void> {
  const { status } = release;
  const cancelled = isCancellation(err);
  status.error = cancelled ? undefined : describe(err);
  const left = cancelled && release.plan ? await CancellationScope.nonCancellable(() => publisher.cleanUp()) : [];
  if (left.length) status.error = `cancelled; could not delete everything it published: ${left.join('; ')}`;
  await CancellationScope.nonCancellable(async () => release.setStage(cancelled ? 'cancelled' : 'failed'));
}

/** However the release ended: its staged artifacts go (unless staging.keep), its end is counted, its messages sent. */
async function releaseEnded(release: ReleaseTracker, publisher: ReleasePublisher): Promise<void> {
  const { plan } = release;
  if (plan && !plan.definition.staging.keep) {
    const left = await deleteStaged(release.releaseId, plan.definition.timeouts, publisher.staged());
    if (left.length) log.warn('staged artifacts left on workers', { left });
  }
  recordReleaseEnd(plan?.definition.name, release.status.stage);
  await CancellationScope.nonCancellable(() => release.settled());
}

function result(status: ReleaseStatus, chosen: Candidate[] = []): ReleaseResult {
  return { releaseId: status.releaseId, stage: status.stage, candidates: status.candidates, chosen, activation: status.activation };
}
