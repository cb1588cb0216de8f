// Activity options of the release workflows, in one place. Heartbeat timeouts decide how fast a killed worker's
// activity is retried elsewhere, so they are configurable (`timeouts.heartbeat` in the definition).
import { ActivityCancellationType, type ActivityOptions } from '@temporalio/workflow';
import type { ReleaseDefinition } from '../config/schema';

type Timeouts = ReleaseDefinition['timeouts'];

export function activityOptions(
  t: Timeouts,
  o: { startToCloseTimeout: string; taskQueue?: string; maximumAttempts?: number; waitForCancellation?: boolean },
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
      nonRetryableErrorTypes: ['ConfigError', 'HostKeyMismatch', 'NoSpaceLeft', 'PermissionDenied'],
    },
  };
}
