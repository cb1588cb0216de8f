// The typed client library behind `bootc-release channel …`: list channels, read one, promote, roll back and mark
// tested, each a signed update on the channel's workflow (workflows/channel.ts).
import {
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { NAME_PATTERN } from '../config/fields';
import { channelWorkflowId, type ChannelActor, type ChannelAssignment, type ChannelState } from '../activities/channels';
import type { ChannelSignedFields } from '../workflows/approval-signature';
import {
  channelStateQuery,
  markTestedUpdate,
  promoteUpdate,
  rollbackUpdate,
} from '../workflows/channel-messages';
import { WORKFLOW_TYPES } from '../workflows/messages';
import { releaseNameKey } from '../workflows/search-attributes';
import { signChannelAction } from './approval-signing';
import { InputError } from './release-client';
import { FailureType } from '../activities/failures';

/** One row of `channel list`. */
export interface ChannelSummary {
  definition: string;
  channel: string;
  workflowId: string;
  current?: Pick<ChannelAssignment, 'seq' | 'kind' | 'releaseId' | 'by' | 'at' | 'from' | 'restores' | 'tested'>;
  assignments: number;
  activating?: string;
}

export interface ActorOptions {
  by: string;
  reason?: string;
  /** The approver's SSH key: the request is signed (required unless the definition allows unsigned requests). */
  key?: string;
}

const checkName = (flag: string, value: string) => {
  if (!NAME_PATTERN.test(value)) throw new InputError(`${flag}: "${value}" is not a definition or channel name`);
};

export class ChannelClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  /** Visibility query of the channel workflows (of one definition). */
  static query(definition?: string): string {
    if (definition) checkName('--definition', definition);
    const of = definition ? ` AND ${releaseNameKey.name} = '${definition}'` : '';
    return `WorkflowType = '${WORKFLOW_TYPES.channel}' AND ExecutionStatus = 'Running'${of}`;
  }

  /** Definitions that have channels, from Temporal's visibility. */
  async definitions(): Promise<string[]> {
    const names = new Set<string>();
    for await (const wf of this.client.workflow.list({ query: ChannelClient.query() })) {
      const name = wf.typedSearchAttributes.get(releaseNameKey);
      if (name) names.add(name);
    }
    return [...names].sort();
  }

  /** The definition asked for, or the only one that has channels; otherwise an error naming --definition. */
  async definition(given?: string): Promise<string> {
    if (given) {
      checkName('--definition', given);
      return given;
    }
    const known = await this.definitions();
    if (known.length === 1) return known[0]!;
    throw new InputError(
      known.length
        ? `--definition: required, channels of several definitions exist (${known.join(', ')})`
        : '--definition: required (no definition has a channel yet)',
    );
  }

  async list(definition?: string): Promise<ChannelSummary[]> {
    const rows: ChannelSummary[] = [];
    for await (const wf of this.client.workflow.list({ query: ChannelClient.query(definition) })) {
      const s = await this.client.workflow.getHandle(wf.workflowId).query(channelStateQuery);
      const c = s.current;
      rows.push({
        definition: s.definition,
        channel: s.channel,
        workflowId: wf.workflowId,
        current: c && { seq: c.seq, kind: c.kind, releaseId: c.releaseId, by: c.by, at: c.at, from: c.from, restores: c.restores, tested: c.tested },
        assignments: s.history.length,
        activating: s.activating?.releaseId,
      });
    }
    return rows.sort((a, b) => `${a.definition} ${a.channel}`.localeCompare(`${b.definition} ${b.channel}`));
  }

  async show(definition: string, channel: string): Promise<ChannelState> {
    checkName('NAME', channel);
    return await this.existing(definition, channel, (h) => h.query(channelStateQuery));
  }

  /** Assigns what FROM has to TO (starting TO's workflow when it never ran); resolves once it is active. */
  async promote(definition: string, from: string, to: string, o: ActorOptions): Promise<ChannelAssignment> {
    checkName('FROM', from);
    checkName('TO', to);
    const request = { from, ...(await this.actor(o, { action: 'promote', definition, channel: to, from })) };
    const start = new WithStartWorkflowOperation(WORKFLOW_TYPES.channel, {
      workflowId: channelWorkflowId(definition, to),
      taskQueue: this.taskQueue,
      args: [{ definition, channel: to }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [{ key: releaseNameKey, value: definition }],
      staticSummary: `channel ${to} of ${definition}`,
    });
    return await refusals(to, () => this.client.workflow.executeUpdateWithStart(promoteUpdate, { args: [request], startWorkflowOperation: start }));
  }

  /** Back to the previous release's images, or to those of release `to`. */
  async rollback(definition: string, channel: string, o: ActorOptions & { to?: string }): Promise<ChannelAssignment> {
    checkName('NAME', channel);
    const request = { ...(o.to ? { to: o.to } : {}), ...(await this.actor(o, { action: 'rollback', definition, channel, release: o.to })) };
    return await this.existing(definition, channel, (h) => refusals(channel, () => h.executeUpdate(rollbackUpdate, { args: [request] })));
  }

  /** Marks the images the channel has now (the release read here, so the signature names it) tested. */
  async markTested(definition: string, channel: string, o: ActorOptions): Promise<ChannelAssignment> {
    const releaseId = (await this.show(definition, channel)).current?.releaseId;
    if (!releaseId) throw new InputError(`channel ${channel} of ${definition} has no images to mark tested`);
    const request = { releaseId, ...(await this.actor(o, { action: 'mark-tested', definition, channel, release: releaseId })) };
    return await this.existing(definition, channel, (h) => refusals(channel, () => h.executeUpdate(markTestedUpdate, { args: [request] })));
  }

  /** by and reason, signed with the key when one is given. */
  private async actor(o: ActorOptions, fields: Omit<ChannelSignedFields, 'by' | 'note' | 'signedAt'>): Promise<ChannelActor> {
    const actor: ChannelActor = { by: o.by, ...(o.reason ? { reason: o.reason } : {}) };
    if (!o.key) return actor;
    const signedAt = new Date().toISOString();
    try {
      return { ...actor, signedAt, signature: await signChannelAction(o.key, { ...fields, by: o.by, note: o.reason, signedAt }) };
    } catch (err) {
      throw new InputError((err as Error).message);
    }
  }

  private async existing<T>(definition: string, channel: string, fn: (h: WorkflowHandle) => Promise<T>): Promise<T> {
    try {
      return await fn(this.client.workflow.getHandle(channelWorkflowId(definition, channel)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        throw new InputError(`channel ${channel} of ${definition} has never had images (bootc-release channel list shows the channels)`);
      throw err;
    }
  }
}

/** A refusal by the channel (validator or handler) is the user's to act on: its reason, exit 2. */
async function refusals<T>(channel: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (err) {
    if (!(err instanceof WorkflowUpdateFailedError)) throw err;
    const text = `${channel}: ${err.cause?.message ?? err.message}`;
    // An activation that failed is not the caller's input: exit 1, as for a release whose activation failed.
    if ((err.cause as { type?: string } | undefined)?.type === FailureType.ActivationFailed) throw new Error(text, { cause: err });
    throw new InputError(text);
  }
}
