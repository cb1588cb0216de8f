// One rig for the whole test run: a real Temporal dev server, a moto server and four SSH hosts on 127.0.0.11-14.
// Logs stay in .rig/last/ after the run, so a failure can be read afterwards.
import { rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type {} from 'vitest';
import { startMoto, startTemporal, type Service } from './services';
import { clientKeys, SshServer, type SshHost } from './sshd';

export const RIG_DIR = path.resolve(__dirname, '../../.rig/last');

declare module 'vitest' {
  export interface ProvidedContext {
    rig: { temporalAddress: string; motoEndpoint: string; sshHosts: SshHost[]; privateKeyPath: string; dir: string };
  }
}

export default async function setup(project: TestProject) {
  rmSync(RIG_DIR, { recursive: true, force: true });
  mkdirSync(RIG_DIR, { recursive: true });
  const services: Service[] = [];
  const ssh: SshServer[] = [];
  try {
    const [temporal, moto] = await Promise.all([startTemporal(RIG_DIR), startMoto(RIG_DIR)]);
    services.push(temporal, moto);
    const keys = clientKeys(path.join(RIG_DIR, 'keys'));
    for (const n of [11, 12, 13, 14]) ssh.push(await SshServer.start(path.join(RIG_DIR, 'hosts'), `127.0.0.${n}`, keys));
    project.provide('rig', {
      temporalAddress: temporal.address,
      motoEndpoint: moto.address,
      sshHosts: ssh.map((s) => s.host),
      privateKeyPath: keys.privateKeyPath,
      dir: RIG_DIR,
    });
  } catch (err) {
    await Promise.all([...services.map((s) => s.stop()), ...ssh.map((s) => s.stop())]);
    throw err;
  }
  return async () => {
    await Promise.all([...services.map((s) => s.stop()), ...ssh.map((s) => s.stop())]);
  };
}
