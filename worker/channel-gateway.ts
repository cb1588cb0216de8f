// The channel activities' way to Temporal (activities/channels-client.ts `ChannelGateway`), with the worker's client:
// the assign update-with-start on a channel's workflow, a channel's state, and what a release decided.
import { WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { channelWorkflowId } from '../activities/channels';
import type { ChannelGateway } from '../activities/channels-client';
import { assignUpdate, cancelAssignmentSignal, channelStateQuery } from '../workflows/channel-messages';
import { statusQuery, WORKFLOW_TYPES } from '../workflows/messages';
import { releaseNameKey } from '../workflows/search-attributes';
import { FailureType } from '../activities/failures';

/** The one line the Web UI shows above a channel's workflow. */
export const channelSummary = (definition: string, channel: string) => `channel ${channel} of ${definition}`;

/** A refusal or a failed activation of the channel, as a failure the release does not retry. */
function channelFailure(definition: string, channel: string, err: unknown): unknown {
  if (!(err instanceof WorkflowUpdateFailedError)) return err;
  const cause = err.cause as (Error & { type?: string }) | undefined;
  return ApplicationFailure.nonRetryable(`channel ${channel} of ${definition}: ${cause?.message ?? err.message}`, cause?.type ?? FailureType.ChannelRequestRefused);
}

export function channelGatewayFrom(client: Client): ChannelGateway {
  return {
    async assign({ definition, channel, taskQueue, request }) {
      const workflowId = channelWorkflowId(definition, channel);
      // A channel whose workflow runs on a queue no worker of ours serves would take the update and never answer it.
      const running = await client.workflow
        .getHandle(workflowId)
        .describe()
        .catch((err: unknown) => (err instanceof WorkflowNotFoundError ? undefined : Promise.reject(err)));
      if (running?.status.name === 'RUNNING' && running.taskQueue !== taskQueue)
        throw ApplicationFailure.nonRetryable(
          `channel ${channel} of ${definition} runs on task queue ${running.taskQueue}, and this release on ${taskQueue}: ` +
            `run its workers on one queue (BOOTC_RELEASE_TASK_QUEUE), or terminate workflow ${workflowId} to start it anew here`,
          FailureType.Config,
        );
      const start = new WithStartWorkflowOperation(WORKFLOW_TYPES.channel, {
        workflowId,
        taskQueue,
        args: [{ definition, channel }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        typedSearchAttributes: [{ key: releaseNameKey, value: definition }],
        staticSummary: channelSummary(definition, channel),
      });
      try {
        // The update id makes a retried activity join the update its first attempt sent.
        const handle = await client.workflow.startUpdateWithStart(assignUpdate, {
          args: [request],
          waitForStage: 'ACCEPTED',
          startWorkflowOperation: start,
          updateId: `assign-${request.releaseId}`,
        });
        return await handle.result();
      } catch (err) {
        throw channelFailure(definition, channel, err);
      }
    },

    async cancelAssign({ definition, channel, releaseId }) {
      await client.workflow
        .getHandle(channelWorkflowId(definition, channel))
        .signal(cancelAssignmentSignal, { releaseId })
        .catch((err: unknown) => (err instanceof WorkflowNotFoundError ? undefined : Promise.reject(err)));
    },

    async state(definition, channel) {
      try {
        return await client.workflow.getHandle(channelWorkflowId(definition, channel)).query(channelStateQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    },

    async release(releaseId) {
      const handle = client.workflow.getHandle(releaseId);
      let type: string;
      try {
        type = (await handle.describe()).type;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
      if (type !== WORKFLOW_TYPES.release) return { workflowType: type, stage: 'unknown', chosen: [] };
      const s = await handle.query(statusQuery);
      const ids = s.approval?.images ?? [];
      return {
        workflowType: type,
        definition: s.name,
        stage: s.stage,
        decision: s.approval?.decision,
        by: s.approval?.by,
        signed: s.approval?.signed,
        comment: s.approval?.comment,
        channel: s.approval?.channel,
        chosen: s.candidates.filter((c) => ids.includes(c.imageId)),
      };
    },
  };
}
