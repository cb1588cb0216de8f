// SSH to builders and hypervisors: host keys pinned (or trusted on first use and then pinned by the workflow),
// commands built from argument arrays, and an AbortSignal that closes the channel and the connection.
import { readFileSync } from 'node:fs';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { ApplicationFailure } from '@temporalio/common';

export interface SshEndpoint {
  address: string;
  port: number;
  user: string;
  /** "ssh-ed25519 AAAA..." — when set, any other key is refused. */
  hostKey?: string;
  /** Where the pinned key came from and what to do if the change is legitimate, for the error a changed key raises. */
  hostKeyHint?: string;
}

export interface SshCredentials {
  /** Path of a private key on the worker. */
  privateKeyPath?: string;
  /** Env var that holds a private key (PEM/OpenSSH) or a path to one. */
  privateKeyEnv?: string;
}

/** Default key for workers configured by environment: BOOTC_RELEASE_SSH_KEY (a path). */
export function resolvePrivateKey(creds: SshCredentials = {}): Buffer {
  const fromEnv = (name: string): Buffer | undefined => {
    const value = process.env[name];
    if (!value) return undefined;
    return value.includes('PRIVATE KEY') ? Buffer.from(value) : readFileSync(value);
  };
  if (creds.privateKeyPath) return readFileSync(creds.privateKeyPath);
  if (creds.privateKeyEnv) {
    const key = fromEnv(creds.privateKeyEnv);
    if (!key)
      throw ApplicationFailure.nonRetryable(
        `ssh: environment variable ${creds.privateKeyEnv} is not set on the worker`,
        'ConfigError',
      );
    return key;
  }
  const key = fromEnv('BOOTC_RELEASE_SSH_KEY');
  if (key) return key;
  throw ApplicationFailure.nonRetryable(
    'ssh: no private key configured: set builder.ssh.privateKeyPath or BOOTC_RELEASE_SSH_KEY on the worker',
    'ConfigError',
  );
}

/** POSIX shell quoting of one argument. */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export const shellCommand = (argv: string[]): string => argv.map(shellQuote).join(' ');

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  signal?: AbortSignal;
  stdin?: Buffer | string;
  /** Return non-zero exits instead of throwing. */
  allowFailure?: boolean;
}

export class SshCommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: ExecResult,
    readonly host: string,
  ) {
    super(
      `${host}: \`${command.slice(0, 200)}\` exited ${result.code}: ${lastLines(result.stderr || result.stdout, 5)}`,
    );
    this.name = 'SshCommandError';
  }
}

const lastLines = (text: string, n: number) => text.trim().split('\n').slice(-n).join(' | ');

export function formatHostKey(key: Buffer): string {
  // The raw key blob starts with its type as an SSH string.
  const typeLen = key.readUInt32BE(0);
  const type = key.subarray(4, 4 + typeLen).toString();
  return `${type} ${key.toString('base64')}`;
}

export class SshSession {
  /** The error that broke this connection after it was established, if any. */
  lastError?: Error;

  private constructor(
    readonly endpoint: SshEndpoint,
    private readonly client: Client,
    /** The key the host presented, "type base64". */
    readonly hostKey: string,
  ) {}

  get label(): string {
    return `${this.endpoint.user}@${this.endpoint.address}:${this.endpoint.port}`;
  }

  static async connect(
    endpoint: SshEndpoint,
    creds: SshCredentials | Buffer,
    opts: {
      signal?: AbortSignal;
      readyTimeoutMs?: number;
      keepaliveIntervalMs?: number;
      algorithms?: ConnectConfig['algorithms'];
    } = {},
  ): Promise<SshSession> {
    const privateKey = Buffer.isBuffer(creds) ? creds : resolvePrivateKey(creds);
    const client = new Client();
    let presented: string | undefined;
    return await new Promise<SshSession>((resolve, reject) => {
      const onAbort = () => {
        client.end();
        reject(opts.signal?.reason ?? new Error('aborted'));
      };
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      client.once('ready', () => {
        opts.signal?.removeEventListener('abort', onAbort);
        // A connection that breaks later (reset, keepalive timeout) emits 'error' again: without a listener that
        // would crash the worker process. Channels in flight see the close and their operations reject.
        client.on('error', (err) => {
          session.lastError = err;
        });
        const session = new SshSession(endpoint, client, presented!);
        resolve(session);
      });
      client.once('error', (err: Error & { level?: string }) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (presented && endpoint.hostKey && !sameKey(presented, endpoint.hostKey)) {
          reject(hostKeyMismatch(endpoint, presented));
        } else if (endpoint.hostKey && /no matching host key format/.test(err.message)) {
          reject(hostKeyMismatch(endpoint, 'a key of another type'));
        } else reject(err);
      });
      client.connect({
        host: endpoint.address,
        port: endpoint.port,
        username: endpoint.user,
        privateKey,
        readyTimeout: opts.readyTimeoutMs ?? 20_000,
        keepaliveInterval: opts.keepaliveIntervalMs ?? 10_000,
        keepaliveCountMax: 3,
        // Only the pinned key's type may be offered: a host with several keys would otherwise present another one.
        algorithms: endpoint.hostKey && !opts.algorithms?.serverHostKey
          ? { ...opts.algorithms, serverHostKey: hostKeyAlgorithms(endpoint.hostKey) as never }
          : opts.algorithms,
        hostVerifier: (key: Buffer) => {
          presented = formatHostKey(key);
          return !endpoint.hostKey || sameKey(presented, endpoint.hostKey);
        },
      });
    });
  }

  /** Run argv (quoted) or a shell script string; stdout/stderr are collected (keep them small). */
  async exec(command: string[] | string, opts: ExecOptions = {}): Promise<ExecResult> {
    const line = Array.isArray(command) ? shellCommand(command) : command;
    const channel = await this.channel(line);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    channel.on('data', (d: Buffer) => stdout.push(d));
    channel.stderr.on('data', (d: Buffer) => stderr.push(d));
    const result = await new Promise<ExecResult>((resolve, reject) => {
      let code = -1;
      const onAbort = () => {
        channel.close();
        reject(opts.signal?.reason ?? new Error('aborted'));
      };
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      channel.on('exit', (c: number | null, signalName?: string) => {
        code = c ?? (signalName ? 128 : -1);
      });
      channel.on('close', () => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() });
      });
      channel.on('error', reject);
      if (opts.stdin !== undefined) channel.end(opts.stdin);
      else channel.end();
    });
    if (result.code !== 0 && !opts.allowFailure) throw new SshCommandError(line, result, this.label);
    return result;
  }

  /**
   * One round trip to the server, in ms: a `keepalive@openssh.com` global request, which sshd answers at once (as for
   * OpenSSH's ServerAliveInterval). Undefined if ssh2's internals it needs are gone. Measure before bulk data flows on
   * the connection: the reply queues behind it.
   */
  async ping(timeoutMs = 3000): Promise<number | undefined> {
    const c = this.client as unknown as {
      _callbacks?: ((failed: boolean) => void)[];
      _protocol?: { ping(): void };
    };
    if (!Array.isArray(c._callbacks) || typeof c._protocol?.ping !== 'function') return undefined;
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    // A server that never answers (or a connection that drops) must not hold anyone up: no answer, no figure.
    const answered = await Promise.race([
      new Promise<boolean>((resolve) => {
        c._callbacks!.push(() => resolve(true));
        c._protocol!.ping();
      }),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return answered ? performance.now() - started : undefined;
  }

  /** A raw exec channel, for streaming (vol-upload through stdin, compressed reads). */
  channel(line: string): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      this.client.exec(line, (err, ch) => (err ? reject(err) : resolve(ch)));
    });
  }

  sftp(): Promise<SFTPWrapper> {
    return new Promise((resolve, reject) => this.client.sftp((err, s) => (err ? reject(err) : resolve(s))));
  }

  onClose(listener: () => void): void {
    this.client.once('close', listener);
  }

  close(): void {
    this.client.end();
  }
}

function sameKey(a: string, b: string): boolean {
  const blob = (k: string) => k.trim().split(/\s+/).slice(0, 2).join(' ');
  return blob(a) === blob(b);
}

/** The key's base64 tail is what differs between keys of one type; its head is the same for every ed25519 key. */
const keyTail = (key: string) => {
  const [type, blob] = key.trim().split(/\s+/);
  return blob && /^[A-Za-z0-9+/]+=*$/.test(blob) ? `${type} …${blob.slice(-16)}` : key;
};

/** Host key algorithms that present a key of this type (an RSA key signs with rsa-sha2-*). */
export function hostKeyAlgorithms(key: string): string[] {
  const type = key.trim().split(/\s+/)[0];
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

export function hostKeyMismatch(endpoint: SshEndpoint, presented: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(
    `${endpoint.address}:${endpoint.port}: SSH host key changed: pinned ${keyTail(endpoint.hostKey ?? '')}, presented ${keyTail(presented)}; ` +
      `refusing to connect (a changed key may mean someone is in between). ` +
      (endpoint.hostKeyHint ?? 'If the builder was legitimately replaced, start a new release.'),
    'HostKeyMismatch',
  );
}

/** Connect, run fn, always close. */
export async function withSsh<T>(
  endpoint: SshEndpoint,
  creds: SshCredentials | Buffer,
  fn: (ssh: SshSession) => Promise<T>,
  opts: { signal?: AbortSignal } = {},
): Promise<T> {
  const ssh = await SshSession.connect(endpoint, creds, opts);
  try {
    return await fn(ssh);
  } finally {
    ssh.close();
  }
}
