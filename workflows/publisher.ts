// The publishing side of a release that must not lose or leave anything: publish activities bound to the staging
// worker that holds the artifact (and a clear failure when that worker is gone), a ledger of every place the
// release began to publish, the cleanup of those places when the release is cancelled, and the deletion of the
// staged artifacts when it ends. Workflow code: deterministic, activity types only.
import {
  ActivityCancellationType,
  CancellationScope,
  log,
  proxyActivities,
  TimeoutFailure,
} from '@temporalio/workflow';
import type { Arch, ReleaseDefinition, Target } from '../config/schema';
import type { ReleaseActivities } from '../activities';
import type { StagedArtifact } from '../activities/types';
import { describe } from './arch-build';
import { activityOptions } from './timeouts';

type Timeouts = ReleaseDefinition['timeouts'];

/** `<queue>@<workerId>` → the worker id (BOOTC_RELEASE_WORKER_ID of the worker that fetched). */
export const stagingWorkerOf = (queue: string) => (queue.includes('@') ? queue.slice(queue.lastIndexOf('@') + 1) : queue);

/**
 * Publish activities on the staging worker's own queue. Only that worker has the file, so a task nobody picks up
 * within `timeouts.stagingWait` means the worker is gone: Temporal fails it (schedule-to-start is never retried)
 * instead of leaving it queued forever. A cancelled publish is waited for, so nothing is created after cleanup.
 */
export function stagingActivities(t: Timeouts, stagingQueue: string, summary?: string) {
  return proxyActivities<ReleaseActivities>({
    ...activityOptions(t, { startToCloseTimeout: '12h', taskQueue: stagingQueue }),
    summary,
    scheduleToStartTimeout: t.stagingWait,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/** The failure text of a publish; names the staging worker when it never picked the task up. */
export function describePublishFailure(err: unknown, artifact: StagedArtifact, t: Timeouts): string {
  const cause = findTimeout(err);
  if (cause?.timeoutType === 'SCHEDULE_TO_START') {
    const worker = stagingWorkerOf(artifact.stagingQueue);
    return (
      `staging worker ${worker} (task queue ${artifact.stagingQueue}) did not pick the publish up within ${t.stagingWait}; ` +
      `it holds ${artifact.path}. Start that worker again (BOOTC_RELEASE_WORKER_ID=${worker}) and retry the target`
    );
  }
  return describe(err);
}

function findTimeout(err: unknown): TimeoutFailure | undefined {
  for (let e: unknown = err; e instanceof Error; e = (e as Error).cause) if (e instanceof TimeoutFailure) return e;
  return undefined;
}

interface Place {
  arch: Arch;
  targetName: string;
  target: Target;
  imageNames: string[];
  stagingQueue: string;
}

/** Every (architecture × target) the release began to publish to, and the publishes still running. */
export class PublishLedger {
  private readonly places = new Map<string, Place>();
  private readonly running = new Set<Promise<unknown>>();

  record(p: Omit<Place, 'imageNames'> & { imageName: string }): void {
    const key = `${p.arch}/${p.targetName}`;
    const place = this.places.get(key) ?? { ...p, imageNames: [] };
    if (!place.imageNames.includes(p.imageName)) place.imageNames.push(p.imageName);
    this.places.set(key, place);
  }

  track<T>(publish: Promise<T>): Promise<T> {
    this.running.add(publish);
    const forget = () => this.running.delete(publish);
    publish.then(forget, forget);
    return publish;
  }

  /**
   * After a cancel: waits for the running publishes to stop, then deletes what the release made at every place it
   * published to (by tag or name, so half-made snapshots, uploads and images go too). Non-cancellable.
   */
  async cleanUp(releaseId: string, t: Timeouts): Promise<string[]> {
    return await CancellationScope.nonCancellable(async () => {
      await Promise.allSettled([...this.running]);
      const problems: string[] = [];
      await Promise.all(
        [...this.places.values()].map(async (p) => {
          // A directory target lives on the staging worker's disk; clouds are reachable from any worker.
          const queue = p.target.kind === 'directory' ? p.stagingQueue : undefined;
          const acts = proxyActivities<ReleaseActivities>({
            ...activityOptions(t, { startToCloseTimeout: '2h', taskQueue: queue, maximumAttempts: 5 }),
            ...(queue ? { scheduleToStartTimeout: t.stagingWait } : {}),
          });
          try {
            const removed = await acts.deletePublished({
              target: p.target,
              scope: { releaseId, arch: p.arch, targetName: p.targetName, imageNames: p.imageNames },
            });
            log.info('cancelled release: deleted what it published', { target: p.targetName, arch: p.arch, removed });
          } catch (err) {
            problems.push(`${p.arch} → ${p.targetName}: ${describe(err)}`);
          }
        }),
      );
      return problems;
    });
  }
}

/** Deletes the staged artifacts on the workers that hold them, when the release has ended. Non-cancellable. */
export async function deleteStaged(releaseId: string, t: Timeouts, staged: StagedArtifact[]): Promise<string[]> {
  return await CancellationScope.nonCancellable(async () => {
    const byQueue = new Map<string, StagedArtifact[]>();
    for (const a of staged) byQueue.set(a.stagingQueue, [...(byQueue.get(a.stagingQueue) ?? []), a]);
    const problems: string[] = [];
    await Promise.all(
      [...byQueue].map(async ([queue, artifacts]) => {
        // A gone worker's files cannot be reached from here; the release does not wait long for it to come back.
        const acts = proxyActivities<ReleaseActivities>({
          ...activityOptions(t, { startToCloseTimeout: '10m', taskQueue: queue, maximumAttempts: 3 }),
          scheduleToStartTimeout: '5m',
        });
        try {
          await acts.deleteStagedArtifacts({ releaseId, artifacts });
        } catch (err) {
          problems.push(`staged artifacts on worker ${stagingWorkerOf(queue)} (${artifacts.map((a) => a.path).join(', ')}): ${describe(err)}`);
        }
      }),
    );
    return problems;
  });
}
