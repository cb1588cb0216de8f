// What a person reads in a terminal: the stage of each architecture and the "images to use or ignore" table.
import Table from 'cli-table3';
import type { Candidate } from '../activities/types';
import type { ReleaseStatus } from '../workflows/messages';
import type { ReleaseSummary } from './release-client';

const size = (bytes: number) => (bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`);

export function candidatesTable(candidates: Candidate[]): string {
  if (candidates.length === 0) return '(no candidate images yet)';
  const t = new Table({ head: ['arch', 'target', 'region/host', 'image id', 'name', 'type', 'size', 'sha256'], style: { head: [] } });
  for (const c of candidates)
    t.push([c.arch, c.target, c.region ?? '', c.imageId, c.name, c.type, size(c.size), c.sha256.slice(0, 12)]);
  return t.toString();
}

export function statusText(s: ReleaseStatus): string {
  const lines = [`release ${s.releaseId}${s.name ? ` (${s.name})` : ''}: ${s.stage}${s.reason ? ` — ${s.reason}` : ''}`];
  const arches = new Table({ head: ['arch', 'stage', 'builder', 'detail'], style: { head: [] } });
  for (const [arch, a] of Object.entries(s.arches))
    arches.push([arch, a!.stage, a!.builder ? `${a!.builder.provider} ${a!.builder.id}` : '', a!.error ?? (a!.imageDigest ? `image ${a!.imageDigest.slice(0, 19)}` : '')]);
  if (Object.keys(s.arches).length) lines.push(arches.toString());
  lines.push('Candidate images (use or ignore):', candidatesTable(s.candidates));
  for (const f of s.publishFailures) lines.push(`publish failed: ${f.arch} → ${f.target}: ${f.error}`);
  if (s.stage === 'awaiting-approval')
    lines.push(
      `Awaiting approval by one of: ${s.approvers?.join(', ')} (until ${s.approvalDeadline}).`,
      `  bootc-release release approve ${s.releaseId} --by NAME --key SSH_KEY [--image IMAGE_ID ...]`,
      `  bootc-release release reject ${s.releaseId} --by NAME --key SSH_KEY --reason TEXT`,
    );
  if (s.approval)
    lines.push(
      `Decision: ${s.approval.decision}${s.approval.by ? ` by ${s.approval.by}${s.approval.signed ? ' (signed)' : s.approval.decision === 'timed-out' ? '' : ' (unsigned)'}` : ''} at ${s.approval.at}${s.approval.reason ? `: ${s.approval.reason}` : ''}`,
    );
  if (s.activation) lines.push(`Activated on channel ${s.activation.channel}: ${s.activation.writtenTo.join(', ') || '(no activation targets)'}`);
  if (s.error) lines.push(`Error: ${s.error}`);
  return lines.join('\n');
}

export function listTable(rows: ReleaseSummary[]): string {
  if (rows.length === 0) return '(no releases)';
  const t = new Table({ head: ['release', 'name', 'stage', 'workflow', 'started'], style: { head: [] } });
  for (const r of rows) t.push([r.releaseId, r.name ?? '', r.stage ?? '', r.status, r.startedAt]);
  return t.toString();
}
