// One channel of one definition (staging, production, ...): a long-lived entity workflow, id
// `<definition>.channel.<channel>`, whose state is the current assignment and every earlier one. A release's
// approval assigns its images here; people promote from another channel, roll back, and mark images tested. Each
// assignment runs the channel's activation targets (the `activate` activity, which merges), one at a time.
//
// Update validators refuse at once what the channel can judge from its state and the definition it resolved last
// (approver, signature, requirement, rollback target). Each handler then resolves the definition afresh and checks
// again before anything is activated, and a promotion reads FROM's assignment (minAge, tested) from FROM's workflow.
//
// Retention (workflows/channel-retention.ts) runs after an assignment activates, as a job of its own queued behind
// the update that made the assignment: the update returns once the images are active, and the next assignment
// waits only for the item in flight, since a run stops between items when one is waiting (and runs again after it).
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ReleaseDefinition } from '../config/schema';
import type { ReleaseActivities } from '../activities';
import type { ChannelAssignment, ChannelInput, ChannelState, ReleaseApprovalView } from '../activities/channels';
import { channelDetails, channelMemo } from './channel-details';
import {
  assignUpdate,
  cancelAssignmentSignal,
  channelStateQuery,
  markTestedUpdate,
  promoteUpdate,
  rollbackUpdate,
  type AssignRequest,
  type MarkTestedRequest,
  type PromoteRequest,
  type RollbackRequest,
} from './channel-messages';
import {
  activationPlan,
  actorProblem,
  nextSeq,
  promotionProblem,
  releaseProblem,
  rollbackTarget,
  withAssignment,
  withTested,
} from './channel-rules';
import { applyChannelRetention, restoreBeforeRollback, RETENTION_PATCH, type RetentionChannel } from './channel-retention';
import { releaseNameKey } from './search-attributes';
import { activationOptions } from './timeouts';
import { FailureType } from '../activities/failures';

/** Continue as new past this many events, unless the input sets another bound. */
export const CHANNEL_MAX_HISTORY_EVENTS = 2000;

const lookup = proxyActivities<ReleaseActivities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.Config] },
});

/** A refusal: the update fails with this reason, and nothing was activated. */
const refused = (reason: string) => ApplicationFailure.nonRetryable(reason, FailureType.ChannelRequestRefused);

function failureText(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause && (e as Error).name === 'ActivityFailure') e = e.cause as typeof e;
  return e?.message ?? String(err);
}

export async function imageChannel(input: ChannelInput): Promise<void> {
  const { channel } = input;
  let state: ChannelState = input.state ?? { definition: input.definition, channel, history: [], retention: [] };
  let resolved: ReleaseDefinition | undefined = input.resolved;
  const maxEvents = input.maxHistoryEvents ?? CHANNEL_MAX_HISTORY_EVENTS;

  const refresh = () => {
    setCurrentDetails(channelDetails(state, resolved));
    upsertMemo(channelMemo(state));
  };
  upsertSearchAttributes([{ key: releaseNameKey, value: input.definition }]);
  refresh();

  // One job at a time, in the order they were queued: assignments, and the retention runs that follow them.
  let tail: Promise<unknown> = Promise.resolve();
  let jobs = 0;
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    jobs++;
    const run = tail.then(fn);
    const settled = () => {
      jobs--;
    };
    tail = run.then(settled, settled);
    return run;
  }
  // Assignments queued and not started yet: a retention run yields to them between items.
  let waiting = 0;
  function assignment<T>(fn: () => Promise<T>): Promise<T> {
    waiting++;
    return exclusive(() => {
      waiting--;
      return fn();
    });
  }

  const retentionChannel: RetentionChannel = {
    state: () => state,
    set: (s) => {
      state = s;
      refresh();
    },
    assignmentWaiting: () => waiting > 0,
  };
  // One run covers every assignment before it: a second is queued only once the first has started.
  let retentionQueued = false;
  function queueRetention(): void {
    if (retentionQueued) return;
    retentionQueued = true;
    void exclusive(async () => {
      retentionQueued = false;
      if (resolved && (await applyChannelRetention(retentionChannel, resolved)) === 'deferred') queueRetention();
    });
  }

  async function definitionNow(sent?: ReleaseDefinition): Promise<ReleaseDefinition> {
    resolved = await lookup.channelDefinition({ name: state.definition, sent: sent ?? resolved });
    return resolved;
  }

  // Assignments from releases that were cancelled: refused when their turn comes, or stopped while they activate.
  const cancelledReleases = new Set<string>();
  const running = new Map<string, CancellationScope>();

  async function activate(def: ReleaseDefinition, a: ChannelAssignment): Promise<ChannelAssignment> {
    state = { ...state, activating: a };
    refresh();
    const scope = new CancellationScope();
    if (a.kind === 'approve') running.set(a.releaseId, scope);
    try {
      const record = await scope.run(() =>
        proxyActivities<ReleaseActivities>(activationOptions(def, channel)).activate({
          plan: activationPlan(def, a),
          channel,
          candidates: a.images,
          approvedBy: a.by,
          assignment: { seq: a.seq, kind: a.kind },
        }),
      );
      const done: ChannelAssignment = { ...a, activation: record, activatedAt: new Date().toISOString() };
      state = withAssignment(state, done);
      if (patched(RETENTION_PATCH)) queueRetention();
      return done;
    } catch (err) {
      const error = isCancellation(err) ? 'cancelled with its release' : failureText(err);
      const { seq, kind, releaseId, by, at, from } = a;
      state = { ...state, activating: undefined, lastFailure: { seq, kind, releaseId, by, at, from, error } };
      throw ApplicationFailure.nonRetryable(`channel ${channel}: activating release ${releaseId} failed: ${error}`, FailureType.ActivationFailed);
    } finally {
      running.delete(a.releaseId);
      refresh();
    }
  }

  async function assign(req: AssignRequest): Promise<ChannelAssignment> {
    const def = await definitionNow(req.definition);
    const release: ReleaseApprovalView | undefined = await lookup.releaseApproval({ releaseId: req.releaseId });
    const problem = releaseProblem(def, channel, req.releaseId, release);
    if (problem) throw refused(problem);
    if (cancelledReleases.has(req.releaseId)) throw refused(`release ${req.releaseId} was cancelled before its images were activated`);
    const at = new Date().toISOString();
    return await activate(def, { seq: nextSeq(state), kind: 'approve', releaseId: req.releaseId, images: release!.chosen, by: release!.by!, at, reason: release!.comment });
  }

  async function promote(req: PromoteRequest, acceptedAt: number): Promise<ChannelAssignment> {
    const def = await definitionNow();
    const upfront = promotionProblem(def, channel, req.from, undefined, acceptedAt) ?? actorProblem(def, 'promote', channel, req, { from: req.from }, acceptedAt);
    if (upfront) throw refused(upfront);
    const source = (await lookup.channelStateOf({ definition: state.definition, channel: req.from }))?.current;
    if (!source) throw refused(`${req.from} has no images to promote`);
    const problem = promotionProblem(def, channel, req.from, source, Date.now());
    if (problem) throw refused(problem);
    if (state.current?.releaseId === source.releaseId && JSON.stringify(state.current.images) === JSON.stringify(source.images))
      throw refused(`${channel} already has release ${source.releaseId}, the one ${req.from} has`);
    const at = new Date().toISOString();
    return await activate(def, { seq: nextSeq(state), kind: 'promote', from: req.from, releaseId: source.releaseId, images: source.images, by: req.by, at, reason: req.reason });
  }

  async function rollback(req: RollbackRequest, acceptedAt: number): Promise<ChannelAssignment> {
    const def = await definitionNow();
    const problem = actorProblem(def, 'rollback', channel, req, { release: req.to }, acceptedAt);
    if (problem) throw refused(problem);
    const target = rollbackTarget(state, req.to);
    if (typeof target === 'string') throw refused(target);
    const seq = nextSeq(state);
    if (patched(RETENTION_PATCH)) {
      const gone = await restoreBeforeRollback(retentionChannel, def, seq, target);
      if (gone.length)
        throw refused(
          `cannot roll back to release ${target.releaseId}: ${gone.map((g) => `${g.target} ${g.arch}${g.region ? ` ${g.region}` : ''} ${g.imageId}`).join(', ')} no longer exist; roll back to a release within retention.keep`,
        );
    }
    const at = new Date().toISOString();
    const { releaseId, images } = target;
    return await activate(def, { seq, kind: 'rollback', releaseId, images, by: req.by, at, reason: req.reason, restores: target.seq });
  }

  async function markTested(req: MarkTestedRequest, acceptedAt: number): Promise<ChannelAssignment> {
    const seq = state.current?.seq;
    const def = await definitionNow();
    const problem = actorProblem(def, 'mark-tested', channel, req, { release: req.releaseId }, acceptedAt) ?? testedProblem(req);
    if (problem) throw refused(problem);
    if (state.current?.seq !== seq) throw refused(`${channel} got another assignment meanwhile; look at it, then mark it again`);
    state = withTested(state, req.by, new Date().toISOString());
    refresh();
    return state.current!;
  }

  const testedProblem = (req: MarkTestedRequest) => {
    if (!state.current) return `${channel} has no images to mark tested`;
    if (req.releaseId !== undefined && req.releaseId !== state.current.releaseId)
      return `${channel} has release ${state.current.releaseId}, not ${req.releaseId}`;
    return undefined;
  };
  const check = (problem: string | undefined) => {
    if (problem) throw new Error(problem);
  };
  // Without a definition resolved yet (a workflow just started by this very update) the handler checks everything.
  const actorCheck = (action: Parameters<typeof actorProblem>[1], req: Parameters<typeof actorProblem>[3], fields: Parameters<typeof actorProblem>[4]) =>
    check(resolved ? actorProblem(resolved, action, channel, req, fields, Date.now()) : typeof req?.by === 'string' && req.by ? undefined : 'by: required');

  setHandler(channelStateQuery, () => state, {
    description: 'The channel: its current images per target, architecture and region, and every assignment before (who, when, why, what it replaced).',
  });
  setHandler(
    assignUpdate,
    (req) => {
      const done = state.history.find((a) => a.kind === 'approve' && a.releaseId === req.releaseId);
      return done ?? assignment(() => assign(req));
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
      return assignment(() => promote(req, acceptedAt));
    },
    {
      description: 'Assign what another channel has now: {"from": "staging", "by": "name"}; `bootc-release channel promote FROM TO`.',
      validator: (req: PromoteRequest) => {
        check(req && typeof req.from === 'string' && req.from ? undefined : 'from: required (the channel to promote from)');
        if (resolved) check(promotionProblem(resolved, channel, req.from, undefined, Date.now()));
        actorCheck('promote', req, { from: req.from });
      },
    },
  );
  setHandler(
    rollbackUpdate,
    (req) => {
      const acceptedAt = Date.now();
      return assignment(() => rollback(req, acceptedAt));
    },
    {
      description: 'Assign an earlier assignment again: {"by": "name"} for the previous release, {"by": "...", "to": "<release id>"} for a named one.',
      validator: (req: RollbackRequest) => {
        actorCheck('rollback', req, { release: req?.to });
        const target = rollbackTarget(state, req.to);
        check(typeof target === 'string' ? target : undefined);
      },
    },
  );
  setHandler(
    markTestedUpdate,
    (req) => markTested(req, Date.now()),
    {
      description: 'Mark the current images tested: {"by": "name"}; a channel whose requires says tested takes them only then.',
      validator: (req: MarkTestedRequest) => {
        actorCheck('mark-tested', req, { release: req?.releaseId });
        check(testedProblem(req));
      },
    },
  );
  setHandler(
    cancelAssignmentSignal,
    ({ releaseId }) => {
      cancelledReleases.add(releaseId);
      running.get(releaseId)?.cancel();
    },
    { description: "Internal: a release was cancelled while its images waited or were activated here; that activation stops." },
  );

  // An entity lives forever: start afresh, carrying the state (and its last RETENTION_RECORDS_KEPT retention
  // records), before the history grows large; never in the middle of an assignment or a retention run.
  const tooLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > maxEvents;
  await condition(() => tooLong() && allHandlersFinished() && jobs === 0);
  await continueAsNew<typeof imageChannel>({ ...input, state, resolved });
}
