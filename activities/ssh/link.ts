// An SSH connection to a builder that comes back: long steps poll for hours, and a dropped connection (network
// blip, sshd restart, NAT timeout) must cost one reconnect, not the build. Work passed to run() must be safe to
// repeat, because a command cut off mid-way is run again on the new connection.
import { ApplicationFailure } from '@temporalio/common';
import type { Builder } from '../../config/schema';
import type { BuilderHost } from '../types';
import { connectBuilder } from './builder-session';
import { SshCommandError, type SshSession } from './connection';
import { sleep } from '../runtime/poll';

export interface LinkOptions {
  signal?: AbortSignal;
  /** Give up (retryable error) after the builder has been unreachable this long. Default 15 minutes. */
  reconnectWindowMs?: number;
  onReconnect?: (info: { attempt: number; error: string }) => void;
}

/** A closed channel without an exit status (code -1) is a lost connection, not a failed command. */
export function isConnectionLoss(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted) return false;
  if (err instanceof SshCommandError) return err.result.code === -1;
  return !(err instanceof ApplicationFailure) && err instanceof Error;
}

export class BuilderLink {
  private ssh?: SshSession;

  constructor(
    private readonly host: BuilderHost,
    private readonly builder: Pick<Builder, 'ssh'>,
    private readonly opts: LinkOptions = {},
  ) {}

  async run<T>(fn: (ssh: SshSession) => Promise<T>): Promise<T> {
    let since: number | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(await this.session());
      } catch (err) {
        if (!isConnectionLoss(err, this.opts.signal)) throw err;
        this.drop();
        since ??= Date.now();
        const error = (err as Error).message.slice(0, 200);
        if (Date.now() - since > (this.opts.reconnectWindowMs ?? 15 * 60_000))
          throw new Error(
            `builder ${this.host.address}:${this.host.port} unreachable over SSH since ${new Date(since).toISOString()}: ${error}`,
          );
        this.opts.onReconnect?.({ attempt, error });
        await sleep(Math.min(500 * 2 ** (attempt - 1), 10_000), this.opts.signal);
      }
    }
  }

  private async session(): Promise<SshSession> {
    if (this.ssh) return this.ssh;
    const ssh = await connectBuilder(this.host, this.builder, this.opts.signal);
    ssh.onClose(() => {
      if (this.ssh === ssh) this.ssh = undefined;
    });
    this.ssh = ssh;
    return ssh;
  }

  drop(): void {
    this.ssh?.close();
    this.ssh = undefined;
  }
}
