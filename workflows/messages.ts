// Messages of the release workflows: what the Temporal UI, the CLI and child workflows send and read.
// Importable by the client without pulling in workflow internals.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Arch, ReleaseInput, ReleasePlan } from '../config/schema';
import type { ActivationRecord, Candidate, StagedArtifact } from '../activities/types';

export const WORKFLOW_TYPES = {
  release: 'imageRelease',
  archBuild: 'archBuild',
  janitor: 'builderJanitor',
  trigger: 'releaseTrigger',
  channel: 'imageChannel',
} as const;

/** Workflow id of a release's build of one architecture (its archBuild child), which `status --watch` describes. */
export const archBuildId = (releaseId: string, arch: Arch) => `${releaseId}.build.${arch}`;

/** One check of a trigger: start a release of `definition` if `mode` says one is due. */
export interface TriggerInput {
  definition: string;
  /** always: start one (unless one runs); source-change: only when the source changed; inactivity: when the last activated release is older than rebuildAfter. */
  mode?: 'always' | 'source-change' | 'inactivity';
  rebuildAfter?: string;
  /** Who or what triggered: a schedule id, "webhook", a person. */
  by?: string;
}

export interface TriggerResult {
  definition: string;
  mode: NonNullable<TriggerInput['mode']>;
  /** The release started, if any. */
  started?: string;
  reason: string;
  sourceDigest?: string;
}

export type ReleaseStage =
  | 'resolving'
  | 'preflight'
  | 'building'
  | 'awaiting-approval'
  /** A person approved; in-flight publishes finish, then activation starts. */
  | 'approved'
  /** A person rejected; candidates are cleaned up as the definition says. */
  | 'rejecting'
  | 'activating'
  | 'activated'
  | 'rejected'
  | 'timed-out'
  | 'failed'
  | 'cancelled';

export const FINAL_STAGES: ReleaseStage[] = ['activated', 'rejected', 'timed-out', 'failed', 'cancelled'];

export type ArchStage =
  | 'pending'
  | 'provisioning'
  | 'preparing-volume'
  | 'preparing-image'
  | 'building-image'
  | 'fetching'
  | 'tearing-down'
  | 'publishing'
  | 'published'
  | 'failed'
  | 'cancelled';

export interface ArchStatus {
  stage: ArchStage;
  builder?: { provider: string; id: string; address: string };
  imageDigest?: string;
  artifacts?: Pick<StagedArtifact, 'type' | 'size' | 'dataBytes' | 'sha256'>[];
  error?: string;
}

export interface PublishFailure {
  arch: Arch;
  target: string;
  error: string;
}

/**
 * Who signed a decision, and when: the CLI signs with the approver's SSH key (`ssh-keygen -Y sign -n
 * bootc-release-approval`) the text of workflows/approval-signature.ts; the definition lists the keys
 * (approval.keys). Decisions without a signature count only where approval.allowUnsigned is true.
 */
export interface Signed {
  /** ISO time of signing (part of the signed text). */
  signedAt?: string;
  /** The armored SSH signature (-----BEGIN SSH SIGNATURE-----…). */
  signature?: string;
}

/** What an approver sends. From the Temporal UI: a JSON body like {"by": "copr-admin"}. */
export interface Approval extends Signed {
  by: string;
  /** Image ids to use; the others are ignored. The candidates listed at that moment when omitted or empty. */
  images?: string[];
  comment?: string;
  /** The channel to assign the images to, instead of the definition's default (one without `requires`). */
  channel?: string;
}

export interface Rejection extends Signed {
  by: string;
  reason?: string;
}

export type { ActivationRecord, ImageMapValue, ReplacedEntry } from '../activities/types';

export interface ReleaseStatus {
  releaseId: string;
  name?: string;
  stage: ReleaseStage;
  reason?: string;
  startedAt: string;
  arches: Partial<Record<Arch, ArchStatus>>;
  candidates: Candidate[];
  publishFailures: PublishFailure[];
  approval?: {
    decision: 'approved' | 'rejected' | 'timed-out';
    by?: string;
    at: string;
    images?: string[];
    reason?: string;
    /** True when the decision carried a signature by one of the approver's listed keys. */
    signed?: boolean;
    /** The approval's comment. */
    comment?: string;
    /** The channel the approved images are assigned to. */
    channel?: string;
  };
  approvers?: string[];
  approvalDeadline?: string;
  activation?: ActivationRecord;
  error?: string;
}

export interface ReleaseResult {
  releaseId: string;
  stage: ReleaseStage;
  candidates: Candidate[];
  chosen: Candidate[];
  activation?: ActivationRecord;
}

export const statusQuery = defineQuery<ReleaseStatus>('status');

/** The Temporal UI sends signals: these are the approval buttons for people there. */
export const approveSignal = defineSignal<[Approval]>('approve');
export const rejectSignal = defineSignal<[Rejection]>('reject');

/** The CLI sends validated updates: unknown images, unlisted approvers or a release not yet ready are refused. */
export const approveUpdate = defineUpdate<ReleaseStatus, [Approval]>('approveRelease');
export const rejectUpdate = defineUpdate<ReleaseStatus, [Rejection]>('rejectRelease');

/** Re-publish one target (optionally one architecture) that failed; a validated update from the CLI. */
export interface RetryRequest {
  target: string;
  arch?: Arch;
}
export const retryPublishUpdate = defineUpdate<ReleaseStatus, [RetryRequest]>('retryPublish');

/** archBuild → its parent: progress of one architecture. */
export const archProgressSignal = defineSignal<[{ arch: Arch; status: Partial<ArchStatus> }]>('archProgress');

export interface ArchBuildInput {
  plan: ReleasePlan;
  arch: Arch;
  /** Workflow id of the imageRelease to report progress to. */
  parentId: string;
}

export interface ArchBuildResult {
  arch: Arch;
  artifacts: StagedArtifact[];
  imageDigest?: string;
  buildLogs: string[];
}

export type { ReleaseInput, ReleasePlan };
