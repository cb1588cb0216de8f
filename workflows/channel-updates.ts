// The channel's updates: a release's approval assigns its images (assign), people promote what another channel has,
// roll back to an earlier assignment, and mark the current images tested. Each assignment then activates the images
// on the channel's activation targets (the `activate` activity, which merges), in its turn in the channel's queue.
//
// Update validators refuse at once what the channel can judge from its state and the definition it resolved last
// (approver, signature, requirement, rollback target). Each handler then resolves the definition afresh and checks
// again before anything is activated, and a promotion reads FROM's assignment (minAge, tested) from FROM's workflow.
// The rules they apply are pure (workflows/channel-rules.ts); this is the workflow code that calls them.
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { ReleaseDefinition } from '../config/schema';
import type { ReleaseActivities } from '../activities';
import type { ChannelAssignment, ReleaseApprovalView } from '../activities/channels';
import {
  assignUpdate,
  cancelAssignmentSignal,
  markTestedUpdate,
  promoteUpdate,
  rollbackUpdate,
  type AssignRequest,
  type MarkTestedRequest,
  type PromoteRequest,
  type RollbackRequest,
} from './channel-messages';
import type { ChannelQueue } from './channel-queue';
import { applyChannelRetention, restoreBeforeRollback, RETENTION_PATCH, type RetentionChannel } from './channel-retention';
import {
  activationPlan,
  actorProblem,
  alreadyCurrentProblem,
  goneImagesProblem,
  markTestedProblem,
  nextSeq,
  promotionProblem,
  releaseProblem,
  rollbackTarget,
  withAssignment,
  withFailure,
  withTested,
} from './channel-rules';
import type { TrackedChannel } from './channel-state';
import { activationOptions } from './timeouts';
import { FailureType } from '../activities/failures';

const lookup = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.Config] },
});

/** A refusal: the update fails with this reason, and nothing was activated. */
const refused = (reason: string) => ApplicationFailure.nonRetryable(reason, FailureType.ChannelRequestRefused);

/** A validator's refusal: the update is rejected before it is accepted. */
const check = (problem: string | undefined) => {
  if (problem) throw new Error(problem);
};

function failureText(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause && (e as Error).name === 'ActivityFailure') e = e.cause as typeof e;
  return e?.message ?? String(err);
}

/** The handlers and validators of the channel's updates, and the one step every assignment ends in: activate. */
export class ChannelUpdates {
  // Assignments from releases that were cancelled: refused when their turn comes, or stopped while they activate.
  private readonly cancelledReleases = new Set<string>();
  private readonly running = new Map<string, CancellationScope>();
  /** The channel as retention sees it: the state, and whether an assignment waits for the run to yield. */
  private readonly retentionChannel: RetentionChannel;

  constructor(
    private readonly ch: TrackedChannel,
    private readonly queue: ChannelQueue,
  ) {
    this.retentionChannel = {
      state: () => ch.state,
      set: (s) => {
        ch.state = s;
        ch.refresh();
      },
      assignmentWaiting: () => queue.assignmentWaiting,
    };
  }

  /** A release's approval: the images it chose, as the release workflow itself reports them. */
  async assign(req: AssignRequest): Promise<ChannelAssignment> {
    const { ch } = this;
    const def = await this.definitionNow(req.definition);
    const release: ReleaseApprovalView | undefined = await lookup.releaseApproval({ releaseId: req.releaseId });
    const problem = releaseProblem(def, ch.channel, req.releaseId, release);
    if (problem) throw refused(problem);
    if (this.cancelledReleases.has(req.releaseId)) throw refused(`release ${req.releaseId} was cancelled before its images were activated`);
    const at = new Date().toISOString();
    return await this.activate(def, { seq: nextSeq(ch.state), kind: 'approve', releaseId: req.releaseId, images: release!.chosen, by: release!.by!, at, reason: release!.comment });
  }

  /** What FROM has now, once FROM's assignment meets this channel's requirement (minAge, tested). */
  async promote(req: PromoteRequest, acceptedAt: number): Promise<ChannelAssignment> {
    const { ch } = this;
    const def = await this.definitionNow();
    const upfront = promotionProblem(def, ch.channel, req.from, undefined, acceptedAt) ?? actorProblem(def, 'promote', ch.channel, req, { from: req.from }, acceptedAt);
    if (upfront) throw refused(upfront);
    const source = (await lookup.channelStateOf({ definition: ch.state.definition, channel: req.from }))?.current;
    if (!source) throw refused(`${req.from} has no images to promote`);
    const problem = promotionProblem(def, ch.channel, req.from, source, Date.now()) ?? alreadyCurrentProblem(ch.state, ch.channel, req.from, source);
    if (problem) throw refused(problem);
    const at = new Date().toISOString();
    return await this.activate(def, { seq: nextSeq(ch.state), kind: 'promote', from: req.from, releaseId: source.releaseId, images: source.images, by: req.by, at, reason: req.reason });
  }

  /** An earlier assignment's images again; what retention only deprecated of them is re-enabled first. */
  async rollback(req: RollbackRequest, acceptedAt: number): Promise<ChannelAssignment> {
    const { ch } = this;
    const def = await this.definitionNow();
    const problem = actorProblem(def, 'rollback', ch.channel, req, { release: req.to }, acceptedAt);
    if (problem) throw refused(problem);
    const target = rollbackTarget(ch.state, req.to);
    if (typeof target === 'string') throw refused(target);
    const seq = nextSeq(ch.state);
    if (patched(RETENTION_PATCH)) {
      const gone = await restoreBeforeRollback(this.retentionChannel, def, seq, target);
      const missing = goneImagesProblem(target.releaseId, gone);
      if (missing) throw refused(missing);
    }
    const at = new Date().toISOString();
    const { releaseId, images } = target;
    return await this.activate(def, { seq, kind: 'rollback', releaseId, images, by: req.by, at, reason: req.reason, restores: target.seq });
  }

  /** The current assignment, marked tested, unless another became current while the definition was resolved. */
  async markTested(req: MarkTestedRequest, acceptedAt: number): Promise<ChannelAssignment> {
    const { ch } = this;
    const seq = ch.state.current?.seq;
    const def = await this.definitionNow();
    const problem = actorProblem(def, 'mark-tested', ch.channel, req, { release: req.releaseId }, acceptedAt) ?? markTestedProblem(ch.state, ch.channel, req.releaseId);
    if (problem) throw refused(problem);
    if (ch.state.current?.seq !== seq) throw refused(`${ch.channel} got another assignment meanwhile; look at it, then mark it again`);
    ch.state = withTested(ch.state, req.by, new Date().toISOString());
    ch.refresh();
    return ch.state.current!;
  }

  /** The release was cancelled: its assignment is refused when its turn comes, or stopped while it activates. */
  cancel(releaseId: string): void {
    this.cancelledReleases.add(releaseId);
    this.running.get(releaseId)?.cancel();
  }

  validatePromote(req: PromoteRequest): void {
    check(req && typeof req.from === 'string' && req.from ? undefined : 'from: required (the channel to promote from)');
    if (this.ch.resolved) check(promotionProblem(this.ch.resolved, this.ch.channel, req.from, undefined, Date.now()));
    this.actorCheck('promote', req, { from: req.from });
  }

  validateRollback(req: RollbackRequest): void {
    this.actorCheck('rollback', req, { release: req?.to });
    const target = rollbackTarget(this.ch.state, req.to);
    check(typeof target === 'string' ? target : undefined);
  }

  validateMarkTested(req: MarkTestedRequest): void {
    this.actorCheck('mark-tested', req, { release: req?.releaseId });
    check(markTestedProblem(this.ch.state, this.ch.channel, req.releaseId));
  }

  // Without a definition resolved yet (a workflow just started by this very update) the handler checks everything.
  private actorCheck(action: Parameters<typeof actorProblem>[1], req: Parameters<typeof actorProblem>[3], fields: Parameters<typeof actorProblem>[4]): void {
    const { resolved, channel } = this.ch;
    check(resolved ? actorProblem(resolved, action, channel, req, fields, Date.now()) : typeof req?.by === 'string' && req.by ? undefined : 'by: required');
  }

  private async definitionNow(sent?: ReleaseDefinition): Promise<ReleaseDefinition> {
    const { ch } = this;
    ch.resolved = await lookup.channelDefinition({ name: ch.state.definition, sent: sent ?? ch.resolved });
    return ch.resolved;
  }

  /** Activates assignment `a` on the channel's targets; once active it is current, and retention is queued behind it. */
  private async activate(def: ReleaseDefinition, a: ChannelAssignment): Promise<ChannelAssignment> {
    const { ch } = this;
    ch.state = { ...ch.state, activating: a };
    ch.refresh();
    const scope = new CancellationScope();
    if (a.kind === 'approve') this.running.set(a.releaseId, scope);
    try {
      const record = await scope.run(() =>
        proxyActivities<ReleaseActivities>(activationOptions(def, ch.channel)).activate({
          plan: activationPlan(def, a),
          channel: ch.channel,
          candidates: a.images,
          approvedBy: a.by,
          assignment: { seq: a.seq, kind: a.kind },
        }),
      );
      const done: ChannelAssignment = { ...a, activation: record, activatedAt: new Date().toISOString() };
      ch.state = withAssignment(ch.state, done);
      // The definition resolved when the run starts: an update may resolve a newer one meanwhile.
      if (patched(RETENTION_PATCH)) this.queue.retention(() => applyChannelRetention(this.retentionChannel, ch.resolved!));
      return done;
    } catch (err) {
      const error = isCancellation(err) ? 'cancelled with its release' : failureText(err);
      ch.state = withFailure(ch.state, a, error);
      throw ApplicationFailure.nonRetryable(`channel ${ch.channel}: activating release ${a.releaseId} failed: ${error}`, FailureType.ActivationFailed);
    } finally {
      this.running.delete(a.releaseId);
      ch.refresh();
    }
  }
}

/** The updates of a running channel: their handlers and validators, and the signal of a cancelled release. */
export function installChannelUpdates(ch: TrackedChannel, queue: ChannelQueue): ChannelUpdates {
  const updates = new ChannelUpdates(ch, queue);
  setHandler(
    assignUpdate,
    (req) => {
      const done = ch.state.history.find((a) => a.kind === 'approve' && a.releaseId === req.releaseId);
      return done ?? queue.assignment(() => updates.assign(req));
    },
    {
      description: "Internal: a release's approval assigns its chosen images (sent by the release's assignToChannel activity).",
      validator: (req: AssignRequest) => check(req && typeof req.releaseId === 'string' && req.releaseId ? undefined : 'releaseId: required'),
    },
  );
  setHandler(
    promoteUpdate,
    (req) => {
      const acceptedAt = Date.now();
      return queue.assignment(() => updates.promote(req, acceptedAt));
    },
    {
      description: 'Assign what another channel has now: {"from": "staging", "by": "name"}; `bootc-release channel promote FROM TO`.',
      validator: (req: PromoteRequest) => updates.validatePromote(req),
    },
  );
  setHandler(
    rollbackUpdate,
    (req) => {
      const acceptedAt = Date.now();
      return queue.assignment(() => updates.rollback(req, acceptedAt));
    },
    {
      description: 'Assign an earlier assignment again: {"by": "name"} for the previous release, {"by": "...", "to": "<release id>"} for a named one.',
      validator: (req: RollbackRequest) => updates.validateRollback(req),
    },
  );
  setHandler(markTestedUpdate, (req) => updates.markTested(req, Date.now()), {
    description: 'Mark the current images tested: {"by": "name"}; a channel whose requires says tested takes them only then.',
    validator: (req: MarkTestedRequest) => updates.validateMarkTested(req),
  });
  setHandler(cancelAssignmentSignal, ({ releaseId }) => updates.cancel(releaseId), {
    description: "Internal: a release was cancelled while its images waited or were activated here; that activation stops.",
  });
  return updates;
}
