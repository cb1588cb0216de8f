// moto, the AWS emulator (EC2, EBS direct, S3, SSM, STS), on a free loopback port.
import path from 'node:path';
import { startLogged, stopProcess, type Service } from './process';
import { freePort, tool, waitForPort } from './tools';

/** `env` adds moto settings, e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 for a moto that checks credentials. */
export async function startMoto(logDir: string, env: NodeJS.ProcessEnv = {}, logName = 'moto.log'): Promise<Service> {
  const port = await freePort();
  const child = startLogged(tool('moto_server'), ['-H', '127.0.0.1', '-p', String(port)], path.join(logDir, logName), {
    ...process.env,
    MOTO_EC2_LOAD_DEFAULT_AMIS: 'false',
    ...env,
  });
  await waitForPort('127.0.0.1', port, 30_000, 'moto_server');
  return { address: `http://127.0.0.1:${port}`, stop: () => stopProcess(child) };
}
