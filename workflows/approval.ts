// The approval gate of a release: who may decide, what a decision must carry, and the moment it is taken.
//
// Anyone who can reach Temporal can send a signal or an update and type any `by`, so a decision counts only when it
// is signed by one of the approver's keys listed in the definition (approval.keys), or when the definition allows
// unsigned decisions (approval.allowUnsigned, e.g. the demo's Temporal UI buttons). The signature is checked here,
// in workflow code: the update validator must answer synchronously and cannot run an activity, and the check is pure
// (workflows/ed25519.ts), so replays reach the same verdict.
import { ApplicationFailure, condition, log, setHandler } from '@temporalio/workflow';
import type { ReleasePlan } from '../config/schema';
import { approvalText, signatureProblem, SIGNATURE_MAX_AGE_MS, SIGNATURE_MAX_SKEW_MS } from './approval-signature';
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

/** A decision once taken: an approval carries the image ids it chose, fixed at that moment. */
export type Decision =
  | { approved: true; by: string; images: string[]; comment?: string; signed: boolean }
  | { approved: false; by: string; reason?: string; signed: boolean };

/** Why a decision cannot be accepted now, or undefined when it can. `now` is the workflow's clock. */
export function decisionProblem(
  status: ReleaseStatus,
  plan: ReleasePlan | undefined,
  kind: 'approve' | 'reject',
  m: Approval | Rejection | undefined,
  now: number,
): string | undefined {
  const word = kind === 'approve' ? 'approval' : 'rejection';
  if (!m || typeof m !== 'object') return `the ${word} must be a JSON object like {"by": "name"}`;
  if (!m.by || typeof m.by !== 'string') return `by: required (who ${kind}s)`;
  if (!plan) return 'the release has not resolved its plan yet';
  if (status.stage !== 'awaiting-approval') return `release is ${status.stage}, not awaiting approval`;
  // The approver list is not echoed: whoever asks learns only that this name cannot decide.
  if (!plan.definition.approval.approvers.includes(m.by)) return `${m.by} is not an approver of this release`;
  let images: string[] = [];
  if (kind === 'approve') {
    const a = m as Approval;
    if (a.images !== undefined && (!Array.isArray(a.images) || a.images.some((i) => typeof i !== 'string')))
      return 'images: must be a list of image ids';
    images = a.images ?? [];
    const unknown = images.filter((id) => !status.candidates.some((c) => c.imageId === id));
    if (unknown.length) return `unknown image id${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`;
  }
  if (m.signature === undefined || m.signature === null || m.signature === '') {
    if (plan.definition.approval.allowUnsigned) return undefined;
    return `unsigned ${word}s are not accepted for this release (approval.allowUnsigned is off): sign it with the CLI, bootc-release release ${kind} --key <ssh key>`;
  }
  if (typeof m.signature !== 'string') return 'signature: must be the text of an SSH signature';
  if (typeof m.signedAt !== 'string' || Number.isNaN(Date.parse(m.signedAt)))
    return 'signedAt: required with a signature (the ISO time it was signed)';
  const signedAt = Date.parse(m.signedAt);
  if (signedAt < now - SIGNATURE_MAX_AGE_MS) return `signedAt: the signature is older than ${SIGNATURE_MAX_AGE_MS / 60_000} minutes; sign again`;
  if (signedAt > now + SIGNATURE_MAX_SKEW_MS) return `signedAt: ${m.signedAt} is ahead of the release's clock; check the signer's clock`;
  const note = kind === 'approve' ? (m as Approval).comment : (m as Rejection).reason;
  const text = approvalText({ releaseId: status.releaseId, decision: kind, by: m.by, images, note, signedAt: m.signedAt });
  return signatureProblem(m.signature, text, plan.definition.approval.keys[m.by] ?? []);
}

/**
 * Installs the approve/reject signals (Temporal UI) and updates (CLI). The first accepted decision is final: the
 * stage leaves awaiting-approval at once, so later decisions and publish retries are refused, and "approve all"
 * means the candidates listed at that moment, not ones an in-flight retry adds afterwards.
 */
export function approvalGate(o: { status: ReleaseStatus; plan: () => ReleasePlan | undefined; setStage: (s: ReleaseStage) => void }) {
  const { status } = o;
  let decision: Decision | undefined;
  const problem = (kind: 'approve' | 'reject', m: Approval | Rejection | undefined) =>
    decisionProblem(status, o.plan(), kind, m, Date.now());

  const take = (kind: 'approve' | 'reject', m: Approval | Rejection) => {
    const signed = typeof m.signature === 'string' && m.signature !== '';
    if (kind === 'approve') {
      const a = m as Approval;
      const images = a.images?.length ? [...a.images] : status.candidates.map((c) => c.imageId);
      decision = { approved: true, by: a.by, images, comment: a.comment, signed };
    } else {
      decision = { approved: false, by: m.by, reason: (m as Rejection).reason, signed };
    }
    o.setStage(kind === 'approve' ? 'approved' : 'rejecting');
  };

  // From the Temporal UI: a signal cannot be answered with an error, so a refusal is logged and shown in the status.
  const fromSignal = (kind: 'approve' | 'reject') => (m: Approval | Rejection) => {
    const p = problem(kind, m);
    if (p) {
      log.warn(`${kind} signal ignored`, { problem: p, by: m?.by });
      status.error = `${kind === 'approve' ? 'approval' : 'rejection'} from ${m?.by ?? '(nobody)'} ignored: ${p}`;
      return;
    }
    take(kind, m);
  };
  setHandler(approveSignal, fromSignal('approve'), {
    description: 'Approve the candidates: {"by": "your name"} for all, or {"by": "...", "images": ["ami-..."]} for some. Counts only from an approver, and unsigned only where the definition allows it; see Current Details.',
  });
  setHandler(rejectSignal, fromSignal('reject'), {
    description: 'Reject the candidates: {"by": "your name", "reason": "why"}. Counts only from an approver, and unsigned only where the definition allows it.',
  });

  // From the CLI: refused with the reason by the validator, answered once the release has reached its outcome.
  const untilSettled = () => condition(() => FINAL_STAGES.includes(status.stage));
  const fromUpdate = (kind: 'approve' | 'reject') => ({
    handler: async (m: Approval | Rejection) => {
      // Two updates in one workflow task both pass their validators; only the first may decide.
      const p = problem(kind, m);
      if (p) throw ApplicationFailure.nonRetryable(p, FailureType.DecisionRefused);
      take(kind, m);
      await untilSettled();
      return status;
    },
    validator: (m: Approval | Rejection) => {
      const p = problem(kind, m);
      if (p) throw new Error(p);
    },
  });
  const approve = fromUpdate('approve');
  const reject = fromUpdate('reject');
  setHandler(approveUpdate, approve.handler, {
    validator: approve.validator,
    description: 'Approve, validated and signed (what `bootc-release release approve --key` sends); answers once the release is activated.',
  });
  setHandler(rejectUpdate, reject.handler, {
    validator: reject.validator,
    description: 'Reject, validated and signed (what `bootc-release release reject --key` sends).',
  });

  return {
    get decision(): Decision | undefined {
      return decision;
    },
  };
}
