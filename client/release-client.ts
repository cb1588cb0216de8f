// The typed client library behind the CLI: start, inspect, approve, reject, cancel and retry releases.
import {
  Client,
  Connection,
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  ServiceError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import type { JanitorInput, JanitorReport } from '../workflows/builder-janitor';
import type { Arch, ReleasePlan } from '../config/schema';
import { planFromDefinition } from '../activities/plan/resolve-plan';
import { codecDataConverter } from '../config/codec';
import { signDecision } from './approval-signing';
import {
  approveUpdate,
  rejectUpdate,
  retryPublishUpdate,
  statusQuery,
  type Approval,
  type Rejection,
  type ReleaseStatus,
  type RetryRequest,
  type Signed,
} from '../workflows/messages';
import type { SignedFields } from '../workflows/approval-signature';
import {
  executeWorkflow,
  releaseVisibilityQuery,
  scheduledStart,
  startWorkflow,
  temporalConnectionOptions,
  type TemporalSettings,
} from '../config/temporal';
import { releaseNameKey, releaseStageKey, releaseTriggerKey } from '../workflows/search-attributes';

/** The CLI's client, from the same connection options as the worker's (config/temporal.ts). */
export async function connectClient(s: TemporalSettings, env: NodeJS.ProcessEnv = process.env): Promise<Client> {
  const connection = await Connection.connect({ ...temporalConnectionOptions(s, env), connectTimeout: '10s' });
  return new Client({ connection, namespace: s.namespace, dataConverter: codecDataConverter(s.codecKeyFile) });
}

/**
 * The visibility query of `release list` (config/temporal.ts), with the filter's values checked first: the same
 * text works in the Web UI's workflow filter.
 */
export function releaseQuery(filter: { stage?: string; name?: string } = {}): string {
  for (const [value, flag] of [
    [filter.stage, '--stage'],
    [filter.name, '--name'],
  ] as const) {
    if (value !== undefined && !/^[a-z0-9][a-z0-9._-]*$/.test(value)) throw new InputError(`${flag}: "${value}" is not a stage or definition name`);
  }
  return releaseVisibilityQuery(filter);
}

/** The one line the Web UI shows above a release: "copr-builder: x86_64, s390x, started by schedule nightly". */
export const releaseSummary = (definition: string, arches: readonly string[] | undefined, by: string, reason?: string) =>
  `${definition}: ${arches?.length ? arches.join(', ') : 'every architecture'}, started by ${by}${reason ? ` — ${reason}` : ''}`.slice(0, 400);

/** An input problem the user can fix: the CLI exits 2 with this message. */
export class InputError extends Error {
  override name = 'InputError';
}

export const releaseIdFor = (name: string, at: Date) =>
  `${name}-${at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`;

export interface PlanOptions {
  arches?: Arch[];
  reason?: string;
  requestedBy?: string;
  releaseId?: string;
  /** Where the definition came from (its file), for the errors. */
  source?: string;
}

/** The plan a definition becomes, validated here, before any connection (and again on the worker). */
export function releasePlanOf(definition: unknown, opts: PlanOptions = {}): ReleasePlan {
  const startedAt = new Date();
  const name = (definition as { name?: unknown } | null)?.name;
  const releaseId = opts.releaseId ?? releaseIdFor(typeof name === 'string' ? name : 'release', startedAt);
  return planFromDefinition(definition, { ...opts, releaseId, startedAt });
}

export interface ReleaseSummary {
  releaseId: string;
  name?: string;
  stage?: string;
  status: string;
  startedAt: string;
  closedAt?: string;
}

export class ReleaseClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  /** Start from a whole definition (validated here first, then again on the worker). */
  async startFromDefinition(definition: unknown, opts: PlanOptions = {}): Promise<string> {
    return await this.startPlan(releasePlanOf(definition, opts));
  }

  /** Start a plan made by releasePlanOf. */
  async startPlan(plan: ReleasePlan): Promise<string> {
    const releaseId = plan.releaseId;
    await startWorkflow(this.client, 'release', {
      workflowId: releaseId,
      taskQueue: this.taskQueue,
      args: [{ plan }],
      typedSearchAttributes: [
        { key: releaseNameKey, value: plan.definition.name },
        { key: releaseTriggerKey, value: `manual:${plan.requestedBy ?? 'cli'}` },
      ],
      staticSummary: releaseSummary(plan.definition.name, plan.arches, `${plan.requestedBy ?? 'cli'} (bootc-release release start)`, plan.reason),
    });
    return releaseId;
  }

  /** Start by the name of a definition the worker knows: what a person types into the Temporal UI. */
  async startByName(
    definition: string,
    opts: { arches?: Arch[]; reason?: string; releaseId?: string; requestedBy?: string } = {},
  ): Promise<string> {
    const by = opts.requestedBy ?? 'cli';
    const releaseId = opts.releaseId ?? releaseIdFor(definition, new Date());
    await startWorkflow(this.client, 'release', {
      workflowId: releaseId,
      taskQueue: this.taskQueue,
      args: [{ definition, arches: opts.arches, reason: opts.reason, requestedBy: opts.requestedBy }],
      typedSearchAttributes: [
        { key: releaseNameKey, value: definition },
        { key: releaseTriggerKey, value: `manual:${by}` },
      ],
      staticSummary: releaseSummary(definition, opts.arches, `${by} (bootc-release release start --name)`, opts.reason),
    });
    return releaseId;
  }

  handle(releaseId: string): WorkflowHandle {
    return this.client.workflow.getHandle(releaseId);
  }

  async status(releaseId: string): Promise<ReleaseStatus> {
    return await this.handle(releaseId).query(statusQuery);
  }

  async list(limit = 50, filter: { stage?: string; name?: string } = {}): Promise<ReleaseSummary[]> {
    const out: ReleaseSummary[] = [];
    for await (const wf of this.client.workflow.list({ query: releaseQuery(filter) })) {
      out.push({
        releaseId: wf.workflowId,
        name: wf.typedSearchAttributes.get(releaseNameKey),
        stage: wf.typedSearchAttributes.get(releaseStageKey),
        status: wf.status.name,
        startedAt: wf.startTime.toISOString(),
        closedAt: wf.closeTime?.toISOString(),
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Approve the named images, or all candidates listed now. With `key` (the approver's SSH key) the approval is
   * signed, and "all" is signed as the explicit list of today's candidates, so a later retry cannot join it.
   */
  async approve(releaseId: string, approval: Approval, opts: { key?: string } = {}): Promise<ReleaseStatus> {
    let message = approval;
    if (opts.key) {
      const images = approval.images?.length ? approval.images : (await this.status(releaseId)).candidates.map((c) => c.imageId);
      const fields = { releaseId, decision: 'approve' as const, by: approval.by, images, note: approval.comment, channel: approval.channel };
      message = { ...approval, images, ...(await this.sign(opts.key, fields)) };
    }
    return await this.update(releaseId, () => this.handle(releaseId).executeUpdate(approveUpdate, { args: [message] }));
  }

  async reject(releaseId: string, rejection: Rejection, opts: { key?: string } = {}): Promise<ReleaseStatus> {
    const message = opts.key
      ? { ...rejection, ...(await this.sign(opts.key, { releaseId, decision: 'reject', by: rejection.by, images: [], note: rejection.reason })) }
      : rejection;
    return await this.update(releaseId, () => this.handle(releaseId).executeUpdate(rejectUpdate, { args: [message] }));
  }

  private async sign(key: string, fields: Omit<SignedFields, 'signedAt'>): Promise<Required<Signed>> {
    const signedAt = new Date().toISOString();
    try {
      return { signedAt, signature: await signDecision(key, { ...fields, signedAt }) };
    } catch (err) {
      throw new InputError((err as Error).message);
    }
  }

  async retry(releaseId: string, request: RetryRequest): Promise<ReleaseStatus> {
    return await this.update(releaseId, () => this.handle(releaseId).executeUpdate(retryPublishUpdate, { args: [request] }));
  }

  async cancel(releaseId: string): Promise<void> {
    await this.handle(releaseId).cancel();
  }

  /** Run the janitor workflow once and wait for its report. */
  async runJanitor(input: JanitorInput): Promise<JanitorReport> {
    return await executeWorkflow(this.client, 'janitor', {
      workflowId: `bootc-release-janitor-${Date.now()}`,
      taskQueue: this.taskQueue,
      args: [input],
    });
  }

  /** Create or update the janitor's schedule. */
  async scheduleJanitor(opts: { every: string; ttl: string }): Promise<string> {
    const scheduleId = 'bootc-release-janitor';
    const action = scheduledStart('janitor', { taskQueue: this.taskQueue, args: [{ ttl: opts.ttl }] });
    const spec = { intervals: [{ every: opts.every as `${number}h` }] };
    try {
      await this.client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP } });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await this.client.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action }));
    }
    return scheduleId;
  }

  /** A validator's refusal is the user's input problem: surface its reason as an InputError. */
  private async update<T>(releaseId: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw new InputError(`${releaseId}: ${err.cause?.message ?? err.message}`);
      // The server's reason (e.g. "Workflow Task in failed state") is in the cause; "Workflow Update failed" alone says nothing.
      if (err instanceof ServiceError && err.cause) throw new Error(`${releaseId}: ${err.message}: ${err.cause.message}`, { cause: err });
      throw err;
    }
  }
}
