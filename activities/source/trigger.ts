// Decides whether a trigger (a schedule, a forge's push webhook, `bootc-release trigger`) starts a release of a
// definition now, and under which release id. The id is what makes "at most one release per change" hold: for a
// source change it is derived from the source fingerprint, so a second trigger for the same change meets the
// first release's id and starts nothing.
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, findDefinition } from '../../config/load';
import type { Notification } from '../../config/notifications';
import { fingerprintSource, type FingerprintDeps, type SourceFingerprint } from './fingerprint';
import { FailureType } from '../failures';

export type TriggerMode = 'always' | 'source-change' | 'inactivity';

export interface TriggerCheck {
  definition: string;
  mode: TriggerMode;
  /** inactivity: start when the last activated release is older than this (ms). */
  rebuildAfterMs?: number;
  /** Workflow time of the check (ISO). */
  now: string;
}

export interface LastActivated {
  releaseId: string;
  /** When it was activated (its workflow's close time), ISO. */
  at: string;
  sourceDigest?: string;
}

/** What the trigger needs to know of earlier releases; Temporal's visibility answers it (worker/wiring.ts). */
export interface ReleaseHistory {
  /** Ids of the definition's releases that are still running. */
  running(definition: string): Promise<string[]>;
  lastActivated(definition: string): Promise<LastActivated | undefined>;
}

export interface TriggerDecision {
  start: boolean;
  /** A sentence for the trigger's result, its notification and the release's reason. */
  reason: string;
  releaseId?: string;
  fingerprint?: SourceFingerprint;
  arches: string[];
  notifications: Notification[];
}

export interface TriggerDeps extends FingerprintDeps {
  definitionsDir: string;
  history?: ReleaseHistory;
}

const stamp = (iso: string) => iso.replace(/[-:]/g, '').replace('T', '-').slice(0, 15);

export async function checkTrigger(deps: TriggerDeps, check: TriggerCheck): Promise<TriggerDecision> {
  if (!deps.history) throw ApplicationFailure.nonRetryable('this worker was wired without a Temporal client: triggers cannot see earlier releases', FailureType.Config);
  const definition = await findDefinition(deps.definitionsDir, check.definition).catch((err: unknown) => {
    if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, FailureType.Config);
    throw err;
  });
  const base = { arches: Object.keys(definition.architectures), notifications: definition.notifications };
  const running = await deps.history.running(definition.name);
  if (running.length) return { ...base, start: false, reason: `release ${running.join(', ')} of ${definition.name} is still running` };
  const last = await deps.history.lastActivated(definition.name);
  const fingerprint = await fingerprintSource(deps, definition.source);
  const what = fingerprint.parts.map((p) => `${p.ref} ${p.value.slice(0, 19)}`).join(', ');

  if (check.mode === 'source-change') {
    if (last?.sourceDigest === fingerprint.digest)
      return { ...base, fingerprint, start: false, reason: `source unchanged since ${last.releaseId} (${what})` };
    return {
      ...base,
      fingerprint,
      start: true,
      releaseId: `${definition.name}-src-${fingerprint.digest}`,
      reason: last
        ? `source changed since ${last.releaseId}: ${what}`
        : `no activated release of ${definition.name} records its source yet: ${what}`,
    };
  }
  if (check.mode === 'inactivity') {
    const age = last ? Date.parse(check.now) - Date.parse(last.at) : Number.POSITIVE_INFINITY;
    if (age < (check.rebuildAfterMs ?? 0))
      return { ...base, fingerprint, start: false, reason: `${last!.releaseId} was activated ${Math.round(age / 3_600_000)} h ago, within rebuildAfter` };
    return {
      ...base,
      fingerprint,
      start: true,
      releaseId: `${definition.name}-${stamp(check.now)}`,
      reason: last ? `${last.releaseId} was activated ${Math.round(age / 3_600_000)} h ago: rebuild after inactivity` : `no activated release of ${definition.name} yet`,
    };
  }
  return { ...base, fingerprint, start: true, releaseId: `${definition.name}-${stamp(check.now)}`, reason: 'scheduled' };
}
