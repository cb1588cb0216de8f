// Activity options of the release workflows, in one place. Heartbeat timeouts decide how fast a killed worker's
// activity is retried elsewhere, so they are configurable (`timeouts.heartbeat` in the definition).
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import type { ReleaseDefinition } from '../config/schema';
import { durationMs, type Duration } from '../config/duration';
import { NOT_RETRIED } from '../activities/failures';

type Timeouts = ReleaseDefinition['timeouts'];

export function activityOptions(
  t: Timeouts,
  o: { startToCloseTimeout: Duration; taskQueue?: string; maximumAttempts?: number; waitForCancellation?: boolean },
): ActivityOptions {
  return {
    // Steps that create resources wait until their cancellation is done, so nothing is created after the teardown.
    cancellationType: o.waitForCancellation ? ActivityCancellationType.WAIT_CANCELLATION_COMPLETED : undefined,
    startToCloseTimeout: o.startToCloseTimeout,
    heartbeatTimeout: t.heartbeat,
    taskQueue: o.taskQueue,
    retry: {
      initialInterval: t.retryInitial,
      backoffCoefficient: 2,
      maximumInterval: t.retryMax,
      // 0 means unlimited, as in Temporal's own retry policy; the TypeScript SDK spells that Infinity.
      maximumAttempts: (o.maximumAttempts ?? t.maxAttempts) || Number.POSITIVE_INFINITY,
      nonRetryableErrorTypes: [...NOT_RETRIED],
    },
  };
}

/**
 * The activation: heartbeats (a hook may run long; a killed worker's attempt is retried elsewhere and re-attaches to
 * the hook), long enough for every hook to reach its own timeout, and a cancel waits until the hook is killed.
 */
export function activationOptions(d: Pick<ReleaseDefinition, 'timeouts' | 'channels'>, channel: string): ActivityOptions {
  const hooks = (d.channels[channel]?.activation ?? []).map((a) => (a.kind === 'command' ? durationMs(a.timeout) : 0));
  const ms = hooks.reduce((sum, t) => sum + t, 30 * 60_000);
  return activityOptions(d.timeouts, { startToCloseTimeout: `${ms}ms`, waitForCancellation: true });
}

