// What a release shows of itself, kept in one place: the status query, the progress its builds report, the Web UI's
// Current Details, the stage and the plan in search attributes and memo, and a notification for each stage that
// people want to hear of.
import {
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  type WorkflowInfo,
} from '@temporalio/workflow';
import type { ReleasePlan } from '../config/schema';
import { archProgressSignal, statusQuery, type ReleaseStage, type ReleaseStatus } from './messages';
import { releaseNotifier } from './notify';
import { releaseDetails } from './release-details';
import { releaseArchesKey, releaseNameKey, releaseStageKey } from './search-attributes';

export function trackRelease(info: Pick<WorkflowInfo, 'workflowId' | 'startTime'>) {
  const status: ReleaseStatus = {
    releaseId: info.workflowId,
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

  return {
    releaseId: info.workflowId,
    status,
    /** The plan, once resolved. */
    get plan(): ReleasePlan | undefined {
      return plan;
    },
    refresh,
    setStage(stage: ReleaseStage): void {
      status.stage = stage;
      upsertSearchAttributes([{ key: releaseStageKey, value: stage }]);
      refresh();
      notifier.stageChanged(stage);
    },
    /** The plan is resolved: its name, reason and approvers join the status, search attributes and memo. */
    resolved(p: ReleasePlan): void {
      plan = p;
      status.name = p.definition.name;
      status.reason = p.reason;
      status.approvers = p.definition.approval.approvers;
      upsertSearchAttributes([
        { key: releaseNameKey, value: p.definition.name },
        { key: releaseArchesKey, value: p.arches },
      ]);
      upsertMemo({ name: p.definition.name, reason: p.reason ?? '', arches: p.arches });
    },
    /** Waits for the notifications in flight (they never fail the release). */
    settled: (): Promise<void> => notifier.settled(),
  };
}

export type ReleaseTracker = ReturnType<typeof trackRelease>;
