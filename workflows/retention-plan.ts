// `bootc-release retention plan DEFINITION`: a dry run of retention, on the worker, where the clouds' credentials
// are; the operator's machine needs only Temporal. planRetention changes nothing; this returns its plan.
import { proxyActivities } from '@temporalio/workflow';
import type { ReleaseActivities } from '../activities';
import { FailureType } from '../activities/failures';

export type RetentionPlan = Awaited<ReturnType<ReleaseActivities['planRetention']>>;

export interface RetentionPlanInput {
  /** A definition the worker knows, by name. */
  definition: string;
}

const acts = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '2m',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.Config, FailureType.Permission, FailureType.Credentials] },
});

export async function retentionPlan(input: RetentionPlanInput): Promise<RetentionPlan> {
  return await acts.planRetention({ definition: input.definition, now: new Date().toISOString() });
}
