// Waiting inside an activity: for a cloud resource to change state, a VM to answer, a lock to come free. One loop for
// all of them, so that each wait keeps the activity alive, stops on cancellation and ends with a clear timeout.
import { ApplicationFailure } from '@temporalio/common';
import { activityLog, activitySignal, keepAlive } from './heartbeat';

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface PollOptions {
  /** What is awaited, for the timeout error and the log: "instance i-0abc to run". */
  describe: string;
  /** The first wait between two checks. */
  intervalMs: number;
  /** Waits grow up to this (default: they stay at intervalMs). */
  maxIntervalMs?: number;
  /** How waits grow towards maxIntervalMs: doubled (default) or by intervalMs each round. */
  backoff?: 'exponential' | 'linear';
  /** Give up after this long (a retryable error: the next attempt waits again). Default: no limit of its own. */
  timeoutMs?: number;
  /** Default: the activity's cancellation signal (none outside an activity). */
  signal?: AbortSignal;
  /**
   * Errors in a row a long wait survives (default 0): plain Errors only (429, 5xx, a refused connection), never an
   * ApplicationFailure, which already says whether a retry can help.
   */
  transientErrors?: number;
  /** The error when time is up (default: "timed out after N s waiting for <describe>"). */
  timeoutError?: (tries: number, lastError?: Error) => Error;
}

/**
 * Calls `check` (with the 1-based try number) until it returns a value, keeping the activity alive between tries with
 * its last details (a check with news to report sends a progress beat itself).
 */
export async function pollUntil<T>(check: (attempt: number) => Promise<T | undefined>, opts: PollOptions): Promise<T> {
  const signal = opts.signal ?? activitySignal();
  const started = Date.now();
  let transient = 0;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    let lastError: Error | undefined;
    try {
      const value = await check(attempt);
      if (value !== undefined) return value;
      transient = 0;
    } catch (err) {
      // A cancel is reported as one (Temporal's own reason), not as the failed try it interrupted.
      if (signal?.aborted) throw signal.reason;
      if (err instanceof ApplicationFailure || ++transient > (opts.transientErrors ?? 0)) throw err;
      lastError = err as Error;
      activityLog(`${opts.describe}: ${lastError.message}; polling again`);
    }
    if (opts.timeoutMs !== undefined && Date.now() - started > opts.timeoutMs)
      throw (
        opts.timeoutError?.(attempt, lastError) ??
        new Error(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${opts.describe}`)
      );
    keepAlive();
    await sleep(waitBefore(attempt + 1, opts), signal);
  }
}

/** The wait before try `attempt` (2, 3, ...). */
function waitBefore(attempt: number, opts: PollOptions): number {
  const max = opts.maxIntervalMs ?? opts.intervalMs;
  const grown = opts.backoff === 'linear' ? opts.intervalMs * (attempt - 1) : opts.intervalMs * 2 ** (attempt - 2);
  return Math.min(grown, max);
}
