// One channel of one definition (staging, production, ...): a long-lived entity workflow, id
// `<definition>.channel.<channel>`, whose state is the current assignment and every earlier one. A release's
// approval assigns its images here; people promote from another channel, roll back, and mark images tested.
//
// The story: the channel's state is tracked and shown (channel-state.ts), its updates are installed
// (channel-updates.ts: validate, resolve the definition afresh, activate), and each assignment takes its turn in one
// queue (channel-queue.ts), followed by a retention run of its own (channel-retention.ts). The workflow itself only
// waits until its history is long and nothing is in flight, then continues as new with its state.
import { allHandlersFinished, condition, continueAsNew, workflowInfo } from '@temporalio/workflow';
import type { ChannelInput } from '../activities/channels';
import { ChannelQueue } from './channel-queue';
import { trackChannel } from './channel-state';
import { installChannelUpdates } from './channel-updates';

/** Continue as new past this many events, unless the input sets another bound. */
export const CHANNEL_MAX_HISTORY_EVENTS = 2000;

export async function imageChannel(input: ChannelInput): Promise<void> {
  const ch = trackChannel(input);
  const queue = new ChannelQueue();
  installChannelUpdates(ch, queue);

  // An entity lives forever: start afresh, carrying the state (and its last RETENTION_RECORDS_KEPT retention
  // records), before the history grows large; never in the middle of an assignment or a retention run.
  const maxEvents = input.maxHistoryEvents ?? CHANNEL_MAX_HISTORY_EVENTS;
  const tooLong = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > maxEvents;
  await condition(() => tooLong() && allHandlersFinished() && queue.idle);
  await continueAsNew<typeof imageChannel>({ ...input, state: ch.state, resolved: ch.resolved });
}
