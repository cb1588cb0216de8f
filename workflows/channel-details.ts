// What the Temporal Web UI shows for a channel: "Current Details" (Markdown: the images in use per target, arch and
// region, then the last assignments, then what retention did) and a small memo (the current release and its images,
// the last retention run). Pure, unit-tested.
import type { ReleaseDefinition } from '../config/schema';
import type { ChannelAssignment, ChannelState, RetentionRun } from '../activities/channels';
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
  out.push(...retentionDetails(state));
  out.push(
    '',
    `Roll back: \`bootc-release channel rollback ${state.channel} --definition ${state.definition} --by NAME --key KEY\`; ` +
      `history: \`bootc-release channel show ${state.channel} --definition ${state.definition}\`.`,
  );
  return out.join('\n');
}

/** "retention after #4: 3 of 5 done, 1 kept, 1 failed (running)": one line about a run. */
export function describeRetentionRun(r: RetentionRun): string {
  const what = r.kind === 'restore' ? `restore before rollback #${r.seq}` : `retention after #${r.seq}`;
  if (r.error) return `${what}: ${r.error}`;
  const counts = r.kind === 'restore' ? `${r.done} image(s) re-enabled` : `${r.done} of ${r.planned} done`;
  const extra = [
    r.kept ? `${r.kept} kept` : '',
    r.failed ? `${r.failed} failed` : '',
    r.deferred ? `${r.deferred} left for the run after the next assignment` : '',
    r.unlisted?.length ? `not listed: ${r.unlisted.map((u) => `${u.target} (${u.error})`).join(', ')}` : '',
  ].filter(Boolean);
  return `${what}: ${[counts, ...extra].join(', ')}${r.finishedAt ? '' : ' (running)'}`;
}

/** The last run, the records that failed in it, and the last ten records. */
function retentionDetails(state: ChannelState, last = 10): string[] {
  const records = state.retention ?? [];
  if (!state.retentionRun && !records.length) return [];
  const out = ['', '**Retention**', ''];
  if (state.retentionRun) out.push(`${cell(describeRetentionRun(state.retentionRun))}.`, '');
  const failed = records.filter((r) => r.outcome === 'failed' && r.seq === state.retentionRun?.seq);
  for (const f of failed) out.push(`- **failed**: ${f.action} of \`${f.imageId}\` (${f.target}, release \`${f.releaseId}\`): ${cell(f.detail)}`);
  if (failed.length) out.push('', 'A failed image is planned again by the next run; the target says why it refused.', '');
  if (records.length) {
    out.push(`Last records (${Math.min(last, records.length)} of ${records.length}):`, '');
    out.push('| # | at | action | release | target | region | image | outcome | detail |', '|---|---|---|---|---|---|---|---|---|');
    for (const r of records.slice(-last).reverse())
      out.push(`| ${r.seq ?? ''} | ${r.at} | ${r.action} | \`${r.releaseId}\` | ${cell(r.target)} | ${cell(r.region)} | \`${r.imageId}\` | ${r.outcome} | ${cell(r.detail)} |`);
  }
  return out;
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
    ...(state.retentionRun ? { retention: retentionMemo(state.retentionRun) } : {}),
  };
}

const retentionMemo = (r: RetentionRun) => ({
  kind: r.kind,
  seq: r.seq,
  running: !r.finishedAt,
  planned: r.planned,
  done: r.done,
  kept: r.kept,
  failed: r.failed,
  ...(r.deferred ? { deferred: r.deferred } : {}),
  ...(r.error ? { error: r.error } : {}),
  summary: describeRetentionRun(r),
});
