// What a channel keeps and shows of itself, in one place: its state (the current assignment and every earlier one,
// carried across continue-as-new), the definition it resolved last, the state query, the Web UI's Current Details,
// the memo and the definition's search attribute. Whoever changes the state calls refresh() to show it.
import { setCurrentDetails, setHandler, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import type { ReleaseDefinition } from '../config/schema';
import type { ChannelInput, ChannelState } from '../activities/channels';
import { channelDetails, channelMemo } from './channel-details';
import { channelStateQuery } from './channel-messages';
import { releaseNameKey } from './search-attributes';

/** The channel's state and the definition it resolved last (validators judge by it until the next is resolved). */
export interface TrackedChannel {
  readonly channel: string;
  state: ChannelState;
  resolved: ReleaseDefinition | undefined;
  /** Shows the state: Current Details and memo. */
  refresh(): void;
}

/** The channel as its input carries it (a fresh one, or the state of the run before continue-as-new), shown and queryable. */
export function trackChannel(input: ChannelInput): TrackedChannel {
  const { channel } = input;
  const ch: TrackedChannel = {
    channel,
    state: input.state ?? { definition: input.definition, channel, history: [], retention: [] },
    resolved: input.resolved,
    refresh: () => {
      setCurrentDetails(channelDetails(ch.state, ch.resolved));
      upsertMemo(channelMemo(ch.state));
    },
  };
  upsertSearchAttributes([{ key: releaseNameKey, value: input.definition }]);
  ch.refresh();
  setHandler(channelStateQuery, () => ch.state, {
    description: 'The channel: its current images per target, architecture and region, and every assignment before (who, when, why, what it replaced).',
  });
  return ch;
}
