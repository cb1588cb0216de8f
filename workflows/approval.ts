// The approval gate of a release: who may decide, what a decision must carry, the moment it is taken, and the
// verdict the release goes on with.
//
// Anyone who can reach Temporal can send a signal or an update and type any `by`, so a decision counts only when it
// is signed by one of the approver's keys listed in the definition (approval.keys), or when the definition allows
// unsigned decisions (approval.allowUnsigned, e.g. the demo's Temporal UI buttons). The signature is checked here,
// in workflow code: the update validator must answer synchronously and cannot run an activity, and the check is pure
// (workflows/ed25519.ts), so replays reach the same verdict.
//
// The gate itself (ApprovalGate) is given the clock, the wait and the log it uses, so a unit test can drive it
// without a Temporal server; installApprovalGate wires it to the workflow's own and to the signals and updates.
import { ApplicationFailure, condition, log, setHandler } from '@temporalio/workflow';
import type { ReleasePlan } from '../config/schema';
import type { Candidate } from '../activities/types';
import { durationMs } from '../config/duration';
import { approvalText, signedRequestProblem } from './approval-signature';
import { approvalChannelProblem, channelApprovers, defaultChannel } from './channel-rules';
import {
  approveSignal,
  approveUpdate,
  FINAL_STAGES,
  rejectSignal,
  rejectUpdate,
  type Approval,
  type Rejection,
  type ReleaseStage,
  type ReleaseStatus,
} from './messages';
import { FailureType } from '../activities/failures';

export type DecisionKind = 'approve' | 'reject';

/** A decision once taken: an approval carries the image ids it chose, fixed at that moment. */
export type Decision =
  | { approved: true; by: string; images: string[]; comment?: string; signed: boolean; channel: string }
  | { approved: false; by: string; reason?: string; signed: boolean };

/** What the release goes on with once the gate has closed: activate the chosen candidates, or end. */
export type Verdict = { stage: 'approved'; chosen: Candidate[]; by: string; channel: string } | { stage: 'rejected' | 'timed-out' };

/** The one thing approval and rejection name differently in what people read. */
const NOUN: Record<DecisionKind, string> = { approve: 'approval', reject: 'rejection' };

/** Why a decision cannot be accepted now, or undefined when it can. `now` is the workflow's clock. */
export function decisionProblem(
  status: ReleaseStatus,
  plan: ReleasePlan | undefined,
  kind: DecisionKind,
  m: Approval | Rejection | undefined,
  now: number,
): string | undefined {
  const word = NOUN[kind];
  if (!m || typeof m !== 'object') return `the ${word} must be a JSON object like {"by": "name"}`;
  if (!m.by || typeof m.by !== 'string') return `by: required (who ${kind}s)`;
  if (!plan) return 'the release has not resolved its plan yet';
  if (status.stage !== 'awaiting-approval') return `release is ${status.stage}, not awaiting approval`;
  // The approver list is not echoed: whoever asks learns only that this name cannot decide.
  if (!plan.definition.approval.approvers.includes(m.by)) return `${m.by} is not an approver of this release`;
  let images: string[] = [];
  let channel: string | undefined;
  if (kind === 'approve') {
    const a = m as Approval;
    if (a.images !== undefined && (!Array.isArray(a.images) || a.images.some((i) => typeof i !== 'string')))
      return 'images: must be a list of image ids';
    images = a.images ?? [];
    const unknown = images.filter((id) => !status.candidates.some((c) => c.imageId === id));
    if (unknown.length) return `unknown image id${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`;
    if (a.channel !== undefined && typeof a.channel !== 'string') return 'channel: must be a channel name';
    const problem = a.channel === undefined ? undefined : approvalChannelProblem(plan.definition, a.channel);
    if (problem) return problem;
    channel = a.channel;
    const to = a.channel ?? defaultChannel(plan.definition);
    if (!channelApprovers(plan.definition, to).includes(m.by)) return `${m.by} may not assign images to channel ${to}`;
  }
  const note = kind === 'approve' ? (m as Approval).comment : (m as Rejection).reason;
  return signedRequestProblem(m, {
    text: (signedAt) => approvalText({ releaseId: status.releaseId, decision: kind, by: m.by, images, note, signedAt, channel }),
    keys: plan.definition.approval.keys[m.by] ?? [],
    allowUnsigned: plan.definition.approval.allowUnsigned,
    now,
    unsigned: `unsigned ${word}s are not accepted for this release (approval.allowUnsigned is off): sign it with the CLI, bootc-release release ${kind} --key <ssh key>`,
    what: 'this decision (release id, decision, approver, images, channel, note and time are signed)',
  });
}

/** What the gate uses of its release and of the workflow; a test passes its own clock, wait and log. */
export interface GateDeps {
  status: ReleaseStatus;
  plan: () => ReleasePlan | undefined;
  setStage: (stage: ReleaseStage) => void;
  /** The workflow's clock (Date.now in workflow code). */
  now: () => number;
  /** Temporal's `condition`: resolves once `done()` holds; with a timeout, to false when the time ran out first. */
  condition: (done: () => boolean, timeout?: string) => Promise<boolean | void>;
  warn: (message: string, attributes: Record<string, unknown>) => void;
}

/**
 * The approve/reject decisions, from the Temporal UI (signals) and the CLI (updates), all checked by one validator.
 * The first accepted decision is final: the stage leaves awaiting-approval at once, so later decisions and publish
 * retries are refused, and "approve all" means the candidates listed at that moment, not ones an in-flight retry
 * adds afterwards.
 */
export class ApprovalGate {
  private taken: Decision | undefined;

  constructor(private readonly deps: GateDeps) {}

  get decision(): Decision | undefined {
    return this.taken;
  }

  /** The validator of both paths: why this decision cannot be taken now, or undefined when it can. */
  validate(kind: DecisionKind, m: Approval | Rejection | undefined): string | undefined {
    return decisionProblem(this.deps.status, this.deps.plan(), kind, m, this.deps.now());
  }

  /** From the Temporal UI: a signal cannot be answered with an error, so a refusal is logged and shown in the status. */
  signal(kind: DecisionKind, m: Approval | Rejection): void {
    const problem = this.validate(kind, m);
    if (problem) {
      this.deps.warn(`${kind} signal ignored`, { problem, by: m?.by });
      this.deps.status.error = `${NOUN[kind]} from ${m?.by ?? '(nobody)'} ignored: ${problem}`;
      return;
    }
    this.take(kind, m);
  }

  /** From the CLI: refused by the validator with the reason, answered once the release has reached its outcome. */
  async update(kind: DecisionKind, m: Approval | Rejection): Promise<ReleaseStatus> {
    const { status } = this.deps;
    // Two updates in one workflow task both pass their validators; only the first may decide.
    const problem = this.validate(kind, m);
    if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.DecisionRefused);
    this.take(kind, m);
    await this.deps.condition(() => FINAL_STAGES.includes(status.stage));
    return status;
  }

  /**
   * Awaits a decision until the definition's approval timeout, then until `idle()` (no publish running), and
   * records it in the status: a publish retried before the decision still finishes (its image exists), but joins
   * no approval made earlier.
   */
  async decide(timeout: string, idle: () => boolean): Promise<Verdict> {
    const { status, now } = this.deps;
    this.deps.setStage('awaiting-approval');
    status.approvalDeadline = new Date(now() + durationMs(timeout)).toISOString();
    const decided = await this.deps.condition(() => this.taken !== undefined, timeout);
    if (decided) await this.deps.condition(idle);
    const decision = this.taken;
    const at = new Date(now()).toISOString();
    if (!decided || !decision) {
      status.approval = { decision: 'timed-out', at };
      return { stage: 'timed-out' };
    }
    if (!decision.approved) {
      status.approval = { decision: 'rejected', by: decision.by, at, reason: decision.reason, signed: decision.signed };
      return { stage: 'rejected' };
    }
    const chosen = status.candidates.filter((c) => decision.images.includes(c.imageId));
    const { by, signed, comment, channel } = decision;
    status.approval = { decision: 'approved', by, at, images: chosen.map((c) => c.imageId), signed, comment, channel };
    return { stage: 'approved', chosen, by, channel };
  }

  private take(kind: DecisionKind, m: Approval | Rejection): void {
    const { status } = this.deps;
    const signed = typeof m.signature === 'string' && m.signature !== '';
    if (kind === 'approve') {
      const a = m as Approval;
      const images = a.images?.length ? [...a.images] : status.candidates.map((c) => c.imageId);
      const channel = a.channel ?? defaultChannel(this.deps.plan()!.definition);
      this.taken = { approved: true, by: a.by, images, comment: a.comment, signed, channel };
    } else {
      this.taken = { approved: false, by: m.by, reason: (m as Rejection).reason, signed };
    }
    this.deps.setStage(kind === 'approve' ? 'approved' : 'rejecting');
  }
}


/** The gate of a running release: the workflow's clock, condition and log, and its signal and update handlers. */
export function installApprovalGate(o: Pick<GateDeps, 'status' | 'plan' | 'setStage'>): ApprovalGate {
  const gate = new ApprovalGate({ ...o, now: () => Date.now(), condition, warn: (message, attributes) => log.warn(message, attributes) });
  const validator = (kind: DecisionKind) => (m: Approval | Rejection) => {
    const problem = gate.validate(kind, m);
    if (problem) throw new Error(problem);
  };
  setHandler(approveSignal, (m) => gate.signal('approve', m), {
    description: 'Approve the candidates: {"by": "your name"} for all, or {"by": "...", "images": ["ami-..."]} for some. Counts only from an approver, and unsigned only where the definition allows it; see Current Details.',
  });
  setHandler(rejectSignal, (m) => gate.signal('reject', m), {
    description: 'Reject the candidates: {"by": "your name", "reason": "why"}. Counts only from an approver, and unsigned only where the definition allows it.',
  });
  setHandler(approveUpdate, (m) => gate.update('approve', m), {
    validator: validator('approve'),
    description: 'Approve, validated and signed (what `bootc-release release approve --key` sends); answers once the release is activated.',
  });
  setHandler(rejectUpdate, (m) => gate.update('reject', m), {
    validator: validator('reject'),
    description: 'Reject, validated and signed (what `bootc-release release reject --key` sends).',
  });
  return gate;
}
