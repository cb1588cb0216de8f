// Channels seen from activities. The release's approval assigns its images to a channel: `assignToChannel` sends the
// channel workflow an update (starting the workflow if it does not run yet) and waits for the activation, heartbeating.
// The channel workflow in turn resolves its definition here, reads what a release approved, and reads another
// channel's state (for a promotion). Temporal is reached through ChannelGateway, which worker/channel-gateway.ts
// implements with the worker's client: activities never import workflow code, where the messages are defined.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { ConfigError, findDefinition, parseDefinition } from '../config/load';
import type { ReleaseDefinition } from '../config/schema';
import type { AssignRequest, ChannelAssignment, ChannelState, ReleaseApprovalView } from './channels';
import { withHeartbeats } from './runtime/heartbeat';
import { activityContext } from './runtime/heartbeat';
import type { ActivationRecord } from './types';
import { FailureType } from './failures';

/** What channel activities ask Temporal. Refusals come back as non-retryable ApplicationFailures. */
export interface ChannelGateway {
  /** Update `assign` on the channel's workflow, started on `taskQueue` when none runs; resolves once it is activated. */
  assign(o: { definition: string; channel: string; taskQueue: string; request: AssignRequest }): Promise<ChannelAssignment>;
  /** The release was cancelled: the channel stops (or never starts) activating its images. */
  cancelAssign(o: { definition: string; channel: string; releaseId: string }): Promise<void>;
  /** The channel's state as its workflow answers it; undefined when it never ran. */
  state(definition: string, channel: string): Promise<ChannelState | undefined>;
  /** What a release workflow says about its decision; undefined when Temporal knows no workflow of that id. */
  release(releaseId: string): Promise<ReleaseApprovalView | undefined>;
}

export interface ChannelActivityDeps {
  definitionsDir: string;
  allowInlineDefinitions?: boolean;
  /** Absent on a worker wired without a Temporal client (some tests): channel activities then fail, saying so. */
  gateway?: ChannelGateway;
}

export interface AssignToChannelInput {
  releaseId: string;
  channel: string;
  /** The release's definition (its plan's): the channel uses it only where inline definitions are allowed. */
  definition: ReleaseDefinition;
  /** Where the channel workflow runs when it has to be started: the release's own task queue. */
  taskQueue: string;
}

/** Resolves when the activity is cancelled (a release cancelled while its images are being activated). */
const aborted = (signal: AbortSignal | undefined) =>
  new Promise<'cancelled'>((resolve) => {
    if (signal?.aborted) resolve('cancelled');
    else signal?.addEventListener('abort', () => resolve('cancelled'), { once: true });
  });

export function createChannelActivities(deps: ChannelActivityDeps) {
  const gateway = (): ChannelGateway => {
    if (!deps.gateway) throw ApplicationFailure.nonRetryable('this worker was wired without a Temporal client, so it cannot reach channels', FailureType.Config);
    return deps.gateway;
  };

  /** The release's activation step: assign the approved images to the channel, and wait until they are active. */
  async function assignToChannel(input: AssignToChannelInput): Promise<ActivationRecord> {
    const ctx = activityContext();
    const signal = ctx?.cancellationSignal;
    const where = { definition: input.definition.name, channel: input.channel };
    // Heartbeats well inside the definition's heartbeat timeout: a cancel of the release reaches us through them.
    const every = Math.max(500, Math.min(10_000, (ctx?.info.heartbeatTimeoutMs ?? 30_000) / 3));
    const assigned = gateway().assign({ ...where, taskQueue: input.taskQueue, request: { releaseId: input.releaseId, definition: input.definition } });
    const outcome = await withHeartbeats(() => Promise.race([assigned, aborted(signal)]), every);
    if (outcome === 'cancelled') {
      // Stop the channel's activation, and wait until it has stopped (its hook killed), as a direct activation did.
      await gateway().cancelAssign({ ...where, releaseId: input.releaseId });
      await withHeartbeats(() => assigned.then(() => undefined, () => undefined), every);
      throw new CancelledFailure(`the release was cancelled while channel ${input.channel} activated its images`);
    }
    if (!outcome.activation) throw ApplicationFailure.nonRetryable(`channel ${input.channel} reports no activation for release ${input.releaseId}`, FailureType.ActivationFailed);
    return outcome.activation;
  }

  /**
   * The definition a channel acts on, read again for every assignment: the worker's own of that name. A definition
   * `sent` along (the one a release ran, or the one the channel resolved last) is used only where the worker allows
   * inline definitions, as for releases (activities/plan/known-definition.ts).
   */
  async function channelDefinition({ name, sent }: { name: string; sent?: ReleaseDefinition }): Promise<ReleaseDefinition> {
    try {
      if (sent && deps.allowInlineDefinitions) {
        if (sent.name !== name) throw new ConfigError('definition', [`name: "${sent.name}" is not the channel's definition "${name}"`]);
        return parseDefinition(sent, `definition ${name}`);
      }
      return await findDefinition(deps.definitionsDir, name);
    } catch (err) {
      if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, FailureType.Config);
      throw err;
    }
  }

  return {
    assignToChannel,
    channelDefinition,
    releaseApproval: ({ releaseId }: { releaseId: string }) => gateway().release(releaseId),
    channelStateOf: ({ definition, channel }: { definition: string; channel: string }) => gateway().state(definition, channel),
  };
}
