// The `command` builder provider: an external allocator run on the worker, such as Fedora Copr's resalloc:
//   acquire: `resalloc ticket --tag arch_x86_64`   → prints a ticket id (the handle)
//   wait:    `resalloc ticket-wait <handle>`        → prints the builder's address when it is ready
//   release: `resalloc ticket-close <handle>`
// The handle is recorded as soon as acquire prints it (a state file per release and architecture, and the
// activity's heartbeat details), so a retry, on this worker or another, waits on the same ticket instead of
// taking a second one. Commands get BOOTC_RELEASE_ID and BOOTC_RELEASE_ARCH, PATH, HOME, LANG and the worker
// variables named in `passEnv`: nothing else of the worker's environment (see ./env.ts).
import { execFile } from 'node:child_process';
import { access, constants, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Builder } from '../../config/schema';
import type { BuilderHost, BuilderProvider, CheckResult, StepContext } from '../types';
import { credentialsOf } from '../ssh/builder-session';
import { learnHostKey } from '../ssh/host-key-pinning';
import { activitySignal, heartbeat, previousDetails, withHeartbeats } from '../runtime/heartbeat';
import { commandEnv } from '../runtime/command-env';
import { FailureType } from '../failures';

export type CommandBuilder = Extract<Builder, { provider: 'command' }>;

export interface CommandProviderDeps {
  /** Worker-local directory for the handle of each release and architecture. */
  stateDir: string;
  /** Heartbeat interval while a command runs (ticket-wait can take long). */
  heartbeatMs?: number;
}

interface HandleState {
  handle: string;
  address?: string;
  hostKey?: string;
}

const HANDLE = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,199}$/;
const ADDRESS = /^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/;

export function createCommandProvider(deps: CommandProviderDeps): BuilderProvider<CommandBuilder> {
  const stateFile = (ctx: StepContext) =>
    path.join(deps.stateDir, 'command-provider', `${ctx.releaseId}-${ctx.arch}.json`);

  async function loadState(ctx: StepContext): Promise<HandleState | undefined> {
    try {
      return JSON.parse(await readFile(stateFile(ctx), 'utf8')) as HandleState;
    } catch {
      const details = previousDetails<Partial<HandleState>>();
      return details?.handle
        ? { handle: details.handle, address: details.address, hostKey: details.hostKey }
        : undefined;
    }
  }

  async function saveState(ctx: StepContext, state: HandleState): Promise<void> {
    const file = stateFile(ctx);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, JSON.stringify(state));
    await rename(`${file}.tmp`, file);
    heartbeat(state);
  }

  /**
   * Runs argv on the worker; the last non-empty stdout line is the answer. While it runs, keep-alive beats repeat
   * `resume` (the state saved so far): the server keeps only the latest details, and an empty beat during ticket-wait
   * would erase the ticket, so a retry elsewhere would take a second one and never close the first.
   */
  async function run(argv: string[], ctx: StepContext, field: string, passEnv: readonly string[], resume?: HandleState): Promise<string> {
    if (resume) heartbeat(resume);
    return await withHeartbeats(() => lastLineOf(argv, ctx, field, passEnv), deps.heartbeatMs ?? 10_000);
  }

  return {
    async check(builder) {
      const messages: string[] = [];
      let ok = true;
      for (const [field, argv] of [
        ['acquire', builder.acquire],
        ['wait', builder.wait],
        ['release', builder.release],
      ] as const) {
        if (!argv) continue;
        const found = await findExecutable(argv[0]);
        messages.push(
          found ? `${field}: ${found}` : `${field}: ${argv[0]} is not an executable on the worker's PATH`,
        );
        ok &&= !!found;
      }
      messages.push(ok ? 'Builder conditions met.' : 'Builder commands missing.');
      return { ok, messages } satisfies CheckResult;
    },

    async acquire(builder, ctx) {
      const saved = await loadState(ctx);
      let handle = saved?.handle;
      if (!handle) {
        handle = await run(builder.acquire, ctx, 'acquire', builder.passEnv);
        if (!HANDLE.test(handle))
          throw new Error(
            `${ctx.arch}: \`${builder.acquire.join(' ')}\` printed no usable handle (got "${handle.slice(0, 80)}")`,
          );
        await saveState(ctx, { handle });
      }
      let address = saved?.address;
      if (!address) {
        address = builder.wait ? await run([...builder.wait, handle], ctx, 'wait', builder.passEnv, { handle }) : handle;
        if (!ADDRESS.test(address))
          throw new Error(
            `${ctx.arch}: handle ${handle} gave no usable address (got "${address.slice(0, 80)}")`,
          );
        await saveState(ctx, { handle, address });
      }
      let hostKey = saved?.hostKey;
      if (!hostKey) {
        const endpoint = {
          address,
          port: builder.ssh.port,
          user: builder.ssh.user,
          hostKey: builder.ssh.hostKey,
        };
        hostKey = await learnHostKey(endpoint, credentialsOf(builder), activitySignal());
        await saveState(ctx, { handle, address, hostKey });
      }
      return {
        provider: 'command',
        id: handle,
        address,
        port: builder.ssh.port,
        user: builder.ssh.user,
        hostKey,
        resources: [],
      } satisfies BuilderHost;
    },

    async release(builder, ctx, host) {
      // No host id: the acquire was cancelled or failed after taking a ticket; the state file still names it.
      const handle = host.id || (await loadState(ctx))?.handle;
      if (handle) await run([...builder.release, handle], ctx, 'release', builder.passEnv, { handle });
      await rm(stateFile(ctx), { force: true });
    },
  };
}

function lastLineOf(argv: string[], ctx: StepContext, field: string, passEnv: readonly string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(
      argv[0],
      argv.slice(1),
      {
        env: commandEnv(passEnv, { BOOTC_RELEASE_ID: ctx.releaseId, BOOTC_RELEASE_ARCH: ctx.arch }),
        signal: activitySignal(),
        maxBuffer: 1 << 20,
      },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT')
          return reject(
            ApplicationFailure.nonRetryable(
              `${ctx.arch}: ${argv[0]} not found on the worker; check architectures.${ctx.arch}.builder.${field}`,
              FailureType.Config,
            ),
          );
        if (err)
          return reject(
            new Error(`${ctx.arch}: \`${argv.join(' ')}\` failed: ${(stderr || err.message).trim().split('\n').slice(-3).join(' | ')}`),
          );
        resolve(
          stdout
            .trim()
            .split('\n')
            .filter((l) => l.trim())
            .pop()
            ?.trim() ?? '',
        );
      },
    );
  });
}

async function findExecutable(command: string): Promise<string | undefined> {
  const candidates = command.includes('/')
    ? [command]
    : (process.env.PATH ?? '').split(':').map((d) => path.join(d, command));
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}
