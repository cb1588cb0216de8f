// The worker's own known_hosts file (under BOOTC_RELEASE_STATE) for hosts that live longer than a release:
// hypervisors. The first key a hypervisor presents is recorded and every later connection, by any release, must
// present the same one. OpenSSH's format, so a person can read it and, after a legitimate reinstall, drop the old
// entry with `ssh-keygen -R '[host]:port' -f FILE`.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { hostKeyMismatch, type SshEndpoint } from './connection';

const pattern = (host: string, port: number) => (port === 22 ? host : `[${host}]:${port}`);
const blob = (key: string) => key.trim().split(/\s+/).slice(0, 2).join(' ');

export class KnownHosts {
  /** Appends within this process are serialised; across processes each line is one O_APPEND write. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  /** The first key recorded for host:port, if any (a later line cannot replace it). */
  async lookup(host: string, port: number): Promise<string | undefined> {
    const text = await readFile(this.file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    const want = pattern(host, port);
    for (const line of text.split('\n')) {
      const [hosts, type, key] = line.trim().split(/\s+/);
      if (!hosts || hosts.startsWith('#') || !type || !key) continue;
      if (hosts.split(',').includes(want)) return `${type} ${key}`;
    }
    return undefined;
  }

  /** How to fix a legitimately changed key, for the error that refuses it. */
  hint(host: string, port: number): string {
    return `The key was pinned in ${this.file}; if the host was legitimately reinstalled, remove it with ssh-keygen -R '${pattern(host, port)}' -f ${this.file}.`;
  }

  /** The endpoint with the recorded key pinned (a key set in the config wins). */
  async pin(endpoint: SshEndpoint): Promise<SshEndpoint> {
    if (endpoint.hostKey) return endpoint;
    const hostKey = await this.lookup(endpoint.address, endpoint.port);
    return { ...endpoint, hostKey, hostKeyHint: this.hint(endpoint.address, endpoint.port) };
  }

  /** Records the key a host presented unless one is recorded already; refuses one that differs from the first. */
  async record(endpoint: SshEndpoint, presented: string): Promise<void> {
    const run = this.queue.then(async () => {
      let first = await this.lookup(endpoint.address, endpoint.port);
      if (first === undefined) {
        await mkdir(path.dirname(this.file), { recursive: true });
        await appendFile(this.file, `${pattern(endpoint.address, endpoint.port)} ${blob(presented)}\n`, { mode: 0o600 });
        // Another worker process sharing the file may have recorded a key a moment earlier: the first line wins.
        first = await this.lookup(endpoint.address, endpoint.port);
      }
      if (first !== blob(presented))
        throw hostKeyMismatch({ ...endpoint, hostKey: first, hostKeyHint: this.hint(endpoint.address, endpoint.port) }, presented);
    });
    this.queue = run.catch(() => undefined);
    await run;
  }
}
