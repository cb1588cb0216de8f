// virsh on a hypervisor, reached over SSH. Everything libvirt-related goes through this narrow runner, which is also
// what tests replace to record the domain command sequence (VMs cannot boot on the rig).
import type { Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { exitCode, shellCommand, SshCommandError, type ExecResult, type SshSession } from '../ssh/connection';
import { FailureType } from '../failures';

export interface RunOptions {
  stdin?: string | Buffer;
  allowFailure?: boolean;
  signal?: AbortSignal;
}

/** The exact surface used on a hypervisor: virsh subcommands plus a few plain commands (sha256sum, test). */
export interface HypervisorRunner {
  readonly host: string;
  /** libvirt connection URI on the hypervisor, e.g. qemu:///system. */
  readonly uri: string;
  /** `virsh -c URI <args>` */
  virsh(args: string[], opts?: RunOptions): Promise<ExecResult>;
  /** Any other command (argv, quoted). */
  run(argv: string[], opts?: RunOptions): Promise<ExecResult>;
  /**
   * `virsh -c URI <args>` with `input` streamed to its stdin; resolves when the command exits 0. `input` must be
   * paused (no 'data' listener yet): byte counts go through onBytes, attached once the pipe is in place.
   */
  virshStream(args: string[], input: Readable, opts?: { signal?: AbortSignal; onBytes?: (n: number) => void }): Promise<void>;
  close(): void;
}

export function sshHypervisor(ssh: SshSession, host: string, uri: string): HypervisorRunner {
  const virshArgv = (args: string[]) => ['virsh', '-q', '-c', uri, ...args];
  return {
    host,
    uri,
    virsh: (args, opts) => ssh.exec(virshArgv(args), opts),
    run: (argv, opts) => ssh.exec(argv, opts),
    async virshStream(args, input, opts = {}) {
      const line = shellCommand(virshArgv(args));
      const channel = await ssh.channel(line);
      const stderr: Buffer[] = [];
      const stdout: Buffer[] = [];
      channel.stderr.on('data', (d: Buffer) => stderr.push(d));
      channel.on('data', (d: Buffer) => stdout.push(d));
      await new Promise<void>((resolve, reject) => {
        let failed: Error | undefined;
        const fail = (err: Error) => {
          failed ??= err;
          input.unpipe(channel);
          input.destroy();
          channel.close();
        };
        const onAbort = () => fail(opts.signal?.reason ?? new Error('aborted'));
        if (opts.signal?.aborted) onAbort();
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        input.once('error', fail);
        channel.on('error', fail);
        channel.on('close', () => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (failed) return reject(failed);
          const code = exitCode(channel.exitStatus);
          if (code !== 0) {
            const result = { code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() };
            return reject(new SshCommandError(line, result, host));
          }
          resolve();
        });
        input.pipe(channel);
        if (opts.onBytes) input.on('data', (chunk: Buffer) => opts.onBytes!(chunk.length));
      });
    },
    close: () => ssh.close(),
  };
}

/** libvirt's "not found" errors for pools, volumes and domains (VIR_ERR_NO_STORAGE_POOL/VOL, VIR_ERR_NO_DOMAIN). */
export const isNotFound = (r: ExecResult) =>
  r.code !== 0 && /(Storage (pool|volume) not found|failed to get (pool|vol|domain)|Domain not found|no (storage pool|storage vol|domain) with matching)/i.test(r.stderr);

/** virsh exited 127 (command not found) or the libvirt socket is not there: the host is no hypervisor we can use. */
export function unusableHypervisor(host: string, r: ExecResult, field: string): ApplicationFailure | undefined {
  if (r.code === 127) return ApplicationFailure.nonRetryable(`${host}: virsh is not installed; install libvirt-clients there or remove it from ${field}`, FailureType.Config);
  if (/authentication (failed|unavailable)|Permission denied|access denied/i.test(r.stderr))
    return ApplicationFailure.nonRetryable(`${host}: libvirt refused access: ${firstLine(r.stderr)}; give the SSH user libvirt access or change ${field}`, FailureType.Permission);
  return undefined;
}

export const firstLine = (text: string) => text.trim().split('\n').map((l) => l.replace(/^error:\s*/, '')).filter(Boolean).join('; ').slice(0, 300);

/** `virsh vol-info --bytes` → capacity and allocation. */
export function parseVolInfo(stdout: string): { capacity: number; allocation: number; type: string } {
  const field = (name: string) => new RegExp(`^${name}:\\s+(.+)$`, 'm').exec(stdout)?.[1]?.trim() ?? '';
  return { type: field('Type'), capacity: parseInt(field('Capacity'), 10), allocation: parseInt(field('Allocation'), 10) };
}

/** `virsh pool-info --bytes` → state and available bytes. */
export function parsePoolInfo(stdout: string): { state: string; available: number } {
  const field = (name: string) => new RegExp(`^${name}:\\s+(.+)$`, 'm').exec(stdout)?.[1]?.trim() ?? '';
  return { state: field('State'), available: parseInt(field('Available'), 10) };
}

/** `virsh vol-list --pool P` (with -q): "name   path" rows. */
export const parseVolList = (stdout: string) =>
  stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => !!n);

/** Pool types whose fresh volumes are sparse files that read as zeros, so holes need not be sent. */
export const FILE_POOL_TYPES = new Set(['dir', 'fs', 'netfs']);

export const poolType = (xml: string) => /<pool\s+type=['"]([a-z0-9_-]+)['"]/.exec(xml)?.[1] ?? 'unknown';
