// `bootc-release dev`: a local Temporal dev server with its Web UI (:8233) and a worker, for trying definitions by
// hand. State is kept in .dev/ so releases survive a restart of the stack. The worker is the production program
// (worker/main.ts) in a process of its own; Ctrl-C stops it, then the dev server.
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startTemporal } from './servers/temporal';
import { freePort } from './servers/tools';
import { runWorkerProgram } from '../client/worker-process';

/** The conventional port when it is free (7233, UI on 8233), else any free one. */
export async function portOr(preferred: number): Promise<number> {
  const busy = await new Promise<boolean>((resolve) => {
    const s = net.createServer().once('error', () => resolve(true));
    s.listen(preferred, '127.0.0.1', () => s.close(() => resolve(false)));
  });
  return busy ? await freePort() : preferred;
}

export async function runDev(opts: { definitionsDir: string }): Promise<void> {
  const dir = path.resolve('.dev');
  mkdirSync(dir, { recursive: true });
  const port = await portOr(7233);
  const temporal = await startTemporal(dir, { port, uiPort: port + 1000, headless: false, dbFile: path.join(dir, 'temporal.db') });
  console.log(`Temporal ${temporal.address}, Web UI ${temporal.uiAddress}`);
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: temporal.address,
    BOOTC_RELEASE_DEFINITIONS: path.resolve(opts.definitionsDir),
    BOOTC_RELEASE_STAGING: path.join(dir, 'staging'),
    BOOTC_RELEASE_STATE: path.join(dir, 'state'),
  };
  try {
    process.exitCode = await runWorkerProgram(env);
  } finally {
    await temporal.stop();
  }
}
