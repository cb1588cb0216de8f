// `npm run demo`: a Temporal dev server with its Web UI, the local rig (two SSH "builder VMs", a registry, the
// bootc-image-builder stand-in), a worker, and a 2-architecture release of examples/demo.yaml left awaiting approval.
// Ctrl-C stops everything it started. Safe to run again: it starts from a clean .demo/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { readFileSync } from 'node:fs';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { createActivities } from '../activities';
import { ReleaseClient, connectClient } from '../client/release-client';
import { candidatesTable } from '../client/format';
import { connectWorker, createWorkers } from '../worker/run';
import { workerSettings } from '../worker/settings';
import { createActivityDeps } from '../worker/wiring';
import { FINAL_STAGES, type ReleaseStatus } from '../workflows/messages';
import { clientKeys, SshServer } from '../test/rig/sshd';
import { pushSourceImage, startRegistry, startTemporal, type Service } from '../test/rig/services';
import { ensureBibStandinImage, standinEngine } from '../test/standins/bootc-image-builder/image';
import { portOr } from './dev-stack';

const repo = path.resolve(__dirname, '..');
const demoDir = path.join(repo, '.demo');
const builders = '/var/tmp/bootc-release-demo';
const say = (line: string) => console.log(`[demo] ${line}`);

async function main() {
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(signal, () => {
      say('stopping everything the demo started…');
      void stopAll().then(() => process.exit(0));
    });
  // The demo's own lines tell the story; the worker's INFO logs would bury them (`npm run dev` shows them).
  Runtime.install({ logger: new DefaultLogger('WARN') });
  try {
    rmSync(demoDir, { recursive: true, force: true });
    rmSync(builders, { recursive: true, force: true });
    mkdirSync(demoDir, { recursive: true });

    const port = await portOr(7233);
    const temporal = await startTemporal(demoDir, { port, uiPort: port + 1000, headless: false });
    stops.push(temporal.stop);
    say(`Temporal dev server ${temporal.address}, Web UI ${temporal.uiAddress}`);

    const keys = clientKeys(path.join(demoDir, 'keys'));
    for (const address of ['127.0.0.31', '127.0.0.32']) {
      const host = await SshServer.start(path.join(demoDir, 'hosts'), address, keys, { port: 2222 });
      stops.push(() => host.stop());
      say(`builder VM ${address}:2222 (OpenSSH)`);
    }
    const registry: Service = await startRegistry(path.join(demoDir, 'registry'), { address: '127.0.0.30', port: 5000 });
    stops.push(registry.stop);
    const source = pushSourceImage(registry.address, 'bootc-release-demo/builder:latest', `demo-${Date.now()}`);
    say(`source image ${source} pushed to the registry`);
    standinEngine(path.join(builders, 'engine'), { seconds: 6, diskSize: '10G', dataMiB: 64 }, [registry.address]);
    execFileSync('podman', ['tag', ensureBibStandinImage(), 'localhost/bootc-release/bib-standin:demo']);
    say('bootc-image-builder stand-in image ready');

    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      BOOTC_RELEASE_DEFINITIONS: path.join(repo, 'examples'),
      BOOTC_RELEASE_STAGING: path.join(demoDir, 'staging'),
      BOOTC_RELEASE_STATE: path.join(demoDir, 'state'),
      BOOTC_RELEASE_SSH_KEY: keys.privateKeyPath,
      BOOTC_RELEASE_WORKER_ID: 'demo-worker',
    };
    Object.assign(process.env, env);
    const settings = workerSettings(env);
    const connection = await connectWorker(settings);
    const client = await connectClient(settings);
    const workers = await createWorkers(connection, settings, createActivities(createActivityDeps(settings, client)));
    const running = workers.run();
    stops.push(async () => {
      workers.shutdown();
      await running;
      await connection.close();
    });
    say(`worker demo-worker on task queue ${settings.taskQueue}`);

    const releases = new ReleaseClient(client, settings.taskQueue);
    const definition = parseYaml(readFileSync(path.join(repo, 'examples/demo.yaml'), 'utf8'));
    const id = await releases.startFromDefinition(definition, { reason: 'npm run demo', requestedBy: 'demo' });
    say(`release ${id} started; follow it in the Web UI: ${temporal.uiAddress}/namespaces/default/workflows/${id}`);

    let status: ReleaseStatus | undefined;
    let lastLine = '';
    for (;;) {
      status = await releases.status(id).catch(() => status);
      const line = status ? `${status.stage}: ${Object.entries(status.arches).map(([a, s]) => `${a} ${s!.stage}`).join(', ')}` : 'starting';
      if (line !== lastLine) say(line);
      lastLine = line;
      if (status && (status.stage === 'awaiting-approval' || FINAL_STAGES.includes(status.stage))) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (status!.stage !== 'awaiting-approval') throw new Error(`release ${id} ended ${status!.stage}: ${status!.error ?? ''}`);
    const envPrefix = temporal.address === '127.0.0.1:7233' ? '' : `TEMPORAL_ADDRESS=${temporal.address} `;
    console.log(`
Release ${id} is awaiting approval.
Temporal Web UI: ${temporal.uiAddress}/namespaces/default/workflows/${id}

Candidate images (use or ignore):
${candidatesTable(status!.candidates)}

Approve (in another terminal):
  ${envPrefix}npm run -s cli -- release approve ${id} --by demo-admin
or reject:
  ${envPrefix}npm run -s cli -- release reject ${id} --by demo-admin --reason "not today"
or, in the Web UI, send the signal "approve" with {"by": "demo-admin"}.
The image map is written to .demo/image-map.yaml on approval. Ctrl-C stops everything.
`);
    const result = await client.workflow.getHandle(id).result().catch((err: Error) => ({ stage: `failed: ${err.message}` }));
    say(`release ${id} ended: ${(result as { stage: string }).stage}`);
    if ((result as { stage: string }).stage === 'activated') say(`image map:\n${readFileSync(path.join(demoDir, 'image-map.yaml'), 'utf8')}`);
    say('the stack keeps running for the Web UI; Ctrl-C to stop');
    await new Promise(() => undefined);
  } catch (err) {
    console.error(`[demo] ${(err as Error).message}`);
    await stopAll();
    process.exit(1);
  }
}

void main();
