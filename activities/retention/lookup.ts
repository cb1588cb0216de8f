// What retention asks Temporal (worker/wiring.ts answers): the channels' states and the releases of a definition.
// Interfaces only, so the activities stay testable with a lookup built from plain states.
import type { ChannelState } from '../channels';
import type { OpenRelease } from './plan';

export interface ChannelLookup {
  /** The state the channel workflow's `channelState` query returns; undefined when that workflow never started. */
  stateOf(definition: string, channel: string): Promise<ChannelState | undefined>;
}

export interface ReleaseCatalog {
  /** Releases of the definition whose workflow still runs, with their stage and the images they list now. */
  open(definition: string): Promise<OpenRelease[]>;
  /** Ids of every release of the definition Temporal still knows, open or closed (for staged artifacts). */
  all(definition: string): Promise<string[]>;
}

/** No Temporal to ask (tests of other parts): no channel has started, no release runs. */
export const NO_CHANNELS: ChannelLookup = { stateOf: async () => undefined };
export const NO_RELEASES: ReleaseCatalog = { open: async () => [], all: async () => [] };
