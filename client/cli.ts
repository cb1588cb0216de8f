// `bootc-release`: validate definitions, start and steer releases, run the worker or a local dev stack.
// Exit codes: 0 ok, 2 bad input (invalid definition, refused approval...), 1 anything else.
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadDefinitionFile } from '../config/load';
import { ARCHES, type Arch } from '../config/schema';
import { temporalSettings } from '../worker/settings';
import { FINAL_STAGES } from '../workflows/messages';
import { listTable, statusText } from './format';
import { connectClient, InputError, ReleaseClient } from './release-client';

const program = new Command('bootc-release')
  .description('Build bootc images on every architecture, publish them to every cloud, approve and activate them.')
  .showHelpAfterError();

const json = () => new Option('--json', 'print JSON');
const keyOption = () =>
  new Option('--key <file>', 'sign with this SSH key (private key, or public key held by ssh-agent); listed in approval.keys').env(
    'BOOTC_RELEASE_APPROVAL_KEY',
  );
const out = (value: unknown, asJson: boolean, text: () => string) =>
  process.stdout.write(`${asJson ? JSON.stringify(value, null, 2) : text()}\n`);

async function releases(): Promise<ReleaseClient> {
  const s = temporalSettings();
  return new ReleaseClient(await connectClient(s), s.taskQueue);
}

function parseArches(value: string | undefined): Arch[] | undefined {
  if (!value) return undefined;
  const arches = value.split(',').map((a) => a.trim());
  const bad = arches.filter((a) => !(ARCHES as readonly string[]).includes(a));
  if (bad.length) throw new InputError(`--arch: unknown architecture ${bad.join(', ')} (known: ${ARCHES.join(', ')})`);
  return arches as Arch[];
}

program
  .command('validate')
  .description('validate a release definition; prints one line per problem with its path')
  .argument('<file>')
  .addOption(json())
  .action(async (file: string, o: { json?: boolean }) => {
    const def = await loadDefinitionFile(file);
    out({ valid: true, name: def.name, architectures: Object.keys(def.architectures) }, !!o.json, () =>
      `${file}: valid (${def.name}: ${Object.keys(def.architectures).join(', ')})`,
    );
  });

const release = program.command('release').description('start and steer releases');

release
  .command('start')
  .description('start a release of a definition file (or, with --name, of a definition the worker knows)')
  .argument('[file]')
  .option('--name <definition>', 'start a definition the worker knows by name, as the Temporal UI does')
  .option('--arch <list>', 'comma-separated architectures (default: all in the definition)')
  .option('--reason <text>', 'why this release (shown in status and the UI memo)')
  .option('--id <releaseId>', 'release id (default: <name>-<UTC time>)')
  .addOption(json())
  .action(async (file: string | undefined, o: { name?: string; arch?: string; reason?: string; id?: string; json?: boolean }) => {
    if (!file && !o.name) throw new InputError('give a definition FILE or --name DEFINITION');
    const arches = parseArches(o.arch);
    const r = await releases();
    const releaseId = file
      ? await r.startFromDefinition(parseYaml(await readFile(file, 'utf8')), {
          arches,
          reason: o.reason,
          releaseId: o.id,
          requestedBy: process.env.USER,
        })
      : await r.startByName(o.name!, { arches, reason: o.reason, releaseId: o.id });
    out({ releaseId }, !!o.json, () => releaseId);
  });

release
  .command('status')
  .description('stage per architecture, and the candidate images')
  .argument('<releaseId>')
  .option('--watch', 'refresh until the release awaits approval or ends')
  .addOption(json())
  .action(async (id: string, o: { watch?: boolean; json?: boolean }) => {
    const r = await releases();
    for (;;) {
      const s = await r.status(id);
      if (!o.watch || o.json) {
        out(s, !!o.json, () => statusText(s));
        return;
      }
      process.stdout.write(`\x1b[2J\x1b[H${statusText(s)}\n`);
      if (s.stage === 'awaiting-approval' || FINAL_STAGES.includes(s.stage)) return;
      await new Promise((res) => setTimeout(res, 2000));
    }
  });

release
  .command('list')
  .description('recent releases')
  .addOption(json())
  .action(async (o: { json?: boolean }) => {
    const rows = await (await releases()).list();
    out(rows, !!o.json, () => listTable(rows));
  });

release
  .command('approve')
  .description('approve the candidates (all, or those named with --image) and activate them')
  .argument('<releaseId>')
  .requiredOption('--by <name>', 'who approves (must be in approval.approvers)')
  .option('--image <id...>', 'image ids to use; the others are ignored')
  .option('--comment <text>')
  .addOption(keyOption())
  .addOption(json())
  .action(async (id: string, o: { by: string; image?: string[]; comment?: string; key?: string; json?: boolean }) => {
    const s = await (await releases()).approve(id, { by: o.by, images: o.image, comment: o.comment }, { key: o.key });
    out(s, !!o.json, () => statusText(s));
    if (s.stage !== 'activated') process.exitCode = 1;
  });

release
  .command('reject')
  .description('reject the candidates')
  .argument('<releaseId>')
  .requiredOption('--by <name>')
  .option('--reason <text>')
  .addOption(keyOption())
  .addOption(json())
  .action(async (id: string, o: { by: string; reason?: string; key?: string; json?: boolean }) => {
    const s = await (await releases()).reject(id, { by: o.by, reason: o.reason }, { key: o.key });
    out(s, !!o.json, () => statusText(s));
  });

release
  .command('retry')
  .description('publish again to a target that failed (optionally one architecture)')
  .argument('<releaseId>')
  .requiredOption('--target <name>')
  .option('--arch <arch>')
  .addOption(json())
  .action(async (id: string, o: { target: string; arch?: string; json?: boolean }) => {
    const s = await (await releases()).retry(id, { target: o.target, arch: parseArches(o.arch)?.[0] });
    out(s, !!o.json, () => statusText(s));
  });

release
  .command('cancel')
  .description('cancel a release; its builders are torn down')
  .argument('<releaseId>')
  .action(async (id: string) => {
    await (await releases()).cancel(id);
    process.stdout.write(`cancellation requested for ${id}; builders are being torn down\n`);
  });

const janitor = program.command('janitor').description('delete builder VMs and volumes that releases left behind');

janitor
  .command('run')
  .description('run the janitor once and print what it deleted')
  .option('--ttl <duration>', 'delete builders of still-open releases only past this age', '24h')
  .option('--dry-run', 'report, delete nothing')
  .addOption(json())
  .action(async (o: { ttl: string; dryRun?: boolean; json?: boolean }) => {
    const report = await (await releases()).runJanitor({ ttl: o.ttl, dryRun: !!o.dryRun });
    out(report, !!o.json, () =>
      [
        `${report.dryRun ? 'would delete' : 'deleted'} ${report.deleted.length}, failed ${report.failed.length}`,
        ...report.deleted.map((d) => `  ${d.kind} ${d.id} (release ${d.releaseId}): ${d.reason}`),
        ...report.failed.map((f) => `  FAILED ${f.kind} ${f.id}: ${f.error}`),
      ].join('\n'),
    );
  });

janitor
  .command('schedule')
  .description('run the janitor on a Temporal Schedule (created or updated; shown in the Web UI under Schedules)')
  .option('--every <duration>', 'interval', '1h')
  .option('--ttl <duration>', 'as for run', '24h')
  .action(async (o: { every: string; ttl: string }) => {
    const id = await (await releases()).scheduleJanitor({ every: o.every, ttl: o.ttl });
    process.stdout.write(`schedule ${id}: janitor every ${o.every}\n`);
  });

program
  .command('worker')
  .description('run a worker (settings from TEMPORAL_* and BOOTC_RELEASE_* environment variables)')
  .action(async () => {
    const { runWorkerFromEnv } = await import('../worker/main');
    await runWorkerFromEnv();
  });

program
  .command('dev')
  .description('a local Temporal dev server with its UI on :8233 plus a worker, for trying things out')
  .option('--definitions <dir>', 'definitions the worker knows', 'examples')
  .action(async (o: { definitions: string }) => {
    const { runDev } = await import('../scripts/dev-stack');
    await runDev({ definitionsDir: o.definitions });
  });

async function main() {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.problems.map((p) => `${err.source}: ${p}`).join('\n')}\n`);
      process.exit(2);
    }
    if (err instanceof InputError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`bootc-release: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

void main();
