// `bootc-release`: validate definitions, start and steer releases, run the worker (worker/main.ts, in a process of
// its own: client/worker-process.ts) or a local dev stack.
// Exit codes: 0 ok, 2 bad input (invalid definition, refused approval, unknown option...), 1 anything else.
// Every command prints through client/output.ts: --json, a table for a terminal, plain text for a pipe.
import { WorkflowNotFoundError } from '@temporalio/client';
import { Command, CommanderError, Option } from 'commander';
import { CODEC_KEY_FILE_ENV, payloadCodec } from '../config/codec';
import { ConfigError, loadDefinitionFile, readDefinitionData } from '../config/load';
import { ARCHES, type Arch } from '../config/schema';
import { temporalSettings } from '../config/temporal';
import { FINAL_STAGES } from '../workflows/messages';
import { listenCodecServer, serverAddress } from './codec-server';
import { janitorText, listTable, statusText, validText } from './format';
import { printer } from './output';
import { archProgress, progressLines } from './progress';
import { connectClient, InputError, ReleaseClient, releasePlanOf, releaseQuery } from './release-client';
import { addScheduleCommands } from './schedule-commands';
import { runWorkerProgram } from './worker-process';
// Imported up front, not with import(): the installed command (bin.cjs) registers tsx for require only, so a dynamic
// import of a .ts file fails there; dev-stack loads no worker code (the worker runs in a process of its own).
import { runDev } from '../scripts/dev-stack';
import { addChannelCommands } from './channel-commands';
import { addRetentionCommands } from './retention-commands';

// Decided before parsing, so that a usage error is reported in JSON too when the caller asked for JSON.
const jsonRequested = process.argv.includes('--json');

// Set before the subcommands are added: commander copies these settings into each of them.
const program = new Command('bootc-release')
  .description('Build bootc images on every architecture, publish them to every cloud, approve and activate them.')
  .exitOverride()
  .configureOutput({ outputError: (text, write) => (jsonRequested ? undefined : write(text)) })
  .showHelpAfterError(!jsonRequested);

const json = () => new Option('--json', 'print JSON (errors too, on stderr)');
const keyOption = () =>
  new Option('--key <file>', 'sign with this SSH key (private key, or public key held by ssh-agent); listed in approval.keys').env(
    'BOOTC_RELEASE_APPROVAL_KEY',
  );

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
    const architectures = Object.keys(def.architectures);
    printer(!!o.json).result({ valid: true, name: def.name, architectures }, (style) =>
      validText(file, def.name, architectures, style),
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
    // A file is read and validated before connecting: its mistakes are exit 2 wherever Temporal is.
    const plan = file
      ? releasePlanOf(await readDefinitionData(file), {
          arches,
          reason: o.reason,
          releaseId: o.id,
          requestedBy: process.env.USER,
          source: file,
        })
      : undefined;
    const r = await releases();
    const releaseId = plan
      ? await r.startPlan(plan)
      : await r.startByName(o.name!, { arches, reason: o.reason, releaseId: o.id, requestedBy: process.env.USER });
    printer(!!o.json).result({ releaseId }, () => releaseId);
  });

release
  .command('status')
  .description('stage per architecture, and the candidate images')
  .argument('<releaseId>')
  .option('--watch', 'refresh until the release awaits approval or ends (piped: print each change)')
  .addOption(json())
  .action(async (id: string, o: { watch?: boolean; json?: boolean }) => {
    const r = await releases();
    const p = printer(!!o.json);
    let shown = '';
    for (;;) {
      const s = await r.status(id);
      if (!o.watch || p.out.mode === 'json') {
        p.result(s, (style) => statusText(s, style));
        return;
      }
      // Per-architecture progress (stage, percent, bytes, elapsed) from the running steps' heartbeats.
      const progress = s.stage === 'building' ? progressLines(await archProgress(r.client, s), p.out) : '';
      const text = progress ? `${statusText(s, p.out)}\nProgress:\n${progress}` : statusText(s, p.out);
      // A terminal is redrawn in place; a pipe gets each new state once, with no cursor codes in it.
      if (p.out.mode === 'table') process.stdout.write(`\x1b[2J\x1b[H${text}\n`);
      else if (text !== shown) process.stdout.write(`${shown ? '\n' : ''}${text}\n`);
      shown = text;
      if (s.stage === 'awaiting-approval' || FINAL_STAGES.includes(s.stage)) return;
      await new Promise((res) => setTimeout(res, 2000));
    }
  });

release
  .command('list')
  .description('recent releases, newest first; the same query filters the Web UI (shown with --query)')
  .option('--stage <stage>', 'only releases in this stage, e.g. awaiting-approval')
  .option('--name <definition>', 'only releases of this definition')
  .option('--limit <n>', 'at most this many', '50')
  .option('--query', 'print the visibility query instead, to paste into the Web UI')
  .addOption(json())
  .action(async (o: { stage?: string; name?: string; limit: string; query?: boolean; json?: boolean }) => {
    const filter = { stage: o.stage, name: o.name };
    if (o.query) return printer(!!o.json).result({ query: releaseQuery(filter) }, () => releaseQuery(filter));
    const limit = Number(o.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new InputError(`--limit: "${o.limit}" is not a positive whole number`);
    const rows = await (await releases()).list(limit, filter);
    printer(!!o.json).result(rows, (style) => listTable(rows, style));
  });

release
  .command('approve')
  .description('approve the candidates (all, or those named with --image) and activate them')
  .argument('<releaseId>')
  .requiredOption('--by <name>', 'who approves (must be in approval.approvers)')
  .option('--image <id...>', 'image ids to use; the others are ignored')
  .option('--comment <text>')
  .option('--channel <name>', "assign to this channel instead of the definition's default (one without requires)")
  .addOption(keyOption())
  .addOption(json())
  .action(async (id: string, o: { by: string; image?: string[]; comment?: string; channel?: string; key?: string; json?: boolean }) => {
    const s = await (await releases()).approve(id, { by: o.by, images: o.image, comment: o.comment, channel: o.channel }, { key: o.key });
    printer(!!o.json).result(s, (style) => statusText(s, style));
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
    printer(!!o.json).result(s, (style) => statusText(s, style));
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
    printer(!!o.json).result(s, (style) => statusText(s, style));
  });

release
  .command('cancel')
  .description('cancel a release; its builders are torn down')
  .argument('<releaseId>')
  .addOption(json())
  .action(async (id: string, o: { json?: boolean }) => {
    await (await releases()).cancel(id);
    printer(!!o.json).result({ releaseId: id, cancelRequested: true }, () =>
      `cancellation requested for ${id}; builders are being torn down`,
    );
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
    printer(!!o.json).result(report, (style) => janitorText(report, style));
  });

janitor
  .command('schedule')
  .description('run the janitor on a Temporal Schedule (created or updated; shown in the Web UI under Schedules)')
  .option('--every <duration>', 'interval', '1h')
  .option('--ttl <duration>', 'as for run', '24h')
  .addOption(json())
  .action(async (o: { every: string; ttl: string; json?: boolean }) => {
    const scheduleId = await (await releases()).scheduleJanitor({ every: o.every, ttl: o.ttl });
    printer(!!o.json).result({ scheduleId, every: o.every, ttl: o.ttl }, () =>
      `schedule ${scheduleId}: janitor every ${o.every}, ttl ${o.ttl}`,
    );
  });

addScheduleCommands(program, json);
addChannelCommands(program, json, keyOption);
addRetentionCommands(program, json);

program
  .command('codec-server')
  .description(`decode (and encode) encrypted payloads for the Temporal Web UI and CLI, with the key file in ${CODEC_KEY_FILE_ENV}`)
  .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8089')
  .option('--ui-origin <url...>', 'origins of Web UIs allowed to call it from the browser', ['http://localhost:8233', 'http://127.0.0.1:8233'])
  .option('--token-env <name>', 'require `Authorization: Bearer <the value of this variable>` on every request')
  .action(async (o: { listen: string; uiOrigin: string[]; tokenEnv?: string }) => {
    const keyFile = temporalSettings().codecKeyFile;
    if (!keyFile) throw new InputError(`codec-server: set ${CODEC_KEY_FILE_ENV} to the key file the worker uses`);
    const token = o.tokenEnv ? process.env[o.tokenEnv] : undefined;
    if (o.tokenEnv && !token) throw new InputError(`--token-env: ${o.tokenEnv} is not set`);
    const server = await listenCodecServer(o.listen, { codec: payloadCodec(keyFile), origins: o.uiOrigin, token, log: (l) => console.log(l) });
    console.log(`bootc-release codec-server on http://${serverAddress(server)} (POST /decode, /encode), for ${o.uiOrigin.join(', ')}`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    server.close();
  });

program
  .command('worker')
  .description('run a worker (settings from TEMPORAL_* and BOOTC_RELEASE_* environment variables)')
  .action(async () => {
    process.exitCode = await runWorkerProgram();
  });

program
  .command('dev')
  .description('a local Temporal dev server with its UI on :8233 plus a worker, for trying things out')
  .option('--definitions <dir>', 'definitions the worker knows', 'examples')
  .action(async (o: { definitions: string }) => {
    await runDev({ definitionsDir: o.definitions });
  });

async function main() {
  const p = printer(jsonRequested);
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0; commander has printed the rest already.
      if (err.exitCode === 0) process.exit(0);
      if (jsonRequested) p.error(err.message.replace(/^error: /, ''));
      process.exit(2);
    }
    if (err instanceof ConfigError) {
      p.error(`${err.source}: invalid release definition`, err.problems.map((problem) => `${err.source}: ${problem}`));
      process.exit(2);
    }
    if (err instanceof InputError) {
      p.error(err.message);
      process.exit(2);
    }
    if (err instanceof WorkflowNotFoundError) {
      // A wrong or finished release id is the caller's to fix; the server's text names neither it nor a next step.
      const id = err.workflowId;
      p.error(
        /completed/.test(err.message)
          ? `release ${id} has ended, so it cannot take this; \`bootc-release release status ${id}\` shows how it ended`
          : `release ${id} is not known in namespace ${temporalSettings().namespace}; \`bootc-release release list\` shows recent releases`,
      );
      process.exit(2);
    }
    p.error(`bootc-release: ${(err as Error).message}`);
    process.exit(1);
  }
}

void main();
