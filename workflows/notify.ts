// Tells the definition's notification sinks (config/notifications.ts) what happened to a release, without ever
// holding the release up: each event is sent by an activity of its own, retried a few times, and its failure is
// only logged. The release waits for what is in flight only as it ends, so no message is lost on completion.
import { log, proxyActivities } from '@temporalio/workflow';
import type { ReleaseActivities } from '../activities';
import type { ReleaseEvent } from '../activities/types';
import type { NotifyEvent } from '../config/notifications';
import type { ReleasePlan } from '../config/schema';
import type { ReleaseStage, ReleaseStatus } from './messages';
import { FailureType } from '../activities/failures';

/** A few tries with the definition's backoff: a message is worth a minute of retries, not a stuck release. */
const sender = (t: ReleasePlan['definition']['timeouts']) =>
  proxyActivities<ReleaseActivities>({
    startToCloseTimeout: '2m',
    retry: { initialInterval: t.retryInitial, backoffCoefficient: 2, maximumInterval: t.retryMax, maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.Config] },
  }).notifyRelease;

/** Release stages that are worth a message, and the event each one sends. */
const EVENT_OF: Partial<Record<ReleaseStage, NotifyEvent>> = {
  'awaiting-approval': 'awaiting-approval',
  activated: 'activated',
  rejected: 'rejected',
  failed: 'failed',
  cancelled: 'cancelled',
};

export function releaseNotifier(plan: () => ReleasePlan | undefined, status: ReleaseStatus) {
  const inFlight: Promise<void>[] = [];
  return {
    /** Call on every stage change; sends when the stage is one people want to hear of. */
    stageChanged(stage: ReleaseStage): void {
      const p = plan();
      const event = EVENT_OF[stage];
      if (!p || !event || p.definition.notifications.length === 0) return;
      const body: ReleaseEvent = {
        event,
        releaseId: status.releaseId,
        definition: p.definition.name,
        arches: p.arches,
        stage,
        at: new Date().toISOString(),
        candidates: status.candidates.map(({ arch, target, imageId, region }) => ({ arch, target, imageId, region })),
        error: status.error,
        by: status.approval?.by,
      };
      inFlight.push(
        sender(p.definition.timeouts)({ notifications: p.definition.notifications, event: body }).then(
          () => undefined,
          (err: Error) => log.warn('notification not delivered', { event, error: err.message }),
        ),
      );
    },
    /** Waits for every message in flight (they never fail the release). */
    async settled(): Promise<void> {
      await Promise.all(inFlight);
    },
  };
}
