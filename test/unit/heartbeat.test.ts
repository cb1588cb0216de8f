// The activity runtime (activities/runtime): heartbeats that never lose resume details, one poll loop with backoff,
// timeout and cancellation, and the same functions working outside an activity.
import { MockActivityEnvironment } from '@temporalio/testing';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import {
  heartbeat,
  keepAlive,
  previousDetails,
  throttledHeartbeat,
  withHeartbeats,
} from '../../activities/runtime/heartbeat';
import { pollUntil, sleep } from '../../activities/runtime/poll';

const json = (d: unknown) => JSON.stringify(d);

function recording(heartbeatDetails?: unknown) {
  const env = new MockActivityEnvironment(heartbeatDetails === undefined ? {} : { heartbeatDetails });
  const seen: unknown[] = [];
  env.on('heartbeat', (d: unknown) => seen.push(d));
  return { env, seen };
}

describe('heartbeats', () => {
  it('repeat the last details the activity reported while it waits, so resume state is never replaced', async () => {
    const { env, seen } = recording();
    await env.run(() =>
      withHeartbeats(async () => {
        heartbeat({ snapshotId: 'snap-1', block: 7 });
        await sleep(130);
      }, 20),
    );
    expect(seen.length).toBeGreaterThan(3);
    expect(seen.every((d) => json(d) === json({ snapshotId: 'snap-1', block: 7 }))).toBe(true);
  });

  it('repeat details sent straight through the SDK too', async () => {
    const { env, seen } = recording();
    await env.run(async () => {
      keepAlive();
      Context.current().heartbeat({ hook: 'running' });
      keepAlive();
    });
    expect(seen).toEqual([undefined, { hook: 'running' }, { hook: 'running' }]);
  });

  it('repeat what the previous attempt left until this one reports, and a progress beat replaces it', async () => {
    const { env, seen } = recording({ handle: '1' });
    await env.run(async () => {
      expect(previousDetails<{ handle: string }>()).toEqual({ handle: '1' });
      keepAlive();
      heartbeat({ handle: '1', address: '10.0.0.5' });
      keepAlive();
    });
    expect(seen).toEqual([{ handle: '1' }, { handle: '1', address: '10.0.0.5' }, { handle: '1', address: '10.0.0.5' }]);
  });

  it('throttled, send at most one beat per interval, and a keep-alive sends the latest details', async () => {
    const { env, seen } = recording();
    await env.run(async () => {
      const report = throttledHeartbeat<{ bytes: number }>(10_000);
      for (let bytes = 1; bytes <= 5; bytes++) report({ bytes });
      keepAlive();
      report({ bytes: 6 }, true);
    });
    expect(seen).toEqual([{ bytes: 1 }, { bytes: 5 }, { bytes: 6 }]);
  });

  it('do nothing outside an activity', async () => {
    heartbeat({ a: 1 });
    keepAlive();
    throttledHeartbeat(0)({ a: 2 });
    expect(previousDetails()).toBeUndefined();
    expect(await withHeartbeats(async () => 'done', 1)).toBe('done');
  });
});

describe('pollUntil', () => {
  it('waits longer each round up to the limit, and returns the first value the check gives', async () => {
    const at: number[] = [];
    const value = await pollUntil(
      async () => {
        at.push(Date.now());
        return at.length === 5 ? 'ready' : undefined;
      },
      { describe: 'the thing', intervalMs: 20, maxIntervalMs: 80, timeoutMs: 5_000 },
    );
    expect(value).toBe('ready');
    const waits = at.slice(1).map((t, i) => t - at[i]!);
    // 20, 40, 80, 80 (timers may fire a little late, never early)
    [20, 40, 80, 80].forEach((want, i) => expect(waits[i]).toBeGreaterThanOrEqual(want - 2));
    expect(waits[3]).toBeLessThan(160);
  });

  it('grows linearly when asked', async () => {
    const at: number[] = [];
    await pollUntil(async () => (at.push(Date.now()) === 4 ? true : undefined), {
      describe: 'x',
      intervalMs: 30,
      maxIntervalMs: 60,
      backoff: 'linear',
    });
    const waits = at.slice(1).map((t, i) => t - at[i]!);
    [30, 60, 60].forEach((want, i) => expect(waits[i]).toBeGreaterThanOrEqual(want - 2));
  });

  it('gives up after the timeout with an error that names what it waited for', async () => {
    await expect(pollUntil(async () => undefined, { describe: 'instance i-1 to run', intervalMs: 10, timeoutMs: 50 })).rejects.toThrow(
      /^timed out after 0 s waiting for instance i-1 to run$/,
    );
    const custom = pollUntil(
      async () => {
        throw new Error('connection refused');
      },
      {
        describe: 'ssh',
        intervalMs: 10,
        timeoutMs: 40,
        transientErrors: Number.POSITIVE_INFINITY,
        timeoutError: (tries, err) => new Error(`no SSH after ${tries} tries: ${err?.message}`),
      },
    );
    await expect(custom).rejects.toThrow(/^no SSH after \d+ tries: connection refused$/);
  });

  it('survives a few plain errors in a row, never an ApplicationFailure', async () => {
    let calls = 0;
    const flaky = await pollUntil(
      async () => {
        if (++calls <= 2) throw new Error('503');
        return calls;
      },
      { describe: 'x', intervalMs: 1, transientErrors: 2 },
    );
    expect(flaky).toBe(3);
    await expect(
      pollUntil(
        async () => {
          throw new Error('503');
        },
        { describe: 'x', intervalMs: 1, transientErrors: 2 },
      ),
    ).rejects.toThrow('503');
    let refused = 0;
    await expect(
      pollUntil(
        async () => {
          refused++;
          throw ApplicationFailure.nonRetryable('denied', 'PermissionError');
        },
        { describe: 'x', intervalMs: 1, transientErrors: 5 },
      ),
    ).rejects.toThrow('denied');
    expect(refused).toBe(1);
  });

  it('keeps the activity alive between checks and stops at once when the activity is cancelled', async () => {
    const { env, seen } = recording({ step: 'resume-me' });
    const started = Date.now();
    const run = env.run(() => pollUntil(async () => undefined, { describe: 'never', intervalMs: 60_000 }));
    await sleep(30);
    env.cancel();
    await expect(run).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(seen[0]).toEqual({ step: 'resume-me' });
  });

  it('stops on the signal it is given, outside an activity too', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('stopped by the test')), 30);
    await expect(pollUntil(async () => undefined, { describe: 'x', intervalMs: 60_000, signal: abort.signal })).rejects.toThrow(
      'stopped by the test',
    );
    await expect(sleep(10, abort.signal)).rejects.toThrow('stopped by the test');
  });
});
