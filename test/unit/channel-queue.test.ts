// The channel's queue without a server: assignments and the retention runs after them take their turns one at a
// time in the order they were queued, a failed assignment does not hold up the next, a retention run yields to an
// assignment waiting its turn and is queued again behind it, and the workflow sees the queue idle only when all
// have settled.
import { describe, expect, it } from 'vitest';
import { ChannelQueue, type RetentionOutcome } from '../../workflows/channel-queue';

/** A job the test finishes by hand, recording when it started. */
function job<T>(log: string[], name: string) {
  let finish!: (v: T) => void;
  let fail!: (err: Error) => void;
  const done = new Promise<T>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  return {
    run: () => {
      log.push(`${name} started`);
      return done;
    },
    finish: (v: T) => finish(v),
    fail: (err: Error) => fail(err),
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('the channel queue', () => {
  it('runs assignments one at a time, in the order they were queued, a failed one not holding up the next', async () => {
    const queue = new ChannelQueue();
    const log: string[] = [];
    const [a, b, c] = ['a', 'b', 'c'].map((n) => job<string>(log, n));
    expect(queue.idle).toBe(true);
    const answers = [a, b, c].map((j) => queue.assignment(j!.run));
    await settle();
    expect(log).toEqual(['a started']);
    expect(queue.assignmentWaiting).toBe(true);
    expect(queue.idle).toBe(false);

    b!.fail(new Error('refused'));
    a!.finish('a active');
    await settle();
    expect(log).toEqual(['a started', 'b started', 'c started']);
    expect(queue.assignmentWaiting).toBe(false);
    await expect(answers[0]).resolves.toBe('a active');
    await expect(answers[1]).rejects.toThrow('refused');
    expect(queue.idle).toBe(false);

    c!.finish('c active');
    await expect(answers[2]).resolves.toBe('c active');
    await settle();
    expect(queue.idle).toBe(true);
  });

  it('runs retention behind the assignment that queued it, one run for every assignment before it', async () => {
    const queue = new ChannelQueue();
    const log: string[] = [];
    const first = job<string>(log, 'assign 1');
    const second = job<string>(log, 'assign 2');
    const runs: ReturnType<typeof job<RetentionOutcome>>[] = [];
    const retention = () => {
      const r = job<RetentionOutcome>(log, `retention ${runs.length + 1}`);
      runs.push(r);
      return r.run();
    };

    void queue.assignment(first.run);
    void queue.assignment(second.run);
    queue.retention(retention); // as the first assignment's activation queues it, while the second waits
    await settle();
    first.finish('1');
    await settle();
    queue.retention(retention); // the second's: the run queued above has not started, so it covers both
    second.finish('2');
    await settle();
    expect(log).toEqual(['assign 1 started', 'assign 2 started', 'retention 1 started']);

    queue.retention(retention); // one queued while a run is in flight runs after it
    runs[0]!.finish('done');
    await settle();
    expect(log.at(-1)).toBe('retention 2 started');
    runs[1]!.finish('done');
    await settle();
    expect(runs).toHaveLength(2);
    expect(queue.idle).toBe(true);
  });

  it('lets a retention run see a waiting assignment, and queues it again behind that assignment when it yields', async () => {
    const queue = new ChannelQueue();
    const log: string[] = [];
    const seen: boolean[] = [];
    const runs: ReturnType<typeof job<RetentionOutcome>>[] = [];
    const retention = () => {
      seen.push(queue.assignmentWaiting);
      const r = job<RetentionOutcome>(log, `retention ${runs.length + 1}`);
      runs.push(r);
      return r.run();
    };
    queue.retention(retention);
    await settle();
    expect(seen).toEqual([false]);

    const promotion = job<string>(log, 'promote');
    const answer = queue.assignment(promotion.run);
    expect(queue.assignmentWaiting).toBe(true);
    runs[0]!.finish('deferred'); // the run stopped between items for the promotion
    await settle();
    expect(log).toEqual(['retention 1 started', 'promote started']);
    expect(queue.assignmentWaiting).toBe(false);

    promotion.finish('promoted');
    await expect(answer).resolves.toBe('promoted');
    await settle();
    expect(log.at(-1)).toBe('retention 2 started');
    expect(queue.idle).toBe(false);
    runs[1]!.finish('done');
    await settle();
    expect(queue.idle).toBe(true);
  });
});
