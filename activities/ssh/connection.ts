// SSH to builders and hypervisors: host keys pinned (or trusted on first use and then pinned by the workflow),
// commands built from argument arrays, and an AbortSignal that closes the channel and the connection.
import { readFileSync } from 'node:fs';
import { Client, utils, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures';

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

/** Worker-wide default key, used when a builder's ssh config names none: a path or the key text. */
export const DEFAULT_KEY_ENV = 'BOOTC_RELEASE_SSH_KEY';

const keyProblem = (message: string) => ApplicationFailure.nonRetryable(`ssh: ${message}`, FailureType.Config);

const readProblem = (err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory' : (code ?? 'unreadable');
};

/** Refuses key material ssh2 could not use: caught here it is a config error, inside connect() a "lost connection". */
function usableKey(key: Buffer, where: string): Buffer {
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) {
    // ssh2's own text may quote parts of the key; only the passphrase case is worth telling apart.
    const why = /passphrase/i.test(parsed.message)
      ? 'it is encrypted with a passphrase; give the worker an unencrypted key'
      : 'not a private key ssh2 can read (PEM or OpenSSH format)';
    throw keyProblem(`the private key in ${where} cannot be used: ${why}`);
  }
  return key;
}

/**
 * The private key bytes for a connection. Every failure is a non-retryable ConfigError that names the key file's
 * path or the env var's NAME: an env var's value never appears in an error, since a mistyped key is still a key.
 */
export function resolvePrivateKey(creds: SshCredentials = {}, env: NodeJS.ProcessEnv = process.env): Buffer {
  if (creds.privateKeyPath) {
    let key: Buffer;
    try {
      key = readFileSync(creds.privateKeyPath);
    } catch (err) {
      throw keyProblem(
        `private key file ${creds.privateKeyPath} cannot be read on the worker (${readProblem(err)}); fix ssh.privateKeyPath`,
      );
    }
    return usableKey(key, `file ${creds.privateKeyPath}`);
  }
  const name = creds.privateKeyEnv ?? DEFAULT_KEY_ENV;
  const value = env[name];
  if (!value)
    throw keyProblem(
      creds.privateKeyEnv
        ? `environment variable ${name} is not set on the worker`
        : `no private key configured: set ssh.privateKeyPath or ssh.privateKeyEnv, or ${DEFAULT_KEY_ENV} on the worker`,
    );
  const where = `environment variable ${name}`;
  if (value.includes('-----BEGIN')) return usableKey(Buffer.from(value), where);
  // Only an absolute path on one line is taken for a path: anything else is a value we must not print or open.
  if (!/^\/[^\n]*$/.test(value))
    throw keyProblem(
      `${where} holds neither a private key (PEM or OpenSSH text) nor the absolute path of one; fix it on the worker or ssh.privateKeyEnv`,
    );
  let key: Buffer;
  try {
    key = readFileSync(value);
  } catch (err) {
    throw keyProblem(`${where} names a private key file that cannot be read on the worker (${readProblem(err)})`);
  }
  return usableKey(key, where);
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
        // Straight to the key: ssh2 would first try "none", one more round trip before every connection.
        authHandler: ['publickey'],
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
      const onAbort = () => {
        channel.close();
        reject(opts.signal?.reason ?? new Error('aborted'));
      };
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      channel.on('close', () => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ code: exitCode(channel.exitStatus), stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() });
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
  channel(line: string): Promise<ExecChannel> {
    return new Promise((resolve, reject) => {
      this.client.exec(line, (err, ch) => {
        if (err) return reject(err);
        // A quick command's exit-status can arrive in the same read as the reply that opens the channel, and ssh2
        // emits it at once, before whoever awaits this promise can listen: record it here, from the first moment.
        const exitStatus: ExitStatus = { code: null };
        ch.on('exit', (code: number | null, signal?: string) => Object.assign(exitStatus, { code, signal }));
        resolve(Object.assign(ch, { exitStatus }));
      });
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
    FailureType.HostKeyMismatch,
  );
}

/** What the remote command's exit-status (or exit-signal) said; `code` null until one arrived. */
export interface ExitStatus {
  code: number | null;
  signal?: string;
}
export type ExecChannel = ClientChannel & { exitStatus: ExitStatus };

/** The shell's convention: the exit code, 128 for a signal, -1 when the channel closed without either. */
export const exitCode = (s: ExitStatus): number => s.code ?? (s.signal ? 128 : -1);

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
