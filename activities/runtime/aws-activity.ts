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

// The last details each activity sent, so a wait loop can keep the activity alive without replacing its progress.
const lastDetails = new WeakMap<Context, unknown>();

export function heartbeat(details: unknown) {
  const ctx = currentActivity();
  if (!ctx) return;
  lastDetails.set(ctx, details);
  ctx.heartbeat(details);
}

/** Heartbeat with the details already sent (or none): proves liveness and lets cancellation arrive. */
export function keepAlive() {
  const ctx = currentActivity();
  ctx?.heartbeat(lastDetails.get(ctx));
}

export const activitySignal = (): AbortSignal | undefined => currentActivity()?.cancellationSignal;

export interface WaitOptions {
  what: string;
  intervalMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Heartbeat details while waiting; default: the details last sent (activities must heartbeat to stay alive). */
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
    else keepAlive();
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
