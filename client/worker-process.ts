// `bootc-release worker` (and `dev`) run the worker program, worker/main.ts, as a process of its own: the CLI loads
// no worker code (client/ and worker/ never import each other) and the worker keeps its own signal handling.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const WORKER_PROGRAM = path.join(__dirname, '../worker/main.ts');

/**
 * Runs the worker with this terminal and `env`, until it exits; returns its exit code.
 * A terminal's Ctrl-C reaches both processes (one process group), so SIGINT is not passed on. A SIGTERM sent to this
 * process alone (docker stop) is passed on as SIGINT, which the worker also stops on: when the SIGTERM reached the
 * worker as well (systemd signals the whole group), it then gets each signal once and still stops gracefully.
 */
export async function runWorkerProgram(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const worker = spawn(process.execPath, ['--import', tsx, WORKER_PROGRAM], { env, stdio: 'inherit' });
  const passOn = () => worker.kill('SIGINT');
  const ignore = () => undefined;
  process.on('SIGTERM', passOn);
  process.on('SIGINT', ignore);
  try {
    const [code, signal] = (await once(worker, 'exit')) as [number | null, NodeJS.Signals | null];
    return code ?? 128 + (signal ? os.constants.signals[signal] : 0);
  } finally {
    process.off('SIGTERM', passOn);
    process.off('SIGINT', ignore);
  }
}
