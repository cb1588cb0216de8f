// Starts delay-relay.ts in its own process (its copying must not share the event loop of the client it measures) and
// returns where it listens. For the fetch bench and the tests that need a long link.
import { spawn } from 'node:child_process';
import path from 'node:path';

export async function startDelayRelay(
  target: { address: string; port: number },
  oneWayMs: number,
): Promise<{ address: string; port: number; stop(): void }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(__dirname, 'delay-relay.ts'),
      target.address,
      String(target.port),
      String(oneWayMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`delay relay exited ${code}`)));
  });
  return { address: '127.0.0.1', port, stop: () => child.kill('SIGKILL') };
}
