// Retention as the channel workflow applies it (docs/retention.md, docs/channels.md). After an assignment activates:
// a plan (planRetention, which reads every channel of the definition and never touches this channel's own
// `protectedReleases(state, keep)`), then each deprecate and delete item (applyRetention, on the item's task queue
// when it has one), each outcome a RetentionRecord in the channel's state. Before a rollback: restoreImages re-enables
// what retention only deprecated. Nothing here throws: the assignment it follows or precedes is the channel's work,
// so a failure is recorded (`failed`, or the run's `error`) and reported, never silently dropped.
import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { ReleaseDefinition } from '../config/schema';
import { durationMs, type Duration } from '../config/duration';
import { FailureType, NOT_RETRIED } from '../activities/failures';
import type { ReleaseActivities } from '../activities';
import { protectedReleases, RETENTION_RECORDS_KEPT, retentionRecord, type ChannelAssignment, type ChannelState, type RetentionRecord, type RetentionRun } from '../activities/channels';
import type { RetentionPlan } from './retention-plan';
import { activityOptions } from './timeouts';

/** The patch that turned retention on in the channel workflow: histories from before it replay without it. */
export const RETENTION_PATCH = 'retention';

/** Attempts per item (and per plan or restore) before it is recorded as failed. */
export const RETENTION_ATTEMPTS = 5;

type RetentionItem = RetentionPlan['delete'][number];

/**
 * Retry with backoff (timeouts.retryInitial doubling up to timeouts.retryMax), RETENTION_ATTEMPTS attempts, each
 * bounded, all of them within `total`. The activities heartbeat every 10 s (activities/runtime/heartbeat.ts), so the
 * heartbeat timeout is at least 30 s whatever the definition says; a killed worker's attempt is retried after it.
 */
export function retentionOptions(def: Pick<ReleaseDefinition, 'timeouts'>, o: { attempt: Duration; total: Duration; taskQueue?: string }): ActivityOptions {
  const base = activityOptions(def.timeouts, { startToCloseTimeout: o.attempt, maximumAttempts: RETENTION_ATTEMPTS, taskQueue: o.taskQueue });
  return {
    ...base,
    scheduleToCloseTimeout: o.total,
    heartbeatTimeout: `${Math.max(durationMs(def.timeouts.heartbeat), 30_000)}ms`,
    retry: { ...base.retry, nonRetryableErrorTypes: [...NOT_RETRIED, FailureType.Permission, FailureType.Credentials] },
  };
}

/** The channel as a retention run sees it: its state, and whether an assignment is waiting for the run to yield. */
export interface RetentionChannel {
  state(): ChannelState;
  /** Replaces the state and shows it (Current Details, memo). */
  set(state: ChannelState): void;
  /** True while an assignment waits its turn: the run stops between items and is made again after it. */
  assignmentWaiting(): boolean;
}

/** The state with records appended, keeping the last RETENTION_RECORDS_KEPT. */
export function withRetentionRecords(state: ChannelState, records: RetentionRecord[], run?: RetentionRun): ChannelState {
  const retention = [...(state.retention ?? []), ...records].slice(-RETENTION_RECORDS_KEPT);
  return { ...state, retention, ...(run ? { retentionRun: run } : {}) };
}

/** The record of an item whose activity failed for good (after its retries, or refused as non-retryable). */
export function failedRecord(item: RetentionItem, error: string, at: string, seq: number): RetentionRecord {
  return { ...retentionRecord(item, 'failed', at, error), seq };
}

/** What a plan keeps because something uses the image: recorded, so `channel show` says why an old image stays. */
function inUseRecords(plan: RetentionPlan, at: string, seq: number): RetentionRecord[] {
  return plan.kept
    .filter((k) => k.why?.startsWith('in use:'))
    .map((k) => ({ ...retentionRecord(k, 'kept', at, k.why), seq }));
}

/** The failure's own message, under the ActivityFailure wrapper; a timeout says what the last attempt failed with. */
function failureText(err: unknown): string {
  let e = err as { message?: string; name?: string; cause?: { message?: string } } | undefined;
  while (e?.cause && e.name === 'ActivityFailure') e = e.cause as typeof e;
  const last = e?.cause?.message;
  return last && last !== e?.message ? `${e?.message} (last attempt: ${last})` : (e?.message ?? String(err));
}

const now = () => new Date().toISOString();

function counted(run: RetentionRun, r: RetentionRecord): RetentionRun {
  const key = r.outcome === 'ok' ? 'done' : r.outcome === 'kept' ? 'kept' : 'failed';
  return { ...run, [key]: run[key] + 1 };
}

/**
 * One retention run after assignment `state.current`: plan, then apply item by item, recording each outcome.
 * Returns 'deferred' when it stopped for a waiting assignment (the caller runs it again after that one).
 */
export async function applyChannelRetention(ch: RetentionChannel, def: ReleaseDefinition): Promise<'done' | 'deferred'> {
  const seq = ch.state().current?.seq;
  if (seq === undefined) return 'done';
  let run: RetentionRun = { kind: 'apply', seq, startedAt: now(), planned: 0, done: 0, kept: 0, failed: 0 };
  ch.set({ ...ch.state(), retentionRun: run });
  let plan: RetentionPlan;
  try {
    const { planRetention } = proxyActivities<ReleaseActivities>(retentionOptions(def, { attempt: '30m', total: '1h' }));
    plan = await planRetention({ definition: def.name, protectedReleases: protectedReleases(ch.state(), def.retention.keep), now: run.startedAt });
  } catch (err) {
    ch.set({ ...ch.state(), retentionRun: { ...run, finishedAt: now(), error: `no retention plan could be made: ${failureText(err)}` } });
    return 'done';
  }
  const items = [...plan.deprecate, ...plan.delete];
  const inUse = inUseRecords(plan, run.startedAt, seq);
  run = { ...run, planned: items.length, kept: inUse.length, ...(plan.unlisted.length ? { unlisted: plan.unlisted } : {}) };
  ch.set(withRetentionRecords(ch.state(), inUse, run));
  for (const [i, item] of items.entries()) {
    if (ch.assignmentWaiting()) {
      ch.set({ ...ch.state(), retentionRun: { ...run, deferred: items.length - i, finishedAt: now() } });
      return 'deferred';
    }
    const record = await applyItem(def, item, seq);
    run = counted(run, record);
    ch.set(withRetentionRecords(ch.state(), [record], run));
  }
  ch.set({ ...ch.state(), retentionRun: { ...run, finishedAt: now() } });
  return 'done';
}

/** One item, on its task queue (staged artifacts live on one worker); a failure after the retries is a record too. */
async function applyItem(def: ReleaseDefinition, item: RetentionItem, seq: number): Promise<RetentionRecord> {
  try {
    const { applyRetention } = proxyActivities<ReleaseActivities>(retentionOptions(def, { attempt: '5m', total: '15m', taskQueue: item.taskQueue }));
    return { ...(await applyRetention({ definition: def.name, item })), seq };
  } catch (err) {
    return failedRecord(item, `${item.action} failed after retries: ${failureText(err)}`, now(), seq);
  }
}

/**
 * Before rollback #seq activates release `releaseId`: re-enable the images retention only deprecated. A failure is
 * reported and the rollback goes on (a deprecated AMI still launches; nothing else is deprecated).
 */
export async function restoreBeforeRollback(
  ch: RetentionChannel,
  def: ReleaseDefinition,
  seq: number,
  target: Pick<ChannelAssignment, 'releaseId' | 'images'>,
): Promise<RetentionRecord[]> {
  const { releaseId, images } = target;
  const run: RetentionRun = { kind: 'restore', seq, startedAt: now(), planned: 0, done: 0, kept: 0, failed: 0 };
  const previousRun = ch.state().retentionRun;
  ch.set({ ...ch.state(), retentionRun: run });
  try {
    const { restoreImages } = proxyActivities<ReleaseActivities>(retentionOptions(def, { attempt: '10m', total: '20m' }));
    const wanted = images.map(({ target: t, arch, imageId, region }) => ({ target: t, arch, imageId, region }));
    const outcomes = (await restoreImages({ definition: def.name, releaseId, images: wanted })).map((r) => ({ ...r, seq }));
    // Images that are gone refuse the rollback (the refusal names them); they are not deeds of retention to record.
    const gone = outcomes.filter((r) => r.gone);
    if (gone.length) {
      ch.set({ ...ch.state(), retentionRun: previousRun });
      return gone;
    }
    ch.set(withRetentionRecords(ch.state(), outcomes, { ...run, planned: outcomes.length, done: outcomes.length, finishedAt: now() }));
    return [];
  } catch (err) {
    const error = `restoring the deprecated images of release ${releaseId} failed: ${failureText(err)}; the rollback went on`;
    ch.set({ ...ch.state(), retentionRun: { ...run, finishedAt: now(), error } });
    return [];
  }
}
