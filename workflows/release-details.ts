// What the Temporal Web UI shows for a release under "Current Details" (Markdown, refreshed on every change): the
// stage, each architecture, the candidate images, and, while the release awaits a person, exactly what to send.
// Pure, so it is unit-tested without a server (test/unit/release-details.test.ts).
import type { ReleasePlan } from '../config/schema';
import type { ReleaseStatus } from './messages';

const cell = (s: string | number | undefined) => String(s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ') || '—';
const mib = (n: number) => `${(n / 2 ** 20).toFixed(n < 10 * 2 ** 20 ? 1 : 0)} MiB`;

export function releaseDetails(status: ReleaseStatus, plan: ReleasePlan | undefined): string {
  const out: string[] = [];
  out.push(`**${status.name ?? 'release'}** \`${status.releaseId}\` is **${status.stage}**${status.reason ? ` — ${status.reason}` : ''}`);
  const arches = Object.entries(status.arches);
  if (arches.length) {
    out.push('', '| architecture | stage | builder | artifacts |', '|---|---|---|---|');
    for (const [arch, a] of arches) {
      const builder = a?.builder ? `${a.builder.provider} ${a.builder.id}` : '';
      const artifacts = (a?.artifacts ?? []).map((x) => `${x.type} ${mib(x.dataBytes)} of ${mib(x.size)}`).join(', ');
      out.push(`| ${arch} | ${cell(a?.stage)}${a?.error ? `: ${cell(a.error)}` : ''} | ${cell(builder)} | ${cell(artifacts)} |`);
    }
  }
  if (status.candidates.length) {
    out.push('', '**Candidate images** (use or ignore)', '', '| architecture | target | region | image | name |', '|---|---|---|---|---|');
    for (const c of status.candidates) out.push(`| ${c.arch} | ${cell(c.target)} | ${cell(c.region)} | \`${c.imageId}\` | ${cell(c.name)} |`);
  }
  for (const f of status.publishFailures) out.push('', `Publishing ${f.arch} to ${f.target} failed: ${f.error}`);
  if (status.stage === 'awaiting-approval' && plan) {
    const who = plan.definition.approval.approvers[0] ?? 'approver';
    out.push('', '**Waiting for a decision**' + (status.approvalDeadline ? ` until ${status.approvalDeadline}` : '') + '.');
    if (plan.definition.approval.allowUnsigned) {
      out.push(
        '',
        'Approve all: More Actions → Send a Signal → `approve`, input:',
        '```json',
        JSON.stringify({ by: who }),
        '```',
        'Approve some: `' + JSON.stringify({ by: who, images: status.candidates.slice(0, 1).map((c) => c.imageId) }) + '`; reject: signal `reject` with `' + JSON.stringify({ by: who, reason: '…' }) + '`.',
      );
    } else {
      out.push('', `This definition takes signed decisions only: \`bootc-release release approve ${status.releaseId} --by NAME --key KEY\`.`);
    }
  }
  if (status.approval) out.push('', `Decision: ${status.approval.decision}${status.approval.by ? ` by ${status.approval.by}` : ''} at ${status.approval.at}.`);
  if (status.activation) out.push('', `Activated on channel ${status.activation.channel}: written to ${status.activation.writtenTo.join(', ') || 'nothing'}.`);
  if (status.error) out.push('', `Error: ${status.error}`);
  return out.join('\n');
}
