// Pure decisions of the release workflow, kept apart so unit tests can reach them without a server.
import { TARGET_TYPES } from '../config/constants';
import type { Target } from '../config/schema';
import type { StagedArtifact } from '../activities/types';
import type { ReleaseStatus } from './messages';

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

/** Why a release ended without a candidate: each architecture's failure, then each failed publish. */
export function noCandidatesMessage(status: Pick<ReleaseStatus, 'arches' | 'publishFailures'>): string {
  const arches = Object.entries(status.arches).map(([a, s]) => (s?.error?.startsWith(`${a}:`) ? s.error : `${a}: ${s?.error ?? s?.stage}`));
  const publishes = status.publishFailures.map((f) => `${f.arch} → ${f.target}: ${f.error}`);
  return `no candidate images: ${arches.concat(publishes).join('; ')}`;
}
