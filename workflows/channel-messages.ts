// Messages of the channel workflow (workflows/channel.ts): what the release's activity, the CLI and the Temporal UI
// send to a channel and read from it. Importable by the client without pulling in workflow internals.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  AssignRequest,
  ChannelAssignment,
  ChannelInput,
  ChannelState,
  MarkTestedRequest,
  PromoteRequest,
  RollbackRequest,
} from '../activities/channels';

export type { AssignRequest, ChannelAssignment, ChannelInput, ChannelState, MarkTestedRequest, PromoteRequest, RollbackRequest };

/** The channel's state: its current assignment (images per target, arch, region) and every earlier one. */
export const channelStateQuery = defineQuery<ChannelState>('channelState');

/** A release's approval: assign the images its approver chose (sent by the release's `assignToChannel` activity). */
export const assignUpdate = defineUpdate<ChannelAssignment, [AssignRequest]>('assign');
/** Assign what another channel has now (`bootc-release channel promote FROM TO`), sent to TO. */
export const promoteUpdate = defineUpdate<ChannelAssignment, [PromoteRequest]>('promote');
/** Assign an earlier assignment's images again (`bootc-release channel rollback NAME [--to RELEASE]`). */
export const rollbackUpdate = defineUpdate<ChannelAssignment, [RollbackRequest]>('rollback');
/** Mark the current images tested (`bootc-release channel mark-tested NAME`), for a `requires.tested` downstream. */
export const markTestedUpdate = defineUpdate<ChannelAssignment, [MarkTestedRequest]>('markTested');

/** The release was cancelled while its assignment waited or activated: stop that activation (the hook is killed). */
export const cancelAssignmentSignal = defineSignal<[{ releaseId: string }]>('cancelAssignment');
