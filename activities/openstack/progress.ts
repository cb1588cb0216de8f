// Library functions here run inside activities (heartbeat, resume details, cancellation, activity log) and outside
// them (tests, benches); this picks whichever applies, so callers never have to know.
import { asyncLocalStorage, type Context } from '@temporalio/activity';

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
