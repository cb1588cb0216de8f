// The rules of channels, as pure functions the channel workflow, the release's approval gate and the unit tests
// share: which channel an approval goes to, who may act on a channel, whether a promotion's requirement holds, what a
// rollback returns to, what may be marked tested, and how an assignment (or its failure) changes the state. No I/O,
// no clock of their own (callers pass `now`).
import type { ReleaseDefinition, ReleasePlan } from '../config/schema';
import { durationMs } from '../config/duration';
import type { AssignmentKind, ChannelActor, ChannelAssignment, ChannelState, ReleaseApprovalView, RetentionRecord } from '../activities/channels';
import { channelActionText, signedRequestProblem, type ChannelSignedFields } from './approval-signature';
import { WORKFLOW_TYPES } from './messages';

/** A definition without channels still activates: into the channel "default", which has no activation targets. */
export const DEFAULT_CHANNEL = 'default';

/** Where an approved release goes unless the approver names another: approval.channel, or the first without requires. */
export function defaultChannel(def: Pick<ReleaseDefinition, 'approval' | 'channels'>): string {
  if (def.approval.channel) return def.approval.channel;
  const entries = Object.entries(def.channels);
  return entries.find(([, c]) => !c.requires)?.[0] ?? entries[0]?.[0] ?? DEFAULT_CHANNEL;
}

/** Whether the channel exists in the definition (the implicit "default" of a definition without channels counts). */
export function knownChannel(def: Pick<ReleaseDefinition, 'channels'>, channel: string): boolean {
  if (Object.keys(def.channels).length === 0) return channel === DEFAULT_CHANNEL;
  return Object.hasOwn(def.channels, channel);
}

/** Who may act on a channel: its own approvers, else the definition's. */
export function channelApprovers(def: Pick<ReleaseDefinition, 'approval' | 'channels'>, channel: string): string[] {
  return (knownChannel(def, channel) ? def.channels[channel]?.approvers : undefined) ?? def.approval.approvers;
}

/** The requirement of a channel in its long form, or undefined when images may be assigned to it at approval. */
export function requirementOf(
  def: Pick<ReleaseDefinition, 'channels'>,
  channel: string,
): { channel: string; minAge?: string; tested: boolean } | undefined {
  const r = knownChannel(def, channel) ? def.channels[channel]?.requires : undefined;
  if (r === undefined) return undefined;
  return typeof r === 'string' ? { channel: r, tested: false } : r;
}

/** Why an approval may not assign to `channel`, or undefined. Channels with requires take promotions only. */
export function approvalChannelProblem(def: Pick<ReleaseDefinition, 'approval' | 'channels'>, channel: string): string | undefined {
  if (!knownChannel(def, channel)) return `channel: "${channel}" is not a channel of this definition`;
  const r = requirementOf(def, channel);
  if (r && channel !== def.approval.channel)
    return `channel: "${channel}" takes images by promotion from ${r.channel} only (channels.${channel}.requires)`;
  return undefined;
}

const human = (ms: number) => {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  return h ? `${h}h ${m}m` : m ? `${m}m` : `${Math.floor(ms / 1000)}s`;
};

/**
 * Why promoting `from`'s current assignment to `to` is refused, or undefined. Every condition the requirement
 * writes must hold: from the named channel, active there for minAge, marked tested.
 */
export function promotionProblem(
  def: Pick<ReleaseDefinition, 'channels'>,
  to: string,
  from: string,
  source: ChannelAssignment | undefined,
  now: number,
): string | undefined {
  if (!knownChannel(def, from)) return `from: "${from}" is not a channel of this definition`;
  if (from === to) return `from: a channel cannot be promoted to itself`;
  const r = requirementOf(def, to);
  if (r && r.channel !== from) return `${to} takes images from ${r.channel} only (channels.${to}.requires), not from ${from}`;
  if (source === undefined) return undefined; // the rest is about `from`'s assignment, fetched by the caller
  if (r?.tested && !source.tested)
    return `release ${source.releaseId} on ${from} is not marked tested (channels.${to}.requires.tested); mark it with bootc-release channel mark-tested ${from} --by NAME`;
  if (r?.minAge) {
    const since = Date.parse(source.activatedAt ?? source.at);
    const age = now - since;
    const need = durationMs(r.minAge);
    if (age < need)
      return `release ${source.releaseId} has been on ${from} for ${human(age)}; ${to} requires ${r.minAge} (channels.${to}.requires.minAge): promote it after ${new Date(since + need).toISOString()}`;
  }
  return undefined;
}

/**
 * Why `actor` may not do `action` on `channel` now, or undefined: an approver of the channel, with a signature by one
 * of their listed keys over exactly this action (unsigned only where approval.allowUnsigned).
 */
export function actorProblem(
  def: Pick<ReleaseDefinition, 'name' | 'approval' | 'channels'>,
  action: ChannelSignedFields['action'],
  channel: string,
  actor: ChannelActor | undefined,
  fields: Pick<ChannelSignedFields, 'from' | 'release'>,
  now: number,
): string | undefined {
  if (!actor || typeof actor !== 'object') return 'the request must be a JSON object like {"by": "name"}';
  if (!actor.by || typeof actor.by !== 'string') return `by: required (who asks to ${action})`;
  if (actor.reason !== undefined && typeof actor.reason !== 'string') return 'reason: must be text';
  if (!knownChannel(def, channel)) return `channel "${channel}" is not in definition ${def.name}`;
  // The approver list is not echoed: whoever asks learns only that this name may not act here.
  if (!channelApprovers(def, channel).includes(actor.by)) return `${actor.by} may not ${action} on channel ${channel}`;
  return signedRequestProblem(actor, {
    text: (signedAt) =>
      channelActionText({ action, definition: def.name, channel, ...fields, by: actor.by, note: actor.reason, signedAt }),
    keys: def.approval.keys[actor.by] ?? [],
    allowUnsigned: def.approval.allowUnsigned,
    now,
    unsigned: `unsigned requests are not accepted for this definition (approval.allowUnsigned is off): sign it with the CLI, bootc-release channel ${action} ... --key <ssh key>`,
    what: `this request (action, definition, channels, release, approver, reason and time are signed)`,
  });
}

/**
 * Why a release's approval may not be assigned to `channel`, or undefined. The channel reads the approval from the
 * release workflow itself (an `assign` update says only which release), so only an imageRelease of this definition,
 * approved for this channel by one of its approvers and now activating, is assigned.
 */
export function releaseProblem(
  def: Pick<ReleaseDefinition, 'name' | 'approval' | 'channels'>,
  channel: string,
  releaseId: string,
  release: ReleaseApprovalView | undefined,
): string | undefined {
  if (!release) return `release ${releaseId} is not known to Temporal`;
  if (release.workflowType !== WORKFLOW_TYPES.release) return `${releaseId} is a ${release.workflowType} workflow, not a release`;
  if (release.definition !== def.name) return `release ${releaseId} is of definition ${release.definition ?? '(unresolved)'}, not ${def.name}`;
  if (release.decision !== 'approved' || !['approved', 'activating'].includes(release.stage))
    return `release ${releaseId} is ${release.stage}, not approved and activating`;
  const approvedFor = release.channel ?? defaultChannel(def);
  if (approvedFor !== channel) return `release ${releaseId} was approved for channel ${approvedFor}, not ${channel}`;
  if (!release.by || !channelApprovers(def, channel).includes(release.by)) return `${release.by ?? '(nobody)'} may not assign images to channel ${channel}`;
  if (release.chosen.length === 0) return `release ${releaseId} chose no image`;
  return undefined;
}

/** The assignment a rollback returns to: the latest of release `to`, or the latest of another release than now. */
export function rollbackTarget(state: Pick<ChannelState, 'current' | 'history' | 'channel'>, to?: string): ChannelAssignment | string {
  const { current, history, channel } = state;
  if (!current) return `channel ${channel} has no assignment to roll back`;
  if (to !== undefined && typeof to !== 'string') return 'to: must be a release id';
  if (to === current.releaseId) return `release ${to} is already current on ${channel}`;
  const earlier = history.filter((a) => a.seq < current.seq).reverse();
  const found = earlier.find((a) => (to ? a.releaseId === to : a.releaseId !== current.releaseId));
  if (found) return found;
  const releases = [...new Set(history.map((a) => a.releaseId))];
  return to
    ? `release ${to} was never active on ${channel} (it had: ${releases.join(', ')})`
    : `nothing to roll back to: ${current.releaseId} is the only release ${channel} has had`;
}

/** Why promoting `source` (FROM's current assignment) is refused because `channel` has it already, or undefined. */
export function alreadyCurrentProblem(state: Pick<ChannelState, 'current'>, channel: string, from: string, source: ChannelAssignment): string | undefined {
  if (state.current?.releaseId === source.releaseId && JSON.stringify(state.current.images) === JSON.stringify(source.images))
    return `${channel} already has release ${source.releaseId}, the one ${from} has`;
  return undefined;
}

/** Why a rollback to release `releaseId` is refused when some of its images no longer exist (retention deleted them, or a person). */
export function goneImagesProblem(releaseId: string, gone: Pick<RetentionRecord, 'target' | 'arch' | 'region' | 'imageId'>[]): string | undefined {
  if (!gone.length) return undefined;
  return `cannot roll back to release ${releaseId}: ${gone.map((g) => `${g.target} ${g.arch}${g.region ? ` ${g.region}` : ''} ${g.imageId}`).join(', ')} no longer exist; roll back to a release within retention.keep`;
}

/** Why the current images of `channel` cannot be marked tested (none, or another release than `releaseId`), or undefined. */
export function markTestedProblem(state: Pick<ChannelState, 'current'>, channel: string, releaseId?: string): string | undefined {
  if (!state.current) return `${channel} has no images to mark tested`;
  if (releaseId !== undefined && releaseId !== state.current.releaseId) return `${channel} has release ${state.current.releaseId}, not ${releaseId}`;
  return undefined;
}

/** The state after an assignment activated: it becomes current and joins the history. */
export function withAssignment(state: ChannelState, a: ChannelAssignment): ChannelState {
  return { ...state, current: a, history: [...state.history, a], activating: undefined };
}

/** The state after assignment `a` failed to activate: nothing is activating, and the failure is shown. */
export function withFailure(state: ChannelState, a: ChannelAssignment, error: string): ChannelState {
  const { seq, kind, releaseId, by, at, from } = a;
  return { ...state, activating: undefined, lastFailure: { seq, kind, releaseId, by, at, from, error } };
}

/** The state after the current assignment was marked tested. */
export function withTested(state: ChannelState, by: string, at: string): ChannelState {
  const seq = state.current?.seq;
  const mark = (a: ChannelAssignment) => (a.seq === seq ? { ...a, tested: true, testedBy: by, testedAt: at } : a);
  return { ...state, current: state.current && mark(state.current), history: state.history.map(mark) };
}

/** The next assignment number: one past everything the channel has seen (failed ones too). */
export function nextSeq(state: ChannelState): number {
  return Math.max(0, state.current?.seq ?? 0, state.history.at(-1)?.seq ?? 0, state.lastFailure?.seq ?? 0, state.activating?.seq ?? 0) + 1;
}

/**
 * The plan an assignment activates: the definition as resolved now, with the release that built the images. The
 * stamp is only for image names, which activation does not make.
 */
export function activationPlan(def: ReleaseDefinition, a: Pick<ChannelAssignment, 'releaseId' | 'images' | 'at'>): ReleasePlan {
  const arches = [...new Set(a.images.map((c) => c.arch))];
  return { releaseId: a.releaseId, definition: def, arches, stamp: a.at.replace(/[-:]/g, '').replace('T', '_').slice(0, 15) };
}

export const ASSIGNMENT_VERB: Record<AssignmentKind, string> = { approve: 'approved', promote: 'promoted', rollback: 'rolled back' };
