// Activation: make the approved images the ones builders boot from, changing only what the release owns. One driver
// per activation kind (image map file, image map in git, SSM parameter, command hook), each with a preflight check;
// the activity asks every step of the channel where it writes (which checks its configuration against the chosen
// images) before the first one writes anything, then runs them in order.
import { ApplicationFailure } from '@temporalio/common';
import type { Activation, ReleasePlan } from '../../config/schema';
import type { AwsClientDeps } from '../aws/clients';
import { createSsmActivation } from '../aws/ssm-parameters';
import { withHeartbeats } from '../runtime/heartbeat';
import { activityContext } from '../runtime/heartbeat';
import type {
  ActivationConfigs,
  ActivationDriver,
  ActivationDrivers,
  ActivationKind,
  ActivationRecord,
  ActivationStep,
  Candidate,
  CheckResult,
  ReplacedEntry,
} from '../types';
import { createHookActivation, type HookDeps } from './hook';
import { buildImageMap, previousImageMap } from './image-map';
import { imageMapFileActivation } from './image-map-file';
import { imageMapGitActivation } from './image-map-git';
import { FailureType } from '../failures';

export interface ActivationDeps extends HookDeps {
  /** AWS client settings for SSM (tests: recording middleware). Credentials come from the activation's reference. */
  aws?: AwsClientDeps;
}

export interface ActivateInput {
  plan: ReleasePlan;
  channel: string;
  candidates: Candidate[];
  approvedBy: string;
  /**
   * The channel's assignment this activation carries out (workflows/channel.ts). Each one runs the hook afresh, so a
   * rollback or promotion of a release whose hook ran before runs it again. Absent for releases activated directly,
   * before channels.
   */
  assignment?: ActivationStep['assignment'];
}

/** The drivers a worker has: every kind, as the compiler checks against `ActivationDrivers`. */
export function createActivationDrivers(deps: ActivationDeps): ActivationDrivers {
  return {
    'image-map-file': imageMapFileActivation,
    'image-map-git': imageMapGitActivation,
    'ssm-parameter': createSsmActivation(deps.aws),
    command: createHookActivation(deps),
  };
}

/** One step's driver with its configuration bound in. */
export interface BoundActivation {
  check(ctx: { plan: ReleasePlan; where: string }): Promise<CheckResult>;
  writesTo(step: ActivationStep): string;
  activate(step: ActivationStep): Promise<ReplacedEntry[]>;
  describe(): string;
  writesImageMap: boolean;
}

// Generic over the kind, so the driver the registry returns and the configuration it is given are the same kind.
function bind<K extends ActivationKind>(drivers: ActivationDrivers, kind: K, activation: ActivationConfigs[K]): BoundActivation {
  const driver: ActivationDriver<ActivationConfigs[K]> = drivers[kind];
  return {
    check: (ctx) => driver.check(activation, ctx),
    writesTo: (step) => driver.writesTo(activation, step),
    activate: (step) => driver.activate(activation, step),
    describe: () => driver.describe(activation),
    writesImageMap: driver.writesImageMap,
  };
}

/** The driver for a step of a channel: the one place an activation's kind picks its code. */
export const bindActivation = (drivers: ActivationDrivers, activation: Activation): BoundActivation => bind(drivers, activation.kind, activation);

/** `channels.<channel>.activation.<index>`: the config path every activation error names. */
export const activationPath = (channel: string, index: number) => `channels.${channel}.activation.${index}`;

export function createActivationActivities(drivers: ActivationDrivers) {
  async function activate(input: ActivateInput): Promise<ActivationRecord> {
    const { plan, channel, candidates, approvedBy, assignment } = input;
    if (candidates.length === 0) throw ApplicationFailure.nonRetryable('nothing to activate: no image was chosen', FailureType.Config);
    const signal = activityContext()?.cancellationSignal;
    const imageMap = buildImageMap(candidates, plan);
    const replaced: ActivationRecord['replaced'] = [];
    let previous: Record<string, unknown> | undefined;
    // Every step says where it writes before any writes: a configuration that cannot work changes nothing.
    const steps = (plan.definition.channels[channel]?.activation ?? []).map((a, index) => {
      const driver = bindActivation(drivers, a);
      const step: ActivationStep = { plan, channel, index, where: activationPath(channel, index), candidates, approvedBy, assignment, replaced: [], signal };
      return { step, driver, target: driver.writesTo(step) };
    });
    for (const { step, driver, target } of steps) {
      try {
        const entries = await withHeartbeats(() => driver.activate({ ...step, replaced: structuredClone(replaced), previousImageMap: previous }));
        replaced.push({ target, entries });
        if (driver.writesImageMap) previous ??= previousImageMap(imageMap, entries);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof ApplicationFailure) throw err;
        throw new Error(`${step.where} (${target}): ${(err as Error).message}`);
      }
    }
    return { channel, imageMap, replaced, writtenTo: steps.map((s) => s.target), at: new Date().toISOString() };
  }

  return { activate };
}
