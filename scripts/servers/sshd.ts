// Real OpenSSH servers on distinct loopback addresses: each one is a "builder VM" or a "hypervisor" to the code.
// Sessions get a HOME of their own inside the rig (sshd's SetEnv), so bash never sources the machine's own
// ~/.bashrc (root's runs `pyenv init` on some machines: 0.25 s per exec) and the rig behaves the same everywhere.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { freePort, tool, waitForPort } from './tools';

export interface SshHost {
  address: string;
  port: number;
  user: string;
  /** "ssh-ed25519 AAAA..." as the server presents it. */
  hostKey: string;
  /** A directory on "the host" that a test may use as its disk. */
  root: string;
  logFile: string;
}

export interface RigKeys {
  privateKeyPath: string;
  publicKey: string;
}

export function generateKey(file: string, comment: string): string {
  if (!existsSync(file)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8').trim();
}

export function clientKeys(dir: string): RigKeys {
  mkdirSync(dir, { recursive: true });
  const privateKeyPath = path.join(dir, 'client_ed25519');
  return { privateKeyPath, publicKey: generateKey(privateKeyPath, 'bootc-release-rig') };
}

export class SshServer {
  private proc?: ChildProcess;
  constructor(
    readonly host: SshHost,
    private readonly configFile: string,
    private readonly swapsFile?: string,
  ) {}

  /**
   * `swaps`: the builder's own view of /proc/swaps (its header and lines). The host then runs in a mount namespace
   * of its own with that file over /proc/swaps, as a VM whose only swap is a test's loop device, so a test of the
   * swap data volume never sees (or formats) the machine's own swap. Mounts made in its sessions stay in that
   * namespace: look at them with `inNamespace`.
   * `env`: more variables for its sessions (SetEnv, after sshd's defaults: a PATH here replaces sshd's), e.g. a PATH
   * that starts with gated commands (test/rig/command-gates.ts).
   */
  static async start(
    dir: string,
    address: string,
    keys: RigKeys,
    opts: { port?: number; hostKeyName?: string; swaps?: string; env?: Record<string, string> } = {},
  ): Promise<SshServer> {
    mkdirSync('/run/sshd', { recursive: true });
    const root = path.join(dir, address);
    const home = path.join(root, 'home');
    mkdirSync(home, { recursive: true });
    const hostKeyFile = path.join(root, opts.hostKeyName ?? 'ssh_host_ed25519_key');
    const hostKey = generateKey(hostKeyFile, address).split(' ').slice(0, 2).join(' ');
    const authorized = path.join(root, 'authorized_keys');
    writeFileSync(authorized, `${keys.publicKey}\n`);
    const port = opts.port ?? (await freePort(address));
    const configFile = path.join(root, 'sshd_config');
    writeFileSync(
      configFile,
      [
        `ListenAddress ${address}`,
        `Port ${port}`,
        `HostKey ${hostKeyFile}`,
        `PidFile ${path.join(root, 'sshd.pid')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        `AuthorizedKeysFile ${authorized}`,
        'StrictModes no',
        'UsePAM no',
        'MaxSessions 100',
        'MaxStartups 100:30:200',
        'Subsystem sftp internal-sftp',
        'LogLevel ERROR',
        `SetEnv ${Object.entries({ HOME: home, ...opts.env })
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
      ].join('\n') + '\n',
    );
    const logFile = path.join(root, 'sshd.log');
    let swapsFile: string | undefined;
    if (opts.swaps !== undefined) {
      swapsFile = path.join(root, 'proc-swaps');
      writeFileSync(swapsFile, opts.swaps);
    }
    const server = new SshServer({ address, port, user: 'root', hostKey, root, logFile }, configFile, swapsFile);
    await server.startProcess();
    return server;
  }

  async startProcess(): Promise<void> {
    const sshd = [tool('sshd'), '-D', '-f', this.configFile, '-E', this.host.logFile];
    this.proc = this.swapsFile
      ? spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /proc/swaps && exec "$@"', this.swapsFile, ...sshd], {
          stdio: 'ignore',
        })
      : spawn(sshd[0]!, sshd.slice(1), { stdio: 'ignore' });
    this.proc.unref();
    await waitForPort(this.host.address, this.host.port, 10_000, `sshd ${this.host.address}`);
  }

  /** Runs a command in the host's mount namespace (see `swaps`), e.g. findmnt on what its sessions mounted. */
  inNamespace(args: string[]): string {
    const cmd = this.swapsFile ? ['nsenter', '-t', String(this.proc!.pid), '-m', ...args] : args;
    return execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' }).trim();
  }

  /** Kill the listener and every session it forked (a dropped connection, as a network fault would). */
  async stop(): Promise<void> {
    // Gone already: exited, or killed by a signal (a terminal's Ctrl-C reaches the whole process group).
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc!.once('exit', r));
    this.proc.kill('SIGTERM');
    await exited;
  }
}
