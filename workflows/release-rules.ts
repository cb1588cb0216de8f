// Pure decisions of the release workflow, kept apart so unit tests can reach them without a server.
import { TARGET_TYPES } from '../config/constants';
import type { ReleasePlan, Target } from '../config/schema';
import type { StagedArtifact } from '../activities/types';
import type { Approval, ReleaseStatus } from './messages';

/** Why an approval cannot be accepted now, or undefined when it can. */
export function validateApproval(status: ReleaseStatus, plan: ReleasePlan | undefined, a: Approval | undefined): string | undefined {
  if (!a || typeof a !== 'object') return 'the approval must be a JSON object like {"by": "name"}';
  if (!a.by || typeof a.by !== 'string') return 'by: required (who approves)';
  if (!plan) return 'the release has not resolved its plan yet';
  if (!plan.definition.approval.approvers.includes(a.by))
    return `${a.by} is not an approver (approval.approvers: ${plan.definition.approval.approvers.join(', ')})`;
  if (status.stage !== 'awaiting-approval') return `release is ${status.stage}, not awaiting approval`;
  if (a.images !== undefined && !Array.isArray(a.images)) return 'images: must be a list of image ids';
  const unknown = (a.images ?? []).filter((id) => !status.candidates.some((c) => c.imageId === id));
  if (unknown.length) return `unknown image id${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`;
  return undefined;
}

/**
 * What a target receives: a directory keeps every artifact; a cloud takes the first of its preferred types that the
 * architecture built (raw before qcow2 for libvirt and Glance, qcow2 before vhd for IBM Cloud).
 */
export function artifactsFor(artifacts: StagedArtifact[], kind: Target['kind']): StagedArtifact[] {
  if (kind === 'directory') return artifacts;
  const one = chooseArtifact(artifacts, kind);
  return one ? [one] : [];
}

/** The artifact a target takes: the first of its preferred types that the architecture built. */
export function chooseArtifact(artifacts: StagedArtifact[], kind: Target['kind']): StagedArtifact | undefined {
  for (const type of TARGET_TYPES[kind]) {
    const found = artifacts.find((a) => a.type === type);
    if (found) return found;
  }
  return undefined;
}
