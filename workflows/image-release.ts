// One release: resolve the plan, preflight everything, build every architecture in parallel (child workflows),
// publish each architecture's artifacts as soon as they are fetched, wait for a person, activate the chosen images.
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  executeChild,
  isCancellation,
  log,
  ParentClosePolicy,
  proxyActivities,
  setHandler,
  setCurrentDetails,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Arch, ReleaseInput, ReleasePlan } from '../config/schema';
import type { ReleaseActivities } from '../activities';
import type { Candidate } from '../activities/types';
import { archBuild, describe } from './arch-build';
import { installApprovalGate } from './approval';
import {
  archProgressSignal,
  statusQuery,
  type ReleaseResult,
  type ReleaseStage,
  type ReleaseStatus,
} from './messages';
import { releaseArchesKey, releaseNameKey, releaseStageKey } from './search-attributes';
import { releaseNotifier } from './notify';
import { releaseDetails } from './release-details';
import { recordReleaseEnd } from './release-metrics';
import { activationOptions } from './timeouts';
import { deleteStaged, installPublisher } from './publisher';

const setup = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '5m',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['ConfigError'] },
});

export async function imageRelease(input: ReleaseInput): Promise<ReleaseResult> {
  const info = workflowInfo();
  const releaseId = info.workflowId;
  const status: ReleaseStatus = {
    releaseId,
    stage: 'resolving',
    startedAt: new Date(info.startTime).toISOString(),
    arches: {},
    candidates: [],
    publishFailures: [],
  };
  let plan: ReleasePlan | undefined;

  const notifier = releaseNotifier(() => plan, status);
  // The Web UI's "Current Details": rendered again on every change a person would want to see.
  const refresh = () => setCurrentDetails(releaseDetails(status, plan));
  const setStage = (stage: ReleaseStage) => {
    status.stage = stage;
    upsertSearchAttributes([{ key: releaseStageKey, value: stage }]);
    refresh();
    notifier.stageChanged(stage);
  };
  const gate = installApprovalGate({ status, plan: () => plan, setStage });
  const publisher = installPublisher({ releaseId, status, plan: () => plan!, refresh });

  setHandler(statusQuery, () => status, {
    description: 'Everything about the release: stage, each architecture, the candidate images, the decision, the activation.',
  });
  setHandler(
    archProgressSignal,
    ({ arch, status: s }) => {
      status.arches[arch] = { ...(status.arches[arch] ?? { stage: 'pending' }), ...s };
      refresh();
    },
    { description: 'Internal: progress reports of the archBuild child workflows. Not for people; sending it changes nothing useful.' },
  );

  async function buildAndPublish(arch: Arch): Promise<void> {
    const p = plan!;
    status.arches[arch] = { stage: 'pending' };
    try {
      const result = await executeChild(archBuild, {
        workflowId: `${releaseId}.build.${arch}`,
        args: [{ plan: p, arch, parentId: releaseId }],
        // A cancelled or terminated release still lets each build tear its builder down.
        cancellationType: ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        searchAttributes: { BootcReleaseName: [p.definition.name] },
      });
      status.arches[arch] = { ...status.arches[arch]!, stage: 'publishing' };
      await publisher.publishArch(arch, result.artifacts);
      status.arches[arch] = { ...status.arches[arch]!, stage: publisher.failed(arch) ? 'failed' : 'published' };
    } catch (err) {
      if (isCancellation(err)) throw err;
      status.arches[arch] = { ...status.arches[arch]!, stage: 'failed', error: describe(err) };
    }
  }

  try {
    setStage('resolving');
    plan = await setup.resolvePlan({ input, releaseId, startedAt: status.startedAt });
    status.name = plan.definition.name;
    status.reason = plan.reason;
    status.approvers = plan.definition.approval.approvers;
    upsertSearchAttributes([
      { key: releaseNameKey, value: plan.definition.name },
      { key: releaseArchesKey, value: plan.arches },
    ]);
    upsertMemo({ name: plan.definition.name, reason: plan.reason ?? '', arches: plan.arches });

    setStage('preflight');
    await setup.preflight({ plan });

    setStage('building');
    await Promise.all(plan.arches.map(buildAndPublish));
    if (status.candidates.length === 0) {
      throw ApplicationFailure.nonRetryable(
        `no candidate images: ${Object.entries(status.arches)
          .map(([a, s]) => (s?.error?.startsWith(`${a}:`) ? s.error : `${a}: ${s?.error ?? s?.stage}`))
          .concat(status.publishFailures.map((f) => `${f.arch} → ${f.target}: ${f.error}`))
          .join('; ')}`,
        'NoCandidates',
      );
    }

    const verdict = await gate.decide(plan.definition.approval.timeout, () => publisher.idle());
    if (verdict.stage !== 'approved') {
      await cleanUpCandidates();
      setStage(verdict.stage);
      return result();
    }
    const { chosen } = verdict;
    setStage('activating');
    const channel = plan.definition.approval.channel ?? Object.keys(plan.definition.channels)[0] ?? 'default';
    status.activation = await proxyActivities<ReleaseActivities>(activationOptions(plan.definition, channel)).activate({
      plan,
      channel,
      candidates: chosen,
      approvedBy: verdict.by,
    });
    upsertMemo({ activation: status.activation });
    setStage('activated');
    return result(chosen);
  } catch (err) {
    const cancelled = isCancellation(err);
    status.error = cancelled ? undefined : describe(err);
    // A cancelled release keeps nothing it published, finished or half-made.
    const left = cancelled && plan ? await CancellationScope.nonCancellable(() => publisher.cleanUp()) : [];
    if (left.length) status.error = `cancelled; could not delete everything it published: ${left.join('; ')}`;
    await CancellationScope.nonCancellable(async () => setStage(cancelled ? 'cancelled' : 'failed'));
    throw err;
  } finally {
    if (plan && !plan.definition.staging.keep) {
      const left = await deleteStaged(releaseId, plan.definition.timeouts, publisher.staged());
      if (left.length) log.warn('staged artifacts left on workers', { left });
    }
    recordReleaseEnd(plan?.definition.name, status.stage);
    await CancellationScope.nonCancellable(() => notifier.settled());
  }

  function result(chosen: Candidate[] = []): ReleaseResult {
    return { releaseId, stage: status.stage, candidates: status.candidates, chosen, activation: status.activation };
  }

  async function cleanUpCandidates(): Promise<void> {
    if (plan!.definition.approval.onReject !== 'delete') return;
    await Promise.all(
      status.candidates.map((candidate) =>
        setup.deleteCandidate({ target: plan!.definition.targets[candidate.target]!, candidate }),
      ),
    );
  }
}

