// `npm run demo`: a Temporal dev server with its Web UI, the local rig (two SSH "builder VMs", a hypervisor, a
// registry, the bootc-image-builder stand-in, moto, libvirtd, glance-api), a worker, and a 2-architecture release of
// examples/demo.yaml left awaiting approval. Ctrl-C stops everything it started within a few seconds. Safe to run
// again: it clears what an earlier run left and starts from a clean .demo/.
// Knobs (environment): BOOTC_RELEASE_DEMO_{TEMPORAL,UI,SSH,REGISTRY}_PORT move the fixed ports (see demo-ports.ts);
// BOOTC_RELEASE_DEMO_BUILD_SECONDS, _DISK_SIZE and _DATA_MIB shape the stand-in build (defaults 6, 2G, 32).
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DefaultLogger, makeTelemetryFilterString, Runtime } from '@temporalio/worker';
import { createActivities } from '../activities';
import { ReleaseClient } from '../client/release-client';
import { connectWorker, createWorkers, type WorkerConnections } from '../worker/run';
import { workerSettings } from '../worker/settings';
import { createActivityDeps } from '../worker/wiring';
import { FINAL_STAGES, type ReleaseStatus } from '../workflows/messages';
import { LIBVIRT_URI } from './servers/libvirtd';
import { checkPortsFree, demoPorts } from './demo-ports';
import { BUILDERS_DIR, GLANCE_PROJECT, startDemoStack, type DemoStack } from './demo-stack';
import { Stopper } from './demo-stop';
import { awaitingApprovalText, promotionText } from './demo-text';

const repo = path.resolve(__dirname, '..');
const demoDir = path.join(repo, '.demo');
const say = (line: string) => console.log(`[demo] ${line}`);
/** Every stop gets this long; then whatever is left is SIGKILLed (the whole stop stays well under 10 s). */
const GRACE_MS = 5_000;

const stopper = new Stopper(path.join(demoDir, 'reaper.json'));
let stopping: Promise<never> | undefined;

function stopAndExit(code: number): Promise<never> {
  stopping ??= (async () => {
    say('stopping everything the demo started…');
    // The last resort, should a stop wedge the event loop itself.
    setTimeout(() => process.exit(code), GRACE_MS + 3_000).unref();
    const late = await stopper.stopAll(GRACE_MS);
    say(late.length ? `stopped (killed what did not stop in time: ${late.join(', ')})` : 'stopped');
    process.exit(code);
  })();
  return stopping;
}

async function main() {
  installHandlers();
  process.chdir(repo);
  const ports = await freshDemoDir();
  const stack = await startDemoStack({ demoDir, examplesFile: path.join(repo, 'examples/demo.yaml'), ports, build: buildShape(), stopper, say });
  const { client, settings } = await startWorker(workerEnv(stack));

  const releases = new ReleaseClient(client, settings.taskQueue);
  const definition = parseYaml(readFileSync(stack.definitionFile, 'utf8'));
  const id = await releases.startFromDefinition(definition, { reason: 'npm run demo', requestedBy: 'demo' });
  say(`release ${id} started; follow it in the Web UI: ${stack.temporal.uiAddress}/namespaces/default/workflows/${id}`);

  const status = await awaitApproval(releases, id);
  if (!status) return;
  if (status.stage !== 'awaiting-approval') throw new Error(`release ${id} ended ${status.stage}: ${status.error ?? ''}`);
  console.log(
    awaitingApprovalText(id, status, {
      temporalAddress: stack.temporal.address,
      uiAddress: stack.temporal.uiAddress!,
      motoEndpoint: stack.motoEndpoint,
      glanceAddress: stack.glance.address,
      glanceProject: GLANCE_PROJECT,
      libvirtUri: LIBVIRT_URI,
      pool: stack.pool.name,
      region: definition.targets['aws-local'].region,
    }),
  );
  await awaitOutcome(client, id, stack.temporal.address);
}

/** Ctrl-C and friends stop everything; the SDK's runtime leaves the signals to the demo and its logs to WARN. */
function installHandlers(): void {
  // A second Ctrl-C (or tsx relaying the first) must not kill the demo mid-stop: the handlers stay installed.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stopAndExit(0));
  // Clients torn down while stopping may still throw from their timers: the demo is exiting, that is no news.
  process.on('uncaughtException', (err) => {
    if (stopping) return;
    console.error(`[demo] ${err.stack ?? err.message}`);
    void stopAndExit(1);
  });
  // The demo stops its worker itself, in its own order: the SDK must not react to the signals on its own. Its INFO
  // logs would bury the demo's lines (`npm run -s cli -- dev` shows them).
  // Once stopping, the worker's complaints about its servers going away are noise: they are dropped.
  Runtime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      // The staging queue's worker runs activities only, by design: its "no workflows registered" is no news.
      if (stopping || entry.message.startsWith('No workflows registered')) return;
      console.error(`${entry.level} ${entry.message}`, entry.meta?.error ?? '');
    }),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
    shutdownSignals: [],
  });
}

/** Stops what an earlier run left, checks the ports, and starts from an empty .demo/ with a reaper watching. */
async function freshDemoDir(): Promise<ReturnType<typeof demoPorts>> {
  stopper.clearLeftovers();
  const ports = demoPorts();
  await checkPortsFree(ports);
  rmSync(demoDir, { recursive: true, force: true });
  rmSync(BUILDERS_DIR, { recursive: true, force: true });
  mkdirSync(demoDir, { recursive: true });
  stopper.startReaper();
  return ports;
}

/** The stand-in build's length and disk, from the environment. */
const buildShape = () => ({
  seconds: Number(process.env.BOOTC_RELEASE_DEMO_BUILD_SECONDS ?? 6),
  // bib's disks are 10 GiB; 2 GiB keeps the demo's copies and checksums of the holes short.
  diskSize: process.env.BOOTC_RELEASE_DEMO_DISK_SIZE ?? '2G',
  dataMiB: Number(process.env.BOOTC_RELEASE_DEMO_DATA_MIB ?? 32),
});

/** The worker's environment (also made this process's): the stack's addresses, .demo/ paths, moto's keys. */
function workerEnv(stack: DemoStack): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporal.address,
    BOOTC_RELEASE_DEFINITIONS: path.dirname(stack.definitionFile),
    BOOTC_RELEASE_STAGING: path.join(demoDir, 'staging'),
    BOOTC_RELEASE_STATE: path.join(demoDir, 'state'),
    BOOTC_RELEASE_SSH_KEY: stack.keys.privateKeyPath,
    BOOTC_RELEASE_WORKER_ID: 'demo-worker',
    // moto's keys, for the aws target's default credential chain: the worker's environment, never the definition.
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
  };
  delete env.AWS_PROFILE;
  delete env.AWS_SESSION_TOKEN;
  Object.assign(process.env, env);
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
  return env;
}

/** Runs the worker in this process; the stopper shuts it down first. */
async function startWorker(env: NodeJS.ProcessEnv) {
  const settings = workerSettings(env);
  const { connection, client } = await connectWorker(settings, env);
  const workers = await createWorkers(connection, settings, createActivities(createActivityDeps(settings, client)), {
    // Running activities get a second to notice the cancellation, then the worker lets go of them.
    extra: { shutdownGraceTime: '1s', shutdownForceTime: '3s' },
  });
  const running = workers.run();
  stopper.add('worker', async () => {
    workers.shutdown();
    await running.catch(() => undefined);
    // The client's connection stays open: a status query may be retrying on it, and closing it under the query
    // throws from a timer. process.exit ends it.
    await connection.close();
  }, { first: true });
  say(`worker demo-worker on task queue ${settings.taskQueue}`);
  return { client, settings };
}

/** Prints each change of stage until the release awaits approval or ends; undefined once the demo is stopping. */
async function awaitApproval(releases: ReleaseClient, id: string): Promise<ReleaseStatus | undefined> {
  let status: ReleaseStatus | undefined;
  let lastLine = '';
  while (!stopping) {
    status = await releases.status(id).catch(() => status);
    const arches = Object.entries(status?.arches ?? {}).map(([a, s]) => `${a} ${s!.stage}`);
    const line = status ? [status.stage, ...(arches.length ? [arches.join(', ')] : [])].join(': ') : 'starting';
    if (line !== lastLine) say(line);
    lastLine = line;
    if (status && (status.stage === 'awaiting-approval' || FINAL_STAGES.includes(status.stage))) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return stopping ? undefined : status;
}

/** Waits for the release to end (after someone approves or rejects it) and says how; the stack keeps running. */
async function awaitOutcome(client: WorkerConnections['client'], id: string, temporalAddress: string): Promise<void> {
  const result = await client.workflow
    .getHandle(id)
    .result()
    .catch((err: Error) => ({ stage: `failed: ${err.message}` }));
  const stage = (result as { stage: string }).stage;
  if (stopping) return;
  say(`release ${id} ended: ${stage}`);
  if (stage === 'activated') {
    say(`image map:\n${readFileSync(path.join(demoDir, 'image-map.yaml'), 'utf8')}`);
    say(promotionText(temporalAddress));
  }
  say('the stack keeps running for the Web UI; Ctrl-C to stop');
}

main().catch(async (err: Error) => {
  if (stopping) return;
  console.error(err.message.split("\n").map((l) => `[demo] ${l}`).join("\n"));
  await stopAndExit(1);
});
