// The channel's one queue: one job at a time, in the order they were queued. The jobs are the assignments (an
// approval's, a promotion, a rollback) and the retention runs that follow them (workflows/channel-retention.ts).
//
// Retention runs after an assignment activates, as a job of its own queued behind the update that made the
// assignment: the update returns once the images are active, and the next assignment waits only for the item in
// flight, since a run stops between items when an assignment is waiting (and is queued again behind it).
//
// Plain promises and no Temporal API, so a unit test drives it without a server (test/unit/channel-queue.test.ts);
// the order it starts jobs in is the order the workflow's commands are made in, so replays see the same.

/** How a retention run ended: done, or stopped between items for an assignment waiting its turn. */
export type RetentionOutcome = 'done' | 'deferred';

export class ChannelQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private jobs = 0;
  private waiting = 0;
  private retentionQueued = false;

  /** Nothing queued or running: the workflow may continue as new. */
  get idle(): boolean {
    return this.jobs === 0;
  }

  /** An assignment is queued and not started yet: a retention run yields to it between items. */
  get assignmentWaiting(): boolean {
    return this.waiting > 0;
  }

  /** An assignment: runs once every job queued before it has settled; answers what `assign` answers. */
  assignment<T>(assign: () => Promise<T>): Promise<T> {
    this.waiting++;
    return this.exclusive(() => {
      this.waiting--;
      return assign();
    });
  }

  /**
   * A retention run, behind the jobs queued so far. One run covers every assignment before it: another is queued
   * only once the queued one has started. A run that stopped for a waiting assignment is queued again behind it.
   */
  retention(run: () => Promise<RetentionOutcome>): void {
    if (this.retentionQueued) return;
    this.retentionQueued = true;
    void this.exclusive(async () => {
      this.retentionQueued = false;
      if ((await run()) === 'deferred') this.retention(run);
    });
  }

  private exclusive<T>(job: () => Promise<T>): Promise<T> {
    this.jobs++;
    const run = this.tail.then(job);
    const settled = () => {
      this.jobs--;
    };
    this.tail = run.then(settled, settled);
    return run;
  }
}
