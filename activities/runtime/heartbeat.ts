// The one way an activity reports to Temporal. Heartbeat details carry resume state (blocks confirmed, the ticket taken,
// the key pinned), and the server keeps only the latest: so a progress beat replaces the details, and a keep-alive beat
// (a wait that has nothing new to say) repeats them, never sends empty ones. Until this attempt reports, the details
// are those the previous attempt left, so a second crash loses nothing either.
// Every function works outside an activity (tests, benches, the CLI): beats and logs go nowhere, there is no signal.
import { Context } from '@temporalio/activity';

/** The running activity's context, or undefined when called as a plain function. */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

interface Beats {
  last: unknown;
}

const beatsOf = new WeakMap<Context, Beats>();

/**
 * The details this attempt last reported. Beats sent straight through the SDK (`Context.current().heartbeat`, code
 * not written against this module) are recorded too: the context's heartbeat function is wrapped once per attempt.
 */
function beats(ctx: Context): Beats {
  const known = beatsOf.get(ctx);
  if (known) return known;
  const state: Beats = { last: ctx.info.heartbeatDetails };
  const send = ctx.heartbeat;
  // The SDK declares it readonly; it is a plain instance field, and every heartbeat of the attempt goes through it.
  (ctx as { heartbeat: (details?: unknown) => void }).heartbeat = (details?: unknown) => {
    state.last = details;
    send(details);
  };
  beatsOf.set(ctx, state);
  return state;
}

/** A progress beat: `details` replace the last ones and are what a retry resumes from. */
export function heartbeat(details: unknown): void {
  const ctx = activityContext();
  if (!ctx) return;
  beats(ctx);
  ctx.heartbeat(details);
}

/** A keep-alive beat: proves liveness and lets cancellation arrive, repeating the last details. */
export function keepAlive(): void {
  const ctx = activityContext();
  if (ctx) repeat(ctx);
}

const repeat = (ctx: Context) => ctx.heartbeat(beats(ctx).last);

/**
 * Progress that changes many times a second (bytes on the wire): every call replaces the details, at most one beat per
 * `minIntervalMs` is sent (`force` sends at once), and a keep-alive beat sends the latest.
 */
export function throttledHeartbeat<T>(minIntervalMs: number): (details: T, force?: boolean) => void {
  const ctx = activityContext();
  let sent = 0;
  return (details, force = false) => {
    if (!ctx) return;
    if (force || Date.now() - sent >= minIntervalMs) {
      sent = Date.now();
      beats(ctx);
      ctx.heartbeat(details);
    } else beats(ctx).last = details;
  };
}

/** Heartbeat details the previous attempt of this activity left, if any: what a retry resumes from. */
export const previousDetails = <T>(): T | undefined => activityContext()?.info.heartbeatDetails as T | undefined;

/** The activity's cancellation signal (undefined outside an activity). */
export const activitySignal = (): AbortSignal | undefined => activityContext()?.cancellationSignal;

/** A line in the activity's log (the worker's log, with the workflow and activity ids). */
export function activityLog(message: string): void {
  activityContext()?.log.info(message);
}

/**
 * Keeps an activity visibly alive while `fn` waits on something that reports no progress of its own (an instance
 * booting, a cloud copy, a remote sha256): Temporal would otherwise take a silent attempt for a dead worker after the
 * heartbeat timeout and start a second one. Progress beats from inside `fn` still replace the details.
 */
export async function withHeartbeats<T>(fn: () => Promise<T>, everyMs = 10_000): Promise<T> {
  const ctx = activityContext();
  if (!ctx) return await fn();
  const timer = setInterval(() => repeat(ctx), everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}
