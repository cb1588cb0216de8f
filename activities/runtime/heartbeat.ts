// Keeps an activity visibly alive while it waits on something that reports no progress of its own (an instance
// booting, a cloud copy): Temporal would otherwise take a silent attempt for a dead worker after the heartbeat
// timeout and start a second one. The last details the activity reported are repeated, never replaced, so resume
// state carried in heartbeat details survives.
import { Context } from '@temporalio/activity';

export async function withHeartbeats<T>(fn: () => Promise<T>, everyMs = 10_000): Promise<T> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return await fn(); // called outside an activity (tests, scripts)
  }
  // The SDK declares it readonly; it is a plain instance field, and every heartbeat() call goes through it.
  const writable = ctx as { heartbeat: (details?: unknown) => void };
  const original = ctx.heartbeat;
  // Until the activity reports anew, repeat what the previous attempt left, so a second crash loses nothing.
  let last: unknown = ctx.info.heartbeatDetails;
  writable.heartbeat = (details?: unknown) => {
    last = details;
    original(details);
  };
  const timer = setInterval(() => original(last), everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    writable.heartbeat = original;
  }
}
