// Runs `tsx scripts/demo.ts` as a user would, from the repository root, in a process group of its own (so SIGINT
// reaches the group as a terminal's Ctrl-C does), on free ports instead of the demo's fixed ones. What the demo's
// Temporal holds and what it prints are scanned for its secrets when the test file ends (../rig/secret-scan.ts); the
// server is gone by then, so each waitFor that succeeds reads it first.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { descendants } from '../../scripts/demo-stop';
import { fileScan, scanSecretsWhenTheFileEnds } from '../rig/secret-scan';
import { freePort } from '../../scripts/servers/tools';

scanSecretsWhenTheFileEnds();

export const repo = path.resolve(__dirname, '../..');

export const canListen = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });

/** A port free on every one of the hosts. */
export async function freeOnAll(hosts: string[]): Promise<number> {
  for (;;) {
    const port = await freePort(hosts[0]);
    if ((await Promise.all(hosts.map((h) => canListen(h, port)))).every(Boolean)) return port;
  }
}

export interface DemoPortsEnv {
  temporal: number;
  ui: number;
  ssh: number;
  registry: number;
}

export async function pickPorts(): Promise<DemoPortsEnv> {
  return {
    temporal: await freePort(),
    ui: await freePort(),
    ssh: await freeOnAll(['127.0.0.30', '127.0.0.31', '127.0.0.32']),
    registry: await freePort('127.0.0.30'),
  };
}

export const portEnv = (p: DemoPortsEnv) => ({
  BOOTC_RELEASE_DEMO_TEMPORAL_PORT: String(p.temporal),
  BOOTC_RELEASE_DEMO_UI_PORT: String(p.ui),
  BOOTC_RELEASE_DEMO_SSH_PORT: String(p.ssh),
  BOOTC_RELEASE_DEMO_REGISTRY_PORT: String(p.registry),
  // A short, small stand-in build: the demo's shape, not its wall time.
  BOOTC_RELEASE_DEMO_BUILD_SECONDS: '1',
  BOOTC_RELEASE_DEMO_DISK_SIZE: '256M',
  BOOTC_RELEASE_DEMO_DATA_MIB: '8',
});

const ANSI = /\x1b\[[0-9;]*m/g;
let runs = 0;

export class DemoRun {
  readonly child: ChildProcess;
  private text = '';
  readonly exited: Promise<number | null>;

  constructor(env: Record<string, string>) {
    this.child = spawn(path.join(repo, 'node_modules/.bin/tsx'), ['scripts/demo.ts'], {
      cwd: repo,
      env: { ...process.env, ...env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) stream.on('data', (d: Buffer) => (this.text += d.toString().replace(ANSI, '')));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    if (env.BOOTC_RELEASE_DEMO_TEMPORAL_PORT) fileScan.watchServer(`127.0.0.1:${env.BOOTC_RELEASE_DEMO_TEMPORAL_PORT}`);
    fileScan.watchKeyFiles(path.join(repo, '.demo'));
    const label = `output of demo run ${++runs}`;
    fileScan.watchLog(() => this.text.split('\n').map((text, i) => ({ place: `${label} line ${i + 1}`, text })));
  }

  get output(): string {
    return this.text;
  }

  /** Resolves with the first match of `re` in the output; rejects if the demo exits first or time runs out. */
  async waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const m = re.exec(this.text);
      if (m) {
        await fileScan.snapshot().catch(() => undefined);
        return m;
      }
      if (exited) throw new Error(`the demo exited (${this.child.exitCode}) before printing ${re}:\n${this.text}`);
      if (Date.now() > deadline) throw new Error(`the demo did not print ${re} within ${timeoutMs} ms:\n${this.text}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The demo's process tree now (tsx, node, and everything they started). */
  tree(): { pid: number; comm: string }[] {
    return [{ pid: this.child.pid!, comm: 'tsx' }, ...descendants(this.child.pid!)];
  }

  /** Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group. */
  interrupt(): void {
    process.kill(-this.child.pid!, 'SIGINT');
  }

  kill(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Rows of the candidate table as the demo prints it into a pipe (plain columns, `-` for empty): arch, target, region/host, image id, name, type, size, sha256. */
export function candidateRows(output: string): string[][] {
  const table = output.slice(output.indexOf('Candidate images (use or ignore):'), output.indexOf('Look at them'));
  return table
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() && !/^arch\s/.test(l))
    .map((l) => l.trim().split(/\s{2,}/).map((c) => (c === '-' ? '' : c)));
}
