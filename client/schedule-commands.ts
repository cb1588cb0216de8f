// The CLI's `schedule …`, `trigger` and `webhook` commands: releases that start themselves (client/schedules.ts).
import type { Command, Option } from 'commander';
import { temporalSettings } from '../config/temporal';
import { renderTable, paint, type OutputStyle } from './output';
import { printer } from './output';
import { connectClient, InputError } from './release-client';
import { ScheduleClient, triggerOf, type ScheduleSummary } from './schedules';
import { startTriggerWebhook } from './webhook';

async function schedules(): Promise<ScheduleClient> {
  const s = temporalSettings();
  return new ScheduleClient(await connectClient(s), s.taskQueue);
}

function scheduleText(list: ScheduleSummary[], style: OutputStyle): string {
  if (!list.length) return 'no schedules (bootc-release schedule create NAME --definition DEF --every 1d)';
  return renderTable(
    style,
    ['schedule', 'definition', 'when', 'starts a release', 'state', 'next run'],
    list.map((s) => [
      s.name,
      s.definition,
      s.spec,
      s.mode === 'source-change' ? 'if the source changed' : s.mode === 'inactivity' ? `if older than ${s.rebuildAfter}` : 'always',
      s.paused ? paint(style, 'yellow', `paused${s.note ? `: ${s.note}` : ''}`) : 'active',
      s.nextRuns[0] ?? '-',
    ]),
  );
}

export function addScheduleCommands(program: Command, json: () => Option): void {
  const schedule = program.command('schedule').description('start releases on a timetable (Temporal Schedules, shown in the Web UI)');
  schedule
    .command('create')
    .description('create a schedule that runs a trigger check of DEFINITION')
    .argument('<name>')
    .requiredOption('--definition <name>', 'the definition to release (the worker must know it)')
    .option('--cron <expr>', 'when, as a cron expression (UTC), e.g. "0 3 * * *"')
    .option('--every <duration>', 'when, as an interval, e.g. 12h')
    .option('--only-if-changed', 'start a release only when the Containerfile, its context or a FROM image changed')
    .option('--rebuild-after <duration>', 'start a release only when the last activated one is older than this, e.g. 14d')
    .option('--note <text>', 'a note shown with the schedule')
    .addOption(json())
    .action(async (name: string, o: { definition: string; cron?: string; every?: string; onlyIfChanged?: boolean; rebuildAfter?: string; note?: string; json?: boolean }) => {
      const s = await schedules();
      await s.create({ name, ...o });
      const d = await s.describe(name);
      printer(!!o.json).result(d, (style) => scheduleText([d], style));
    });
  schedule
    .command('list')
    .description('the release schedules')
    .addOption(json())
    .action(async (o: { json?: boolean }) => {
      const list = await (await schedules()).list();
      printer(!!o.json).result(list, (style) => scheduleText(list, style));
    });
  schedule
    .command('describe')
    .description('one schedule: when, what, its next and recent runs')
    .argument('<name>')
    .addOption(json())
    .action(async (name: string, o: { json?: boolean }) => {
      const d = await (await schedules()).describe(name);
      printer(!!o.json).result(d, (style) =>
        [scheduleText([d], style), `next runs: ${d.nextRuns.join(', ') || '-'}`, `recent runs: ${d.recentRuns.map((r) => `${r.at} ${r.workflowId}`).join(', ') || '-'}`].join('\n'),
      );
    });
  for (const [verb, what] of [
    ['pause', 'pause a schedule (with a note saying why)'],
    ['unpause', 'resume a paused schedule'],
    ['trigger', 'run a schedule now (skipped if a run is in progress)'],
    ['delete', 'delete a schedule (releases it started are not touched)'],
  ] as const) {
    const c = schedule.command(verb).description(what).argument('<name>');
    if (verb === 'pause' || verb === 'unpause') c.option('--note <text>', 'why');
    c.addOption(json()).action(async (name: string, o: { note?: string; json?: boolean }) => {
      const s = await schedules();
      if (verb === 'pause' || verb === 'unpause') await s[verb](name, o.note);
      else await s[verb](name);
      printer(!!o.json).result({ schedule: name, done: verb }, () => `schedule ${name}: ${verb} done`);
    });
  }

  program
    .command('trigger')
    .description('check DEFINITION now and start a release if one is due (at most one per source change)')
    .argument('<definition>')
    .option('--only-if-changed', 'start only when the source changed since the last activated release')
    .option('--rebuild-after <duration>', 'start only when the last activated release is older than this')
    .addOption(json())
    .action(async (definition: string, o: { onlyIfChanged?: boolean; rebuildAfter?: string; json?: boolean }) => {
      const input = triggerOf({ definition, ...o }, process.env.USER ?? 'cli');
      const result = await (await schedules()).check(input);
      printer(!!o.json).result(result, () => (result.started ? `started ${result.started}: ${result.reason}` : `no release started: ${result.reason}`));
    });

  program
    .command('webhook')
    .description('serve POST /trigger/<definition> for a forge push webhook (signed with a shared secret)')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8090')
    .requiredOption('--secret-env <name>', 'environment variable holding the shared secret')
    .action(async (o: { listen: string; secretEnv: string }) => {
      const secret = process.env[o.secretEnv];
      if (!secret) throw new InputError(`--secret-env: ${o.secretEnv} is not set`);
      const m = /^(.+):(\d+)$/.exec(o.listen);
      if (!m) throw new InputError(`--listen: "${o.listen}" is not host:port`);
      const s = await schedules();
      const hook = await startTriggerWebhook({ host: m[1]!, port: Number(m[2]), secret, check: (input) => s.check(input) });
      console.log(`bootc-release webhook on ${hook.address}/trigger/<definition>`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await hook.close();
      await s.client.connection.close();
    });
}
