// Releases on a timetable: each schedule is a Temporal Schedule (shown in the Web UI under Schedules) whose action
// runs one trigger check (workflows/release-trigger.ts): always start a release, only when the source changed, or
// only when the active image has grown old. Overlaps are skipped, missed runs are caught up for one hour at most.
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleDescription } from '@temporalio/client';
import { durationMs, NAME_PATTERN } from '../config/fields';
import { executeWorkflow, scheduledStart } from '../config/temporal';
import { WORKFLOW_TYPES, type TriggerInput, type TriggerResult } from '../workflows/messages';
import { InputError } from './release-client';

export const SCHEDULE_PREFIX = 'bootc-release-';

export interface ScheduleRequest {
  name: string;
  definition: string;
  cron?: string;
  every?: string;
  onlyIfChanged?: boolean;
  rebuildAfter?: string;
  note?: string;
}

export interface ScheduleSummary {
  name: string;
  scheduleId: string;
  definition: string;
  mode: NonNullable<TriggerInput['mode']>;
  rebuildAfter?: string;
  spec: string;
  paused: boolean;
  note?: string;
  nextRuns: string[];
  recentRuns: { at: string; workflowId: string }[];
}

/** The trigger a request asks for, checked before anything reaches Temporal (exit 2 on a mistake). */
export function triggerOf(o: { definition: string; onlyIfChanged?: boolean; rebuildAfter?: string }, by?: string): TriggerInput {
  if (!NAME_PATTERN.test(o.definition)) throw new InputError(`--definition: "${o.definition}" is not a definition name`);
  if (o.onlyIfChanged && o.rebuildAfter) throw new InputError('give --only-if-changed or --rebuild-after, not both');
  if (o.rebuildAfter) durationOf('--rebuild-after', o.rebuildAfter);
  const mode = o.onlyIfChanged ? 'source-change' : o.rebuildAfter ? 'inactivity' : 'always';
  return { definition: o.definition, mode, rebuildAfter: o.rebuildAfter, by };
}

function durationOf(flag: string, value: string): number {
  try {
    const ms = durationMs(value);
    if (ms < 60_000) throw new Error('too short');
    return ms;
  } catch {
    throw new InputError(`${flag}: "${value}" is not a duration of at least a minute, like 30m, 12h or 14d`);
  }
}

export class ScheduleClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  async create(r: ScheduleRequest): Promise<string> {
    if (!NAME_PATTERN.test(r.name)) throw new InputError(`NAME: "${r.name}" must be lower-case letters, digits, ".", "_" or "-"`);
    if (!!r.cron === !!r.every) throw new InputError('give exactly one of --cron EXPR and --every DURATION');
    if (r.every) durationOf('--every', r.every);
    const scheduleId = `${SCHEDULE_PREFIX}${r.name}`;
    const trigger = triggerOf(r, `schedule ${r.name}`);
    const what = trigger.mode === 'source-change' ? 'when its source changed' : trigger.mode === 'inactivity' ? `when older than ${r.rebuildAfter}` : 'always';
    const options = {
      scheduleId,
      spec: r.cron ? { cronExpressions: [r.cron] } : { intervals: [{ every: r.every as `${number}m` }] },
      action: scheduledStart('trigger', {
        workflowId: `trigger-${r.name}`,
        taskQueue: this.taskQueue,
        args: [trigger],
        staticSummary: `${r.definition}: release ${what} (schedule ${r.name})`,
      }),
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1h' },
      memo: { definition: r.definition, mode: trigger.mode, spec: r.cron ? `cron ${r.cron}` : `every ${r.every}` },
      state: { note: r.note ?? `created by bootc-release schedule create` },
    };
    try {
      await this.client.schedule.create(options);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      throw new InputError(`schedule ${r.name} exists; delete it first or pick another name`);
    }
    return scheduleId;
  }

  async list(): Promise<ScheduleSummary[]> {
    const out: ScheduleSummary[] = [];
    for await (const s of this.client.schedule.list()) {
      if (!s.scheduleId.startsWith(SCHEDULE_PREFIX) || s.action?.type !== 'startWorkflow' || s.action.workflowType !== WORKFLOW_TYPES.trigger) continue;
      out.push(await this.describe(s.scheduleId.slice(SCHEDULE_PREFIX.length)));
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async describe(name: string): Promise<ScheduleSummary> {
    const d = await this.handle(name, (h) => h.describe());
    const action = d.action as Extract<ScheduleDescription['action'], { type: 'startWorkflow' }>;
    const trigger = (action.args?.[0] ?? {}) as TriggerInput;
    const spec = String(d.memo?.spec ?? d.spec.intervals?.map((i) => `every ${formatMs(Number(i.every))}`).join(', ') ?? 'calendar');
    return {
      name,
      scheduleId: d.scheduleId,
      definition: trigger.definition,
      mode: trigger.mode ?? 'always',
      rebuildAfter: trigger.rebuildAfter,
      spec,
      paused: d.state.paused,
      note: d.state.note,
      nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
      recentRuns: d.info.recentActions.slice(-5).map((a) => ({ at: a.takenAt.toISOString(), workflowId: a.action.workflow.workflowId })),
    };
  }

  pause = (name: string, note?: string) => this.handle(name, (h) => h.pause(note ?? 'paused with bootc-release schedule pause'));
  unpause = (name: string, note?: string) => this.handle(name, (h) => h.unpause(note ?? 'unpaused with bootc-release schedule unpause'));
  trigger = (name: string) => this.handle(name, (h) => h.trigger(ScheduleOverlapPolicy.SKIP));
  delete = (name: string) => this.handle(name, (h) => h.delete());

  /** One trigger check now, outside any schedule: what `bootc-release trigger` and the push webhook run. */
  async check(input: TriggerInput): Promise<TriggerResult> {
    return await executeWorkflow(this.client, 'trigger', {
      taskQueue: this.taskQueue,
      workflowId: `trigger-${input.definition}-${Date.now()}`,
      args: [input],
      staticSummary: `${input.definition}: ${input.mode} check by ${input.by ?? 'hand'}`,
    });
  }

  private async handle<T>(name: string, fn: (h: ReturnType<Client['schedule']['getHandle']>) => Promise<T>): Promise<T> {
    try {
      return await fn(this.client.schedule.getHandle(`${SCHEDULE_PREFIX}${name}`));
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw new InputError(`no schedule ${name} (bootc-release schedule list shows them)`);
      throw err;
    }
  }
}

function formatMs(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
