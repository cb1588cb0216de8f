// Channels: where approved images go (staging, production, ...). Each (definition, channel) is one long-lived
// workflow (workflows/channel.ts) whose state is the current assignment and the history of assignments. These shapes
// cross the workflow/activity boundary: the channel workflow keeps them, retention (activities/retention) reads them
// to know which releases some channel still uses or may roll back to. Pure: importable by workflows.
import type { Arch, ReleaseDefinition } from '../config/schema';
import type { ActivationRecord, Candidate } from './types';
import type { RetentionItem } from './retention/plan';

/** Workflow id of the channel entity of one definition: `<definition>.channel.<channel>`. */
export function channelWorkflowId(definition: string, channel: string): string {
  return `${definition}.channel.${channel}`;
}

/** How an assignment came about. */
export type AssignmentKind = 'approve' | 'promote' | 'rollback';

/** One assignment of images to a channel: the images, the release that produced them, who and why. */
export interface ChannelAssignment {
  /** 1, 2, 3... in the order the channel received them (kept across continue-as-new). */
  seq: number;
  kind: AssignmentKind;
  /** The release whose images these are (for a promote or rollback: the release that built them). */
  releaseId: string;
  /** Image per target, arch and region (or type): the candidates chosen at approval. */
  images: Candidate[];
  by: string;
  /** ISO time the assignment was requested (workflow time). */
  at: string;
  reason?: string;
  /** For a promote: the channel the images came from. */
  from?: string;
  /** What activation did on each target, including the entries it replaced. */
  activation?: ActivationRecord;
  /** True once a person (or a test run) marked the images tested on this channel. */
  tested?: boolean;
  /** Who marked them tested, and when (workflow time). */
  testedBy?: string;
  testedAt?: string;
  /** ISO time activation finished (workflow time): what `requires.minAge` counts from. */
  activatedAt?: string;
  /** For a rollback: the seq of the assignment whose images it restored. */
  restores?: number;
}

/** The typed state of a channel, as its query returns it. */
export interface ChannelState {
  definition: string;
  channel: string;
  /** Latest first is NOT assumed: `history` is in seq order, `current` is the last assignment that activated. */
  current?: ChannelAssignment;
  history: ChannelAssignment[];
  /**
   * What retention did, in order: after each assignment (deprecate, delete, keep an image in use) and before each
   * rollback (restore). The channel workflow applies retention; it keeps the last RETENTION_RECORDS_KEPT records.
   */
  retention: RetentionRecord[];
  /** The last retention run of this channel: running, or how it ended. */
  retentionRun?: RetentionRun;
  /** The assignment being activated now (one at a time; others wait their turn). */
  activating?: ChannelAssignment;
  /** The last assignment whose activation failed: it never became current and is not in `history`. */
  lastFailure?: Pick<ChannelAssignment, 'seq' | 'kind' | 'releaseId' | 'by' | 'at' | 'from'> & { error: string };
}

/**
 * Who asks a channel to act, as the approval of a release does: `by` must be an approver of the channel, and the
 * request signed with one of their keys (`ssh-keygen -Y sign`, workflows/approval-signature.ts `channelActionText`)
 * unless the definition sets approval.allowUnsigned.
 */
export interface ChannelActor {
  by: string;
  reason?: string;
  /** ISO time of signing (part of the signed text). */
  signedAt?: string;
  /** The armored SSH signature. */
  signature?: string;
}

/**
 * A release's approval assigns its chosen images (update `assign`). The channel reads what was approved (images,
 * approver, channel) from the release workflow itself, never from this request.
 */
export interface AssignRequest {
  releaseId: string;
  /**
   * The definition the release ran. Used only by a worker that allows inline definitions; other workers use the
   * definition of that name in their definitions directory.
   */
  definition?: ReleaseDefinition;
}

/** Update `promote`, sent to the channel that receives the images (TO): what FROM has now. */
export interface PromoteRequest extends ChannelActor {
  from: string;
}

/** Update `rollback`: back to the previous assignment's images, or to the latest assignment of release `to`. */
export interface RollbackRequest extends ChannelActor {
  to?: string;
}

/** Update `markTested`: the current assignment (which must be of `releaseId` when given) is tested. */
export interface MarkTestedRequest extends ChannelActor {
  releaseId?: string;
}

/** What a release workflow reports about its decision, for the channel to check an `assign` against. */
export interface ReleaseApprovalView {
  /** The workflow's type: only an imageRelease counts. */
  workflowType: string;
  definition?: string;
  stage: string;
  decision?: 'approved' | 'rejected' | 'timed-out';
  by?: string;
  signed?: boolean;
  comment?: string;
  /** The channel the approver chose (absent: the definition's default). */
  channel?: string;
  /** The chosen candidates. */
  chosen: Candidate[];
}

/** Input of the channel workflow; continue-as-new carries the state and the definition last resolved. */
export interface ChannelInput {
  definition: string;
  channel: string;
  state?: ChannelState;
  /** The definition as last resolved by the worker: what update validators check against. */
  resolved?: ReleaseDefinition;
  /** Continue as new past this many history events (default 2000; tests force it lower). */
  maxHistoryEvents?: number;
}

/** One thing retention did (or could not do) to one image. */
export interface RetentionRecord {
  at: string;
  releaseId: string;
  target: string;
  arch: Arch;
  region?: string;
  imageId: string;
  action: 'deprecate' | 'delete' | 'keep' | 'restore';
  /** ok: done; failed: retried and still failing (reported, never silently skipped); kept: in use or protected. */
  outcome: 'ok' | 'failed' | 'kept';
  /** A rollback's image that no longer exists at its target: the rollback is refused. */
  gone?: boolean;
  detail?: string;
  /** The assignment the record belongs to: retention ran after #seq, or (restore) before rollback #seq. */
  seq?: number;
}

/** The record of what retention did to one item of a plan: by applyRetention, or by the channel when it failed. */
export function retentionRecord(
  item: Pick<RetentionItem, 'releaseId' | 'target' | 'image' | 'action'>,
  outcome: RetentionRecord['outcome'],
  at: string,
  detail?: string,
): RetentionRecord {
  return {
    at,
    releaseId: item.releaseId,
    target: item.target,
    arch: item.image.arch,
    ...(item.image.region ? { region: item.image.region } : {}),
    imageId: item.image.imageId,
    action: item.action,
    outcome,
    ...(detail ? { detail } : {}),
  };
}

/** How many retention records a channel keeps (the oldest go first); continue-as-new carries them. */
export const RETENTION_RECORDS_KEPT = 200;

/** One retention run of a channel, as `channel show` and the Web UI report it. */
export interface RetentionRun {
  /** apply: after assignment #seq, a plan and each of its items; restore: before rollback #seq. */
  kind: 'apply' | 'restore';
  seq: number;
  startedAt: string;
  /** Unset while it runs. */
  finishedAt?: string;
  /** Images to deprecate or delete in the plan (apply), or images re-enabled (restore). */
  planned: number;
  /**
   * Records of the run by outcome: done (ok), kept (an image something uses, found by the plan or again right before
   * the action, or protected since the plan), failed after retries.
   */
  done: number;
  kept: number;
  failed: number;
  /** Items not applied because an assignment was waiting: the run is made again, with a new plan, after it. */
  deferred?: number;
  /** Targets that refused to be listed: none of their images was considered. */
  unlisted?: { target: string; error: string }[];
  /** Why no plan (or restore) could be made: nothing was changed. */
  error?: string;
}

/** The releases a channel still needs: its current one and the ones it may roll back to (`keep` distinct latest). */
export function protectedReleases(state: Pick<ChannelState, 'history' | 'current'>, keep: number): string[] {
  const ids: string[] = [];
  if (state.current) ids.push(state.current.releaseId);
  for (let i = state.history.length - 1; i >= 0 && ids.length < Math.max(keep, 1); i--) {
    const id = state.history[i]!.releaseId;
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}
