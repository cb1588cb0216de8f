// One release: resolve the plan, preflight everything, build every architecture in parallel (child workflows),
// publish each architecture's artifacts as soon as they are fetched, wait for a person, activate the chosen images.
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowCancellationType,
  condition,
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
import type { Candidate, StagedArtifact } from '../activities/types';
import { archBuild, describe } from './arch-build';
import { approvalGate } from './approval';
import {
  archProgressSignal,
  retryPublishUpdate,
  statusQuery,
  type ReleaseResult,
  type ReleaseStage,
  type ReleaseStatus,
  type RetryRequest,
} from './messages';
import { releaseArchesKey, releaseNameKey, releaseStageKey } from './search-attributes';
import { releaseNotifier } from './notify';
import { releaseDetails } from './release-details';
import { recordReleaseEnd } from './release-metrics';
import { activationOptions } from './timeouts';
import { artifactsFor } from './release-rules';
import { deleteStaged, describePublishFailure, PublishLedger, stagingActivities } from './publisher';
import { durationMs } from '../config/duration';
import { FailureType } from '../activities/failures';

const setup = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '5m',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.Config] },
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
  const staged: Partial<Record<Arch, StagedArtifact[]>> = {};
  let publishing = 0;
  const ledger = new PublishLedger();

  const notifier = releaseNotifier(() => plan, status);
  // The Web UI's "Current Details": rendered again on every change a person would want to see.
  const refresh = () => setCurrentDetails(releaseDetails(status, plan));
  const setStage = (stage: ReleaseStage) => {
    status.stage = stage;
    upsertSearchAttributes([{ key: releaseStageKey, value: stage }]);
    refresh();
    notifier.stageChanged(stage);
  };
  const gate = approvalGate({ status, plan: () => plan, setStage });

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
  setHandler(
    retryPublishUpdate,
    async (req) => {
      const failures = status.publishFailures.filter((f) => f.target === req.target && (!req.arch || f.arch === req.arch));
      status.publishFailures = status.publishFailures.filter((f) => !failures.includes(f));
      await Promise.all(failures.map((f) => publishTo(f.arch, f.target)));
      return status;
    },
    {
      description: 'Publish again to a target that failed ({"target": "name", "arch"?: "x86_64"}); used by `bootc-release release retry`.',
      validator: (req: RetryRequest) => {
        if (!['awaiting-approval', 'building'].includes(status.stage))
          throw new Error(`release is ${status.stage}: only a release that is building or awaiting approval can retry a target`);
        if (!status.publishFailures.some((f) => f.target === req.target && (!req.arch || f.arch === req.arch)))
          throw new Error(`target ${req.target}${req.arch ? ` (${req.arch})` : ''} has no failed publish to retry`);
      },
    },
  );

  async function publishTo(arch: Arch, targetName: string): Promise<void> {
    const p = plan!;
    const target = p.definition.targets[targetName]!;
    const artifacts = artifactsFor(staged[arch] ?? [], target.kind);
    if (artifacts.length === 0) {
      status.publishFailures.push({ arch, target: targetName, error: `no ${target.kind} artifact was built for ${arch}` });
      return;
    }
    publishing++;
    let artifact = artifacts[0]!;
    try {
      for (artifact of artifacts) {
        const suffix = artifacts.length > 1 ? `-${artifact.type}` : '';
        const imageName = `${p.definition.name}-${arch}-${p.stamp}${suffix}`;
        ledger.record({ arch, targetName, target, imageName, stagingQueue: artifact.stagingQueue });
        const acts = stagingActivities(p.definition.timeouts, artifact.stagingQueue, `publish ${arch} ${artifact.type} to ${targetName} (${target.kind}) as ${imageName}`);
        const found = await ledger.track(acts.publishArtifact({ releaseId, arch, targetName, target, artifact, imageName }));
        status.candidates.push(...found);
        upsertMemo({ candidates: status.candidates });
        refresh();
      }
    } catch (err) {
      if (isCancellation(err)) throw err;
      status.publishFailures.push({ arch, target: targetName, error: describePublishFailure(err, artifact, p.definition.timeouts) });
    } finally {
      publishing--;
    }
  }

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
      staged[arch] = result.artifacts;
      status.arches[arch] = { ...status.arches[arch]!, stage: 'publishing' };
      await Promise.all((p.definition.architectures[arch]?.targets ?? []).map((t) => publishTo(arch, t)));
      const failedHere = status.publishFailures.some((f) => f.arch === arch);
      status.arches[arch] = { ...status.arches[arch]!, stage: failedHere ? 'failed' : 'published' };
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
        FailureType.NoCandidates,
      );
    }

    setStage('awaiting-approval');
    const deadline = Date.now() + durationMs(plan.definition.approval.timeout);
    status.approvalDeadline = new Date(deadline).toISOString();
    const decided = await condition(() => gate.decision !== undefined, plan.definition.approval.timeout);
    // A publish retried before the decision still finishes (its image exists), but joins no approval made earlier.
    if (decided) await condition(() => publishing === 0);
    const decision = gate.decision;
    const now = new Date().toISOString();

    if (!decided || !decision) {
      status.approval = { decision: 'timed-out', at: now };
      await cleanUpCandidates();
      setStage('timed-out');
      return result();
    }
    if (!decision.approved) {
      status.approval = { decision: 'rejected', by: decision.by, at: now, reason: decision.reason, signed: decision.signed };
      await cleanUpCandidates();
      setStage('rejected');
      return result();
    }

    const chosen = status.candidates.filter((c) => decision.images.includes(c.imageId));
    status.approval = { decision: 'approved', by: decision.by, at: now, images: chosen.map((c) => c.imageId), signed: decision.signed };
    setStage('activating');
    const channel = plan.definition.approval.channel ?? Object.keys(plan.definition.channels)[0] ?? 'default';
    status.activation = await proxyActivities<ReleaseActivities>(activationOptions(plan.definition, channel)).activate({
      plan,
      channel,
      candidates: chosen,
      approvedBy: decision.by,
    });
    upsertMemo({ activation: status.activation });
    setStage('activated');
    return result(chosen);
  } catch (err) {
    const cancelled = isCancellation(err);
    status.error = cancelled ? undefined : describe(err);
    // A cancelled release keeps nothing it published, finished or half-made.
    const left = cancelled && plan ? await ledger.cleanUp(releaseId, plan.definition.timeouts) : [];
    if (left.length) status.error = `cancelled; could not delete everything it published: ${left.join('; ')}`;
    await CancellationScope.nonCancellable(async () => setStage(cancelled ? 'cancelled' : 'failed'));
    throw err;
  } finally {
    if (plan && !plan.definition.staging.keep) {
      const left = await deleteStaged(releaseId, plan.definition.timeouts, Object.values(staged).flat());
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

