// One check of a trigger (run by a Temporal Schedule, a push webhook or `bootc-release trigger`): ask whether the
// definition needs a release now (activities/source/trigger.ts), and if so start it as an independent workflow that
// outlives this one. Its id comes from the decision, and Temporal refuses a second workflow of one id, so two
// checks of one change start one release.
import {
  ApplicationFailure,
  log,
  ParentClosePolicy,
  proxyActivities,
  startChild,
  WorkflowIdReusePolicy,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { ReleaseActivities } from '../activities';
import { durationMs } from '../config/duration';
import type { NotifyEvent } from '../config/notifications';
import { imageRelease } from './image-release';
import type { TriggerInput, TriggerResult } from './messages';
import { releaseNameKey, releaseSourceDigestKey, releaseTriggerKey } from './search-attributes';
import { FailureType } from '../activities/failures';

const acts = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '10m',
  retry: { initialInterval: '5s', maximumInterval: '1m', maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.Config] },
});

export async function releaseTrigger(input: TriggerInput): Promise<TriggerResult> {
  const mode = input.mode ?? 'always';
  const decision = await acts.checkTrigger({
    definition: input.definition,
    mode,
    rebuildAfterMs: input.rebuildAfter ? msOf(input.rebuildAfter) : undefined,
    now: new Date().toISOString(),
  });
  let result: TriggerResult = { definition: input.definition, mode, started: undefined, reason: decision.reason, sourceDigest: decision.fingerprint?.digest };
  if (decision.start && decision.releaseId) {
    try {
      await startChild(imageRelease, {
        workflowId: decision.releaseId,
        args: [{ definition: input.definition, reason: `${input.by ?? mode}: ${decision.reason}`.slice(0, 500), requestedBy: input.by }],
        staticSummary: `${input.definition}: ${decision.arches.join(', ')}, started by ${input.by ?? mode} (${mode}) — ${decision.reason}`.slice(0, 400),
        parentClosePolicy: ParentClosePolicy.ABANDON,
        // A failed release of a change may be tried again by the next check; any other outcome stands.
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        typedSearchAttributes: [
          { key: releaseNameKey, value: input.definition },
          { key: releaseTriggerKey, value: input.by ? `${mode}:${input.by}` : mode },
          ...(decision.fingerprint ? [{ key: releaseSourceDigestKey, value: decision.fingerprint.digest }] : []),
        ],
      });
      result = { ...result, started: decision.releaseId };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      result = { ...result, reason: `release ${decision.releaseId} was already started for this source` };
    }
  }
  log.info('trigger checked', { ...result });
  const event: NotifyEvent = result.started ? 'trigger-started' : 'trigger-skipped';
  if (decision.notifications.some((n) => n.events.includes(event))) {
    await acts
      .notifyRelease({
        notifications: decision.notifications,
        event: {
          event,
          releaseId: result.started ?? workflowInfo().workflowId,
          definition: input.definition,
          arches: decision.arches,
          stage: result.started ? 'resolving' : 'skipped',
          at: new Date().toISOString(),
          reason: result.reason,
        },
      })
      .catch((err: Error) => log.warn('trigger notification not delivered', { error: err.message }));
  }
  return result;
}

/** rebuildAfter as typed into a start input: a bad one fails this check, never the workflow task (retried forever). */
function msOf(d: string): number {
  try {
    return durationMs(d);
  } catch {
    throw ApplicationFailure.nonRetryable(`rebuildAfter: "${d}" is not a duration like 14d or 12h`, FailureType.Config);
  }
}
