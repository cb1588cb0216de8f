// Preflight: every builder provider and every publish target of the plan, and every activation of every channel, is
// checked before any VM starts, like `image-builder upload`'s "Upload conditions met". All problems are reported at
// once, each naming its config path: a release whose approval could not be activated fails here, not days later.
import { ApplicationFailure } from '@temporalio/common';
import type { ReleasePlan } from '../../config/schema';
import type { ActivationDrivers, CheckResult } from '../types';
import { driverOf, providerOf, type BuilderProviders, type PublishTargets } from '../registry';
import { keepAlive } from '../runtime/heartbeat';
import { activationPath, bindActivation } from '../activation';
import { credentialsOf } from '../ssh/builder-session';
import { resolvePrivateKey } from '../ssh/connection';
import { FailureType } from '../failures';

export interface PreflightDeps {
  providers: BuilderProviders;
  targets: PublishTargets;
  activations: ActivationDrivers;
}

export async function preflight(deps: PreflightDeps, plan: ReleasePlan): Promise<{ messages: string[] }> {
  const checks: { where: string; run: () => Promise<CheckResult> }[] = [];
  for (const arch of plan.arches) {
    const builder = plan.definition.architectures[arch]!.builder;
    const provider = providerOf(deps.providers, builder.provider);
    checks.push({
      where: `architectures.${arch}.builder (${builder.provider})`,
      run: async () =>
        provider
          ? provider.check(builder, { releaseId: plan.releaseId, arch })
          : { ok: false, messages: [`provider "${builder.provider}" is not available on this worker`] },
    });
    // Every provider reaches its builder over SSH: without a key, a VM or a ticket would be taken for nothing.
    // A builder served by a per-site worker (taskQueue) has its key there, not necessarily here.
    if (!builder.taskQueue)
      checks.push({
        where: `architectures.${arch}.builder.ssh`,
        run: async () => {
          resolvePrivateKey(credentialsOf(builder));
          return { ok: true, messages: ['Private key found.'] };
        },
      });
  }
  const usedTargets = new Set(plan.arches.flatMap((a) => plan.definition.architectures[a]!.targets));
  for (const name of usedTargets) {
    const target = plan.definition.targets[name]!;
    const driver = driverOf(deps.targets, target.kind);
    checks.push({
      where: `targets.${name} (${target.kind})`,
      run: async () =>
        driver
          ? driver.check(target, { releaseId: plan.releaseId, targetName: name })
          : { ok: false, messages: [`target kind "${target.kind}" is not available on this worker`] },
    });
  }
  // Every channel, not only the approval's: a promotion to production must not find its target unreachable.
  for (const [channel, { activation }] of Object.entries(plan.definition.channels))
    activation.forEach((a, i) => {
      const driver = bindActivation(deps.activations, a);
      const where = activationPath(channel, i);
      checks.push({ where: `${where} (${driver.describe()})`, run: () => driver.check({ plan, where }) });
    });
  const results = await Promise.all(
    checks.map(async ({ where, run }) => {
      try {
        return { where, ...(await run()) };
      } catch (err) {
        return { where, ok: false, messages: [(err as Error).message] };
      } finally {
        keepAlive();
      }
    }),
  );
  const failed = results.filter((r) => !r.ok);
  if (failed.length) {
    throw ApplicationFailure.nonRetryable(
      `preflight failed; nothing was created:\n${failed.map((r) => `  ${r.where}: ${r.messages.join('; ')}`).join('\n')}`,
      FailureType.Config,
    );
  }
  return { messages: results.flatMap((r) => r.messages.map((m) => `${r.where}: ${m}`)) };
}
