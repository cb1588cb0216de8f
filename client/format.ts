// What a person reads: the stage of each architecture, the "images to use or ignore" table, the release list and
// the janitor's report, each rendered for an OutputStyle (client/output.ts) so a pipe gets the same words, plainly.
import type { Candidate } from '../activities/types';
import type { JanitorReport } from '../workflows/builder-janitor';
import type { ReleaseStatus } from '../workflows/messages';
import { paint, renderTable, TABLE, type OutputStyle, type Paint } from './output';
import type { ReleaseSummary } from './release-client';

const size = (bytes: number) => (bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`);

/** Green for done, yellow for a person's turn, red for an end that needs a look; everything else uncoloured. */
const STAGE_PAINT: Record<string, Paint> = {
  activated: 'green',
  published: 'green',
  'awaiting-approval': 'yellow',
  failed: 'red',
  rejected: 'red',
  'timed-out': 'red',
  cancelled: 'red',
  FAILED: 'red',
  COMPLETED: 'green',
  TERMINATED: 'red',
  CANCELLED: 'red',
  TIMED_OUT: 'red',
};
export const stage = (style: OutputStyle, name: string) => paint(style, STAGE_PAINT[name], name);

export function candidatesTable(candidates: Candidate[], style: OutputStyle = TABLE): string {
  if (candidates.length === 0) return '(no candidate images yet)';
  return renderTable(
    style,
    ['arch', 'target', 'region/host', 'image id', 'name', 'type', 'size', 'sha256'],
    candidates.map((c) => [c.arch, c.target, c.region ?? '', c.imageId, c.name, c.type, size(c.size), c.sha256.slice(0, 12)]),
  );
}

export function statusText(s: ReleaseStatus, style: OutputStyle = TABLE): string {
  const title = `release ${paint(style, 'bold', s.releaseId)}${s.name ? ` (${s.name})` : ''}: ${stage(style, s.stage)}`;
  const lines = [`${title}${s.reason ? ` — ${s.reason}` : ''}`];
  const arches = Object.entries(s.arches).map(([arch, a]) => [
    arch,
    stage(style, a!.stage),
    a!.builder ? `${a!.builder.provider} ${a!.builder.id}` : '',
    a!.error ?? (a!.imageDigest ? `image ${a!.imageDigest.slice(0, 19)}` : ''),
  ]);
  if (arches.length) lines.push(renderTable(style, ['arch', 'stage', 'builder', 'detail'], arches));
  lines.push('Candidate images (use or ignore):', candidatesTable(s.candidates, style));
  for (const f of s.publishFailures) lines.push(paint(style, 'red', `publish failed: ${f.arch} → ${f.target}: ${f.error}`));
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
  if (s.error) lines.push(paint(style, 'red', `Error: ${s.error}`));
  return lines.join('\n');
}

export function listTable(rows: ReleaseSummary[], style: OutputStyle = TABLE): string {
  if (rows.length === 0) return '(no releases)';
  return renderTable(
    style,
    ['release', 'name', 'stage', 'workflow', 'started'],
    rows.map((r) => [r.releaseId, r.name ?? '', r.stage ? stage(style, r.stage) : '', stage(style, r.status), r.startedAt]),
  );
}

export function janitorText(report: JanitorReport, style: OutputStyle = TABLE): string {
  const kept = report.kept ?? [];
  const summary = `${report.dryRun ? 'would delete' : 'deleted'} ${report.deleted.length}, failed ${report.failed.length}, kept ${kept.length}`;
  const rows = [
    ...report.deleted.map((d) => [d.kind, d.id, d.releaseId, report.dryRun ? 'would delete' : 'deleted', d.reason]),
    ...report.failed.map((f) => [f.kind, f.id, '', paint(style, 'red', 'FAILED'), f.error]),
    // What the janitor could not attribute to a release for certain: never deleted, listed for a person to look at.
    ...kept.filter((k) => !k.releaseId).map((k) => [k.kind, k.id, '', paint(style, 'yellow', 'KEPT'), k.reason]),
  ];
  return rows.length ? `${summary}\n${renderTable(style, ['kind', 'id', 'release', 'result', 'reason'], rows)}` : summary;
}

export function validText(file: string, name: string, arches: string[], style: OutputStyle = TABLE): string {
  return `${file}: ${paint(style, 'green', 'valid')} (${name}: ${arches.join(', ')})`;
}
