// Channels: where approved images go (staging, production, ...). Each (definition, channel) is one long-lived
// workflow (workflows/channel.ts) whose state is the current assignment and the history of assignments. These shapes
// cross the workflow/activity boundary: the channel workflow keeps them, retention (activities/retention) reads them
// to know which releases some channel still uses or may roll back to. Pure: importable by workflows.
import type { Arch } from '../config/schema';
import type { ActivationRecord, Candidate } from './types';

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
}

/** The typed state of a channel, as its query returns it. */
export interface ChannelState {
  definition: string;
  channel: string;
  /** Latest first is NOT assumed: `history` is in seq order, `current` is the last assignment that activated. */
  current?: ChannelAssignment;
  history: ChannelAssignment[];
  /** Deletions retention made after assignments, in order (the channel workflow applies retention). */
  retention: RetentionRecord[];
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
  detail?: string;
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
