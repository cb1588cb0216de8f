// Library functions here run inside activities (heartbeat, resume details, cancellation, activity log) and outside
// them (tests, benches); this picks whichever applies, so callers never have to know.
import { asyncLocalStorage, type Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

export interface Progress {
  heartbeat(details: Record<string, unknown>): void;
  /** Details of the last heartbeat of a previous attempt, if any. */
  resumed?: Record<string, unknown>;
  signal?: AbortSignal;
  log(message: string): void;
}

export function currentProgress(overrides: Partial<Progress> = {}): Progress {
  const ctx = asyncLocalStorage.getStore() as Context | undefined;
  return {
    heartbeat: (details) => ctx?.heartbeat(details),
    resumed: ctx?.info.heartbeatDetails as Record<string, unknown> | undefined,
    signal: ctx?.cancellationSignal,
    log: (message) => ctx?.log.info(message),
    ...overrides,
  };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Polls `read` until `done` says so, heartbeating each round. Transient errors (plain Errors: 429, 5xx, network) are
 * tolerated a few times in a row, since a long wait should not fail on one bad poll; non-retryable ones end it.
 */
export async function pollUntil<T>(opts: {
  read: () => Promise<T>;
  done: (value: T) => boolean;
  intervalMs: number;
  timeoutMs: number;
  what: string;
  progress: Progress;
  details: (value: T) => Record<string, unknown>;
}): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let transient = 0;
  for (;;) {
    try {
      const value = await opts.read();
      transient = 0;
      opts.progress.heartbeat(opts.details(value));
      if (opts.done(value)) return value;
    } catch (err) {
      if ((err instanceof ApplicationFailure && err.nonRetryable) || opts.progress.signal?.aborted || ++transient > 5) throw err;
      opts.progress.log(`${opts.what}: ${(err as Error).message}; polling again`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${opts.what}`);
    await sleep(opts.intervalMs, opts.progress.signal);
  }
}
