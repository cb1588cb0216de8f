// The demo's fixed addresses and ports, each overridable through the environment (tests use free ports; users keep
// the defaults the README shows). Every one is checked before anything starts, so a port someone else holds is
// a clear message naming it, not a half-started stack.
import { execFileSync } from 'node:child_process';
import net from 'node:net';

export interface DemoPorts {
  temporal: number;
  ui: number;
  ssh: number;
  registry: number;
}

export const PORT_ENV: Record<keyof DemoPorts, { env: string; default: number }> = {
  temporal: { env: 'BOOTC_RELEASE_DEMO_TEMPORAL_PORT', default: 7233 },
  ui: { env: 'BOOTC_RELEASE_DEMO_UI_PORT', default: 8233 },
  ssh: { env: 'BOOTC_RELEASE_DEMO_SSH_PORT', default: 2222 },
  registry: { env: 'BOOTC_RELEASE_DEMO_REGISTRY_PORT', default: 5000 },
};

/** The registry and the hypervisor on .30, the two builder VMs on .31 and .32. */
export const ADDRESSES = { services: '127.0.0.30', x86_64: '127.0.0.31', aarch64: '127.0.0.32' } as const;

export function demoPorts(env: NodeJS.ProcessEnv = process.env): DemoPorts {
  const ports = {} as DemoPorts;
  for (const [key, { env: name, default: fallback }] of Object.entries(PORT_ENV)) {
    const raw = env[name];
    const port = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw} is not a port number (1-65535)`);
    ports[key as keyof DemoPorts] = port;
  }
  return ports;
}

/** Every (address, port) the demo listens on, with the variable that moves it. */
export function listeners(ports: DemoPorts): { host: string; port: number; what: string; env: string }[] {
  return [
    { host: '127.0.0.1', port: ports.temporal, what: 'the Temporal dev server', env: PORT_ENV.temporal.env },
    { host: '127.0.0.1', port: ports.ui, what: 'the Temporal Web UI', env: PORT_ENV.ui.env },
    { host: ADDRESSES.services, port: ports.registry, what: 'the container registry', env: PORT_ENV.registry.env },
    ...Object.values(ADDRESSES).map((host) => ({ host, port: ports.ssh, what: `the SSH host ${host}`, env: PORT_ENV.ssh.env })),
  ];
}

const canListen = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });

/** Who listens on the port, as `ss` tells it ("temporal, pid 1234"), when it can. */
function holder(port: number): string | undefined {
  try {
    const out = execFileSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /users:\(\("([^"]+)",pid=(\d+)/.exec(out);
    return m ? `${m[1]}, pid ${m[2]}` : undefined;
  } catch {
    return undefined;
  }
}

/** Throws one message naming every taken port, what the demo wanted it for, and how to move it. */
export async function checkPortsFree(ports: DemoPorts): Promise<void> {
  const taken: string[] = [];
  for (const l of listeners(ports)) {
    if (await canListen(l.host, l.port)) continue;
    const who = holder(l.port);
    taken.push(
      `port ${l.port} on ${l.host} (for ${l.what}) is already in use${who ? ` by ${who}` : ''}: stop that process, or set ${l.env} to another port`,
    );
  }
  if (taken.length) throw new Error(taken.join('\n'));
}
