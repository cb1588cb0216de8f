// The janitor: run on a Temporal Schedule (`bootc-release janitor schedule`), it deletes builder VMs and volumes
// that a release left behind (a worker lost mid-teardown, a release terminated by hand) and reports what it did.
import { ApplicationFailure, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ReleaseActivities } from '../activities';
import { FailureType } from '../activities/failures';
import { durationMs, isDuration } from '../config/duration';

export interface JanitorInput {
  /** Resources of releases still open are deleted only past this age. */
  ttl?: string;
  dryRun?: boolean;
}

export interface JanitorReport {
  deleted: { kind: string; id: string; releaseId: string; reason: string }[];
  /** Found and left alone: a running release's, or one whose release cannot be named for certain. */
  kept: { kind: string; id: string; releaseId?: string; reason: string }[];
  failed: { kind: string; id: string; error: string }[];
  dryRun: boolean;
}

const acts = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '30m',
  heartbeatTimeout: '2m',
  retry: { maximumAttempts: 5 },
});

export async function builderJanitor(input: JanitorInput = {}): Promise<JanitorReport> {
  const ttl = input.ttl ?? '24h';
  // A failure, not an Error: an Error thrown here would fail the workflow task, which Temporal retries forever.
  if (!isDuration(ttl)) throw ApplicationFailure.nonRetryable(`ttl: "${ttl}" is not a duration like 12h or 2d`, FailureType.Config);
  const ttlMs = durationMs(ttl);
  const { stale, kept } = await acts.findStaleBuilders({ ttlMs, now: new Date(workflowInfo().startTime).toISOString() });
  const report: JanitorReport = { deleted: [], kept, failed: [], dryRun: !!input.dryRun };
  for (const item of stale) {
    const { kind, id, releaseId } = item.resource;
    if (input.dryRun) {
      report.deleted.push({ kind, id, releaseId, reason: item.reason });
      continue;
    }
    try {
      await acts.deleteStaleBuilder(item);
      report.deleted.push({ kind, id, releaseId, reason: item.reason });
    } catch (err) {
      report.failed.push({ kind, id, error: (err as Error).message });
    }
  }
  // What cancelled releases published and could not delete themselves (their cleanup's worker was lost).
  for (const { target, scope } of await acts.findCancelledPublishes()) {
    const id = `${scope.targetName}/${scope.arch}`;
    const reason = `release ${scope.releaseId} was cancelled`;
    if (input.dryRun) {
      report.deleted.push({ kind: 'published', id, releaseId: scope.releaseId, reason });
      continue;
    }
    try {
      await acts.deletePublished({ target, scope });
      report.deleted.push({ kind: 'published', id, releaseId: scope.releaseId, reason });
    } catch (err) {
      report.failed.push({ kind: 'published', id, error: (err as Error).message });
    }
  }
  log.info('janitor finished', { deleted: report.deleted.length, kept: kept.length, failed: report.failed.length });
  return report;
}
