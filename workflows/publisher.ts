// The publishing side of a release, which must not lose or leave anything: the publish of each architecture to its
// targets, the failures people can retry (`release retry`), a ledger of every place the release began to publish
// (cleaned up when the release is cancelled), and the deletion of the staged artifacts when it ends.
//
// The publisher itself (ReleasePublisher) is given the activity calls it makes, so a unit test can drive it without
// a Temporal server; installPublisher binds it to the activities on the staging worker's queue and to the retry
// update. Workflow code: deterministic, activity types only.
import {
  ActivityCancellationType,
  CancellationScope,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  TimeoutFailure,
  upsertMemo,
} from '@temporalio/workflow';
import type { Arch, ReleaseDefinition, ReleasePlan, Target } from '../config/schema';
import type { ReleaseActivities } from '../activities';
import type { Candidate, PublishRequest, StagedArtifact } from '../activities/types';
import { describe } from './arch-build';
import { retryPublishUpdate, type PublishFailure, type ReleaseStatus, type RetryRequest } from './messages';
import { artifactsFor } from './release-rules';
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

/** One (architecture × target) the release began to publish to, with the image names it used there. */
export interface PublishPlace {
  arch: Arch;
  targetName: string;
  target: Target;
  imageNames: string[];
  stagingQueue: string;
}

/** Every place the release began to publish to, and the publishes still running. */
export class PublishLedger {
  private readonly byKey = new Map<string, PublishPlace>();
  private readonly running = new Set<Promise<unknown>>();

  get places(): PublishPlace[] {
    return [...this.byKey.values()];
  }

  record(p: Omit<PublishPlace, 'imageNames'> & { imageName: string }): void {
    const key = `${p.arch}/${p.targetName}`;
    const place = this.byKey.get(key) ?? { ...p, imageNames: [] };
    if (!place.imageNames.includes(p.imageName)) place.imageNames.push(p.imageName);
    this.byKey.set(key, place);
  }

  track<T>(publish: Promise<T>): Promise<T> {
    this.running.add(publish);
    const forget = () => this.running.delete(publish);
    publish.then(forget, forget);
    return publish;
  }

  /**
   * After a cancel: waits for the running publishes to stop, then deletes what the release made at every place it
   * published to; what could not be deleted, one line per place. The caller runs it non-cancellable.
   */
  async cleanUp(deletePublished: (place: PublishPlace) => Promise<void>): Promise<string[]> {
    await Promise.allSettled([...this.running]);
    const problems: string[] = [];
    await Promise.all(
      this.places.map(async (p) => {
        try {
          await deletePublished(p);
        } catch (err) {
          problems.push(`${p.arch} → ${p.targetName}: ${describe(err)}`);
        }
      }),
    );
    return problems;
  }
}

/** What the publisher uses of its release and of Temporal; a test passes its own activity calls. */
export interface PublisherDeps {
  releaseId: string;
  status: ReleaseStatus;
  /** The resolved plan: nothing publishes before it is. */
  plan: () => ReleasePlan;
  /** The publish activity of one artifact, on the staging worker that holds it; `summary` is shown in the Web UI. */
  publishArtifact: (request: PublishRequest, summary: string) => Promise<Candidate[]>;
  /** The deletePublished activity: everything the release made at one place, finished or half-made. */
  deletePublished: (place: PublishPlace) => Promise<void>;
  /** New candidates were listed: the memo and the Web UI show them. */
  candidatesChanged: () => void;
}

/** The failures a retry request names: its target, on its architecture or on all. */
const named = (req: RetryRequest) => (f: PublishFailure) => f.target === req.target && (!req.arch || f.arch === req.arch);

/** Publishes each architecture's artifacts to its targets, records what failed, and publishes that again on request. */
export class ReleasePublisher {
  readonly ledger = new PublishLedger();
  private readonly byArch: Partial<Record<Arch, StagedArtifact[]>> = {};
  private publishing = 0;

  constructor(private readonly deps: PublisherDeps) {}

  /** No publish is running (a retried one finishes before the release goes on). */
  idle(): boolean {
    return this.publishing === 0;
  }

  /** The artifacts of every architecture built so far, on the workers that staged them. */
  staged(): StagedArtifact[] {
    return Object.values(this.byArch).flat();
  }

  failed(arch: Arch): boolean {
    return this.deps.status.publishFailures.some((f) => f.arch === arch);
  }

  /** Publishes one architecture's artifacts to each of its targets at once; a failure is recorded, not thrown. */
  publishArch(arch: Arch, artifacts: StagedArtifact[]): Promise<unknown> {
    this.byArch[arch] = artifacts;
    return Promise.all((this.deps.plan().definition.architectures[arch]?.targets ?? []).map((t) => this.publishTo(arch, t)));
  }

  /** The validator of `release retry`: why the request cannot be retried now, or undefined. */
  retryProblem(req: RetryRequest): string | undefined {
    const { status } = this.deps;
    if (!['awaiting-approval', 'building'].includes(status.stage))
      return `release is ${status.stage}: only a release that is building or awaiting approval can retry a target`;
    if (!status.publishFailures.some(named(req)))
      return `target ${req.target}${req.arch ? ` (${req.arch})` : ''} has no failed publish to retry`;
    return undefined;
  }

  /** Publishes again what failed at the named target; the answer is the status once those publishes ended. */
  async retry(req: RetryRequest): Promise<ReleaseStatus> {
    const { status } = this.deps;
    const failures = status.publishFailures.filter(named(req));
    status.publishFailures = status.publishFailures.filter((f) => !failures.includes(f));
    await Promise.all(failures.map((f) => this.publishTo(f.arch, f.target)));
    return status;
  }

  /** After a cancel: deletes what the release published anywhere (see PublishLedger.cleanUp). */
  cleanUp(): Promise<string[]> {
    return this.ledger.cleanUp(this.deps.deletePublished);
  }

  private async publishTo(arch: Arch, targetName: string): Promise<void> {
    const { status } = this.deps;
    const { definition, stamp } = this.deps.plan();
    const target = definition.targets[targetName]!;
    const artifacts = artifactsFor(this.byArch[arch] ?? [], target.kind);
    if (artifacts.length === 0) {
      status.publishFailures.push({ arch, target: targetName, error: `no ${target.kind} artifact was built for ${arch}` });
      return;
    }
    this.publishing++;
    let artifact = artifacts[0]!;
    try {
      for (artifact of artifacts) {
        const suffix = artifacts.length > 1 ? `-${artifact.type}` : '';
        const imageName = `${definition.name}-${arch}-${stamp}${suffix}`;
        this.ledger.record({ arch, targetName, target, imageName, stagingQueue: artifact.stagingQueue });
        const summary = `publish ${arch} ${artifact.type} to ${targetName} (${target.kind}) as ${imageName}`;
        const request = { releaseId: this.deps.releaseId, arch, targetName, target, artifact, imageName };
        const found = await this.ledger.track(this.deps.publishArtifact(request, summary));
        status.candidates.push(...found);
        this.deps.candidatesChanged();
      }
    } catch (err) {
      if (isCancellation(err)) throw err;
      status.publishFailures.push({ arch, target: targetName, error: describePublishFailure(err, artifact, definition.timeouts) });
    } finally {
      this.publishing--;
    }
  }
}


/** The publisher of a running release: the activities on the staging workers' queues, and the retry update. */
export function installPublisher(o: Pick<PublisherDeps, 'releaseId' | 'status' | 'plan'> & { refresh: () => void }): ReleasePublisher {
  const { releaseId, status } = o;
  const timeouts = () => o.plan().definition.timeouts;
  const publisher = new ReleasePublisher({
    ...o,
    publishArtifact: (request, summary) => stagingActivities(timeouts(), request.artifact.stagingQueue, summary).publishArtifact(request),
    deletePublished: (place) => deletePublished(releaseId, timeouts(), place),
    candidatesChanged: () => {
      upsertMemo({ candidates: status.candidates });
      o.refresh();
    },
  });
  setHandler(retryPublishUpdate, (req) => publisher.retry(req), {
    description: 'Publish again to a target that failed ({"target": "name", "arch"?: "x86_64"}); used by `bootc-release release retry`.',
    validator: (req: RetryRequest) => {
      const problem = publisher.retryProblem(req);
      if (problem) throw new Error(problem);
    },
  });
  return publisher;
}

/** Deletes what the release made at one place (by tag or name, so half-made snapshots, uploads and images go too). */
async function deletePublished(releaseId: string, t: Timeouts, p: PublishPlace): Promise<void> {
  // A directory target lives on the staging worker's disk; clouds are reachable from any worker.
  const queue = p.target.kind === 'directory' ? p.stagingQueue : undefined;
  const acts = proxyActivities<ReleaseActivities>({
    ...activityOptions(t, { startToCloseTimeout: '2h', taskQueue: queue, maximumAttempts: 5 }),
    ...(queue ? { scheduleToStartTimeout: t.stagingWait } : {}),
  });
  const removed = await acts.deletePublished({
    target: p.target,
    scope: { releaseId, arch: p.arch, targetName: p.targetName, imageNames: p.imageNames },
  });
  log.info('cancelled release: deleted what it published', { target: p.targetName, arch: p.arch, removed });
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
