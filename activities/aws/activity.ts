// The bits of an activity's context the AWS code uses, optional so every function also runs outside an activity
// (tests, benches, the CLI).
import { Context } from '@temporalio/activity';

export function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Heartbeat details left by the previous attempt of this activity, if any. */
export const previousProgress = <T>(): T | undefined => currentActivity()?.info.heartbeatDetails as T | undefined;

export const heartbeat = (details: unknown) => currentActivity()?.heartbeat(details);

export const activitySignal = (): AbortSignal | undefined => currentActivity()?.cancellationSignal;

export interface WaitOptions {
  what: string;
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Heartbeat details while waiting (activities must heartbeat to stay alive and to hear cancellation). */
  progress?: unknown;
}

/** Polls `probe` until it returns a value; a timeout is a retryable error (the next attempt polls again). */
export async function waitFor<T>(probe: () => Promise<T | undefined>, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal?.throwIfAborted();
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${opts.what}`);
    if (opts.progress !== undefined) heartbeat(opts.progress);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(opts.signal!.reason as Error);
      };
      const timer = setTimeout(() => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve();
      }, opts.intervalMs);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
