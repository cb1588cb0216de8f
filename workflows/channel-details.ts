// What the Temporal Web UI shows for a channel: "Current Details" (Markdown: the images in use per target, arch and
// region, then the last assignments) and a small memo (the current release and its images). Pure, unit-tested.
import type { ReleaseDefinition } from '../config/schema';
import type { ChannelAssignment, ChannelState } from '../activities/channels';
import { requirementOf } from './channel-rules';

const cell = (s: string | number | undefined) => String(s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ') || '—';

/** "promoted from staging by alice", "rolled back to #2 by bob", "approved by carol". */
export function describeAssignment(a: ChannelAssignment): string {
  const how =
    a.kind === 'promote' ? `promoted from ${a.from ?? '?'}` : a.kind === 'rollback' ? `rolled back${a.restores ? ` to #${a.restores}` : ''}` : 'approved';
  return `${how} by ${a.by}`;
}

/** How many entries an activation changed, over every target. */
export const replacedCount = (a: ChannelAssignment) => (a.activation?.replaced ?? []).reduce((n, r) => n + r.entries.length, 0);

export function channelDetails(state: ChannelState, def: ReleaseDefinition | undefined, last = 10): string {
  const { current } = state;
  const out = [`**Channel \`${state.channel}\`** of \`${state.definition}\``];
  const r = def ? requirementOf(def, state.channel) : undefined;
  if (r)
    out.push(
      '',
      `Takes images by promotion from \`${r.channel}\`${r.minAge ? `, after ${r.minAge} there` : ''}${r.tested ? ', once marked tested there' : ''}.`,
    );
  if (!current) out.push('', 'No images assigned yet.');
  else {
    const tested = current.tested ? `; marked tested by ${current.testedBy ?? '?'} at ${current.testedAt ?? '?'}` : '';
    out.push('', `Current: release \`${current.releaseId}\` (#${current.seq}, ${describeAssignment(current)} at ${current.at}${tested})`, '');
    out.push('| target | architecture | region | type | image |', '|---|---|---|---|---|');
    for (const c of current.images) out.push(`| ${cell(c.target)} | ${c.arch} | ${cell(c.region)} | ${c.type} | \`${c.imageId}\` |`);
  }
  if (state.activating)
    out.push('', `Activating now: #${state.activating.seq}, release \`${state.activating.releaseId}\`, ${describeAssignment(state.activating)}.`);
  if (state.lastFailure)
    out.push('', `Last failed assignment: #${state.lastFailure.seq} (${state.lastFailure.kind} of \`${state.lastFailure.releaseId}\` by ${state.lastFailure.by}): ${cell(state.lastFailure.error)}`);
  if (state.history.length) {
    out.push('', `**Last assignments** (${Math.min(last, state.history.length)} of ${state.history.length})`, '');
    out.push('| # | what | release | at | entries replaced | reason |', '|---|---|---|---|---|---|');
    for (const a of state.history.slice(-last).reverse())
      out.push(`| ${a.seq} | ${cell(describeAssignment(a))} | \`${a.releaseId}\` | ${a.at} | ${replacedCount(a)} | ${cell(a.reason)} |`);
  }
  out.push(
    '',
    `Roll back: \`bootc-release channel rollback ${state.channel} --definition ${state.definition} --by NAME --key KEY\`; ` +
      `history: \`bootc-release channel show ${state.channel} --definition ${state.definition}\`.`,
  );
  return out.join('\n');
}

/** The memo: enough for a list of channels to show what each one holds without a query. */
export function channelMemo(state: ChannelState): Record<string, unknown> {
  const c = state.current;
  return {
    definition: state.definition,
    channel: state.channel,
    assignments: state.history.length,
    current: c
      ? {
          seq: c.seq,
          kind: c.kind,
          releaseId: c.releaseId,
          by: c.by,
          at: c.at,
          tested: !!c.tested,
          images: c.images.map((i) => ({ target: i.target, arch: i.arch, region: i.region, type: i.type, imageId: i.imageId })),
        }
      : null,
  };
}
