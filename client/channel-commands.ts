// The CLI's `channel …` commands: where approved images go, and moving them between channels (client/channel-client.ts).
import type { Command, Option } from 'commander';
import type { ChannelAssignment, ChannelState, RetentionRecord } from '../activities/channels';
import { temporalSettings } from '../config/temporal';
import { describeRetentionRun } from '../workflows/channel-details';
import { ChannelClient, type ChannelSummary } from './channel-client';
import { paint, printer, renderTable, type OutputStyle } from './output';
import { connectClient, InputError } from './release-client';

async function channels(): Promise<ChannelClient> {
  const s = temporalSettings();
  return new ChannelClient(await connectClient(s), s.taskQueue);
}

const how = (a: Pick<ChannelAssignment, 'kind' | 'from' | 'by' | 'restores'>) =>
  `${a.kind === 'promote' ? `promoted from ${a.from}` : a.kind === 'rollback' ? `rolled back${a.restores ? ` to #${a.restores}` : ''}` : 'approved'} by ${a.by}`;
const changed = (a: ChannelAssignment) => String((a.activation?.replaced ?? []).reduce((n, r) => n + r.entries.length, 0));

export function channelListText(rows: ChannelSummary[], style: OutputStyle): string {
  if (!rows.length) return 'no channels yet (a release gets one when it is approved)';
  return renderTable(
    style,
    ['definition', 'channel', 'release', 'how', 'at', 'tested', 'assignments'],
    rows.map((r) => [
      r.definition,
      r.channel,
      r.current?.releaseId ?? '',
      r.current ? how(r.current) : r.activating ? paint(style, 'yellow', `activating ${r.activating}`) : '',
      r.current?.at ?? '',
      r.current?.tested ? paint(style, 'green', 'tested') : '',
      String(r.assignments),
    ]),
  );
}

const outcome = (style: OutputStyle, r: RetentionRecord) =>
  paint(style, r.outcome === 'failed' ? 'red' : r.outcome === 'kept' ? 'yellow' : undefined, r.outcome);

/** The last run in a line, then the last `last` records (newest first): what retention did for this channel. */
export function retentionText(s: Pick<ChannelState, 'retention' | 'retentionRun'>, style: OutputStyle, last = 20): string[] {
  const records = s.retention ?? [];
  const lines: string[] = [];
  if (s.retentionRun) {
    const run = s.retentionRun;
    lines.push(paint(style, run.error || run.failed ? 'red' : undefined, `Retention: ${describeRetentionRun(run)}`));
  }
  if (!records.length) return lines;
  const shown = records.slice(-last).reverse();
  lines.push(`Retention records (${shown.length} of ${records.length}):`);
  lines.push(
    renderTable(
      style,
      ['#', 'at', 'action', 'release', 'target', 'arch', 'region', 'image id', 'outcome', 'detail'],
      shown.map((r) => [r.seq === undefined ? '' : String(r.seq), r.at, r.action, r.releaseId, r.target, r.arch, r.region ?? '', r.imageId, outcome(style, r), r.detail ?? '']),
    ),
  );
  return lines;
}

export function channelText(s: ChannelState, style: OutputStyle, last = 10, records = 20): string {
  const title = `channel ${paint(style, 'bold', s.channel)} of ${s.definition}`;
  const c = s.current;
  const lines = [
    c
      ? `${title}: release ${paint(style, 'bold', c.releaseId)} (#${c.seq}, ${how(c)} at ${c.at}${c.tested ? `; ${paint(style, 'green', `tested by ${c.testedBy}`)}` : ''})`
      : `${title}: no images yet`,
  ];
  if (c)
    lines.push(
      renderTable(
        style,
        ['target', 'arch', 'region', 'type', 'image id'],
        c.images.map((i) => [i.target, i.arch, i.region ?? '', i.type, i.imageId]),
      ),
    );
  if (s.activating) lines.push(paint(style, 'yellow', `activating now: #${s.activating.seq} release ${s.activating.releaseId}, ${how(s.activating)}`));
  if (s.lastFailure) lines.push(paint(style, 'red', `last failed: #${s.lastFailure.seq} ${s.lastFailure.kind} of ${s.lastFailure.releaseId} by ${s.lastFailure.by}: ${s.lastFailure.error}`));
  if (s.history.length) {
    const shown = s.history.slice(-last).reverse();
    lines.push(`Last assignments (${shown.length} of ${s.history.length}):`);
    lines.push(
      renderTable(
        style,
        ['#', 'how', 'release', 'at', 'changed', 'reason'],
        shown.map((a) => [String(a.seq), how(a), a.releaseId, a.at, changed(a), a.reason ?? '']),
      ),
    );
  }
  lines.push(...retentionText(s, style, records));
  return lines.join('\n');
}

function count(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InputError(`${flag}: "${value}" is not a positive whole number`);
  return n;
}

export function addChannelCommands(program: Command, json: () => Option, keyOption: () => Option): void {
  const channel = program.command('channel').description('where approved images go: list, show, promote, roll back, mark tested');
  const definitionHelp = 'the definition (default: the only one that has channels)';

  channel
    .command('list')
    .description('the channels and the release each has now')
    .option('--definition <name>', 'only the channels of this definition')
    .addOption(json())
    .action(async (o: { definition?: string; json?: boolean }) => {
      const rows = await (await channels()).list(o.definition);
      printer(!!o.json).result(rows, (style) => channelListText(rows, style));
    });

  channel
    .command('show')
    .description("a channel's images per target, arch and region, its last assignments and what retention did")
    .argument('<name>')
    .option('--definition <name>', definitionHelp)
    .option('--last <n>', 'how many assignments to show', '10')
    .option('--records <n>', 'how many retention records to show (the channel keeps the last 200)', '20')
    .addOption(json())
    .action(async (name: string, o: { definition?: string; last: string; records: string; json?: boolean }) => {
      const last = count('--last', o.last);
      const records = count('--records', o.records);
      const c = await channels();
      const state = await c.show(await c.definition(o.definition), name);
      const shown = { ...state, history: state.history.slice(-last), retention: (state.retention ?? []).slice(-records) };
      printer(!!o.json).result(shown, (style) => channelText(state, style, last, records));
    });

  const actor = (cmd: Command) =>
    cmd
      .requiredOption('--by <name>', 'who asks (an approver of the channel)')
      .option('--reason <text>', 'why (kept in the channel history)')
      .option('--definition <name>', definitionHelp)
      .addOption(keyOption())
      .addOption(json());
  type ActorFlags = { by: string; reason?: string; key?: string; definition?: string; json?: boolean };
  const print = (o: ActorFlags, a: ChannelAssignment, channelName: string) =>
    printer(!!o.json).result(a, (style) => `${channelName}: release ${paint(style, 'bold', a.releaseId)} is active (#${a.seq}, ${how(a)})`);

  actor(channel.command('promote').description("assign FROM's current images to TO, if TO's requires holds").argument('<from>').argument('<to>')).action(
    async (from: string, to: string, o: ActorFlags) => {
      const c = await channels();
      print(o, await c.promote(await c.definition(o.definition), from, to, o), to);
    },
  );

  actor(channel.command('rollback').description('assign the previous release again (or the one named with --to)').argument('<name>'))
    .option('--to <releaseId>', 'the release to go back to')
    .action(async (name: string, o: ActorFlags & { to?: string }) => {
      const c = await channels();
      print(o, await c.rollback(await c.definition(o.definition), name, o), name);
    });

  actor(channel.command('mark-tested').description("mark the channel's current images tested").argument('<name>')).action(
    async (name: string, o: ActorFlags) => {
      const c = await channels();
      const a = await c.markTested(await c.definition(o.definition), name, o);
      printer(!!o.json).result(a, () => `${name}: release ${a.releaseId} (#${a.seq}) marked tested by ${a.testedBy}`);
    },
  );
}
