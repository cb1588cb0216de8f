// One rig for the whole test run: a real Temporal dev server with its Web UI, a moto server and four SSH hosts on 127.0.0.11-14.
// Each run gets its own directory (.rig/runs/<time>-<pid>, so two runs never clash); .rig/last points at the newest,
// and its logs stay after the run so a failure can be read afterwards. Older runs are pruned.
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type {} from 'vitest';
import { bundleWorkflows } from '../../worker/run';
import { startMoto } from '../../scripts/servers/moto';
import type { Service } from '../../scripts/servers/process';
import { pushSourceImage, startRegistry } from '../../scripts/servers/registry';
import { startTemporal } from '../../scripts/servers/temporal';
import { freePort } from '../../scripts/servers/tools';
import type { RigInfo } from './release-harness';
import { clientKeys, SshServer } from '../../scripts/servers/sshd';

const RIGS = path.resolve(__dirname, '../../.rig');
const RIG_DIR = path.join(RIGS, 'runs', `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);

/** A run directory ends in the pid of its vitest process; a live one belongs to a run in progress. */
function stillRunning(run: string): boolean {
  const pid = Number(/-(\d+)$/.exec(run)?.[1]);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    rig: RigInfo;
  }
}

export default async function setup(project: TestProject) {
  mkdirSync(RIG_DIR, { recursive: true });
  const runs = readdirSync(path.join(RIGS, 'runs')).sort();
  for (const old of runs.slice(0, -3)) if (!stillRunning(old)) rmSync(path.join(RIGS, 'runs', old), { recursive: true, force: true });
  rmSync(path.join(RIGS, 'last'), { recursive: true, force: true });
  symlinkSync(RIG_DIR, path.join(RIGS, 'last'));
  const services: Service[] = [];
  const ssh: SshServer[] = [];
  try {
    const [temporal, moto, registry, bundle] = await Promise.all([
      // With its Web UI, which the browser test drives as an operator would.
      freePort().then((uiPort) => startTemporal(RIG_DIR, { headless: false, uiPort })),
      startMoto(RIG_DIR),
      startRegistry(path.join(RIG_DIR, 'registry')),
      bundleWorkflows(),
    ]);
    services.push(temporal, moto, registry);
    const workflowBundlePath = path.join(RIG_DIR, 'workflow-bundle.js');
    writeFileSync(workflowBundlePath, bundle.code);
    const sourceImage = pushSourceImage(registry.address, 'bootc-release-rig/builder:latest', `rig-${Date.now()}`);
    const keys = clientKeys(path.join(RIG_DIR, 'keys'));
    for (const n of [11, 12, 13, 14]) ssh.push(await SshServer.start(path.join(RIG_DIR, 'hosts'), `127.0.0.${n}`, keys));
    project.provide('rig', {
      temporalAddress: temporal.address,
      temporalUi: temporal.uiAddress!,
      motoEndpoint: moto.address,
      sshHosts: ssh.map((s) => s.host),
      privateKeyPath: keys.privateKeyPath,
      dir: RIG_DIR,
      registry: registry.address,
      sourceImage,
      workflowBundlePath,
    });
  } catch (err) {
    await Promise.all([...services.map((s) => s.stop()), ...ssh.map((s) => s.stop())]);
    throw err;
  }
  return async () => {
    await Promise.all([...services.map((s) => s.stop()), ...ssh.map((s) => s.stop())]);
  };
}
