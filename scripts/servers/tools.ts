// Where scripts/install-tools.sh put the tools the servers run, and free ports for them. A missing tool is an error
// (a test fails, the demo stops), never a skipped test.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

export const toolCache =
  process.env.BOOTC_RELEASE_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'bootc-release');

export function tool(name: string): string {
  const candidates = [path.join(toolCache, 'bin', name), path.join(toolCache, 'venv', 'bin', name), `/usr/sbin/${name}`, `/usr/bin/${name}`];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`${name} is not installed (looked in ${candidates.join(', ')}); run scripts/install-tools.sh`);
  return found;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(host: string, port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
