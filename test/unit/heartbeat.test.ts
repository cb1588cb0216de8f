import { MockActivityEnvironment } from '@temporalio/testing';
import { Context } from '@temporalio/activity';
import { describe, expect, it } from 'vitest';
import { withHeartbeats } from '../../activities/runtime/heartbeat';

describe('withHeartbeats', () => {
  it('repeats the last details the activity reported while it waits, so resume state is never replaced', async () => {
    const env = new MockActivityEnvironment();
    const seen: unknown[] = [];
    env.on('heartbeat', (d: unknown) => seen.push(d));
    await env.run(() =>
      withHeartbeats(async () => {
        Context.current().heartbeat({ snapshotId: 'snap-1', block: 7 });
        await new Promise((r) => setTimeout(r, 130));
      }, 20),
    );
    expect(seen.length).toBeGreaterThan(3);
    expect(seen.every((d) => JSON.stringify(d) === JSON.stringify({ snapshotId: 'snap-1', block: 7 }))).toBe(true);
  });
});
