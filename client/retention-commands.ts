// The CLI's `retention plan DEFINITION`: what retention would deprecate, delete and keep, and why (docs/retention.md).
// A dry run by construction: the plan is made on a worker (the `retentionPlan` workflow), which holds the clouds'
// credentials, and nothing in it changes an image. The channel workflow is where retention is applied (docs/retention.md).
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import type { Command, Option } from 'commander';
import { NAME_PATTERN } from '../config/fields';
import type { RetentionItem, RetentionPlan } from '../activities/retention/plan';
import { executeWorkflow, temporalSettings } from '../config/temporal';
import { paint, printer, renderTable, type OutputStyle } from './output';
import { connectClient, InputError } from './release-client';

export function addRetentionCommands(program: Command, json: () => Option): void {
  const retention = program.command('retention').description('delete the images no channel needs any more (docs/retention.md)');
  retention
    .command('plan')
    .description('dry run: what retention would deprecate, delete and keep for DEFINITION, and why; changes nothing')
    .argument('<definition>', 'a definition the worker knows, by name')
    .addOption(json())
    .action(async (definition: string, o: { json?: boolean }) => {
      if (!NAME_PATTERN.test(definition)) throw new InputError(`definition: "${definition}" is not a definition name`);
      const plan = await planOnWorker(definition);
      printer(!!o.json).result(plan, (style) => retentionPlanText(plan, style));
    });
}

async function planOnWorker(definition: string): Promise<RetentionPlan> {
  const s = temporalSettings();
  const client = await connectClient(s);
  try {
    return await executeWorkflow(client, 'retentionPlan', {
      workflowId: `${definition}.retention-plan.${Date.now()}`,
      taskQueue: s.taskQueue,
      args: [{ definition }],
    });
  } catch (err) {
    // An unknown definition or a broken file is the caller's to fix: exit 2 with the worker's words.
    const config = causes(err).find((c): c is ApplicationFailure => c instanceof ApplicationFailure && c.type === 'ConfigError');
    if (err instanceof WorkflowFailedError && config) throw new InputError(config.message);
    throw err;
  } finally {
    await client.connection.close();
  }
}

function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e && chain.length < 10; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}

const where = (i: RetentionItem) => [i.target, i.image.arch, i.image.region ?? '', i.image.imageId];
const byRelease = (items: RetentionItem[]) =>
  [...items].sort((a, b) => a.releaseId.localeCompare(b.releaseId) || a.target.localeCompare(b.target) || (a.image.region ?? '').localeCompare(b.image.region ?? ''));

export function retentionPlanText(plan: RetentionPlan, style: OutputStyle): string {
  const s = plan.settings;
  const lines = [
    `Retention plan for ${plan.definition} at ${plan.at} (keep ${s.keep}, minAge ${s.minAge}, deprecateFirst ${s.deprecateFirst})`,
    paint(style, 'dim', 'Dry run: nothing was changed.'),
    `would deprecate ${plan.deprecate.length}, delete ${plan.delete.length}, keep ${plan.kept.length}`,
  ];
  if (plan.protected.length)
    lines.push('', 'Protected releases:', renderTable(style, ['release', 'why'], plan.protected.map((p) => [p.releaseId, p.why])));
  const rows = [
    ...byRelease(plan.deprecate).map((i) => [paint(style, 'yellow', 'deprecate'), i.releaseId, ...where(i), i.why ?? '']),
    ...byRelease(plan.delete).map((i) => [paint(style, 'red', 'delete'), i.releaseId, ...where(i), i.why ?? '']),
    ...byRelease(plan.kept).map((i) => [paint(style, 'green', 'keep'), i.releaseId, ...where(i), i.why ?? '']),
  ];
  if (rows.length) lines.push('', renderTable(style, ['action', 'release', 'target', 'arch', 'region/host', 'image', 'why'], rows));
  else lines.push('', 'No images of this definition were found at its targets.');
  for (const u of plan.unlisted) lines.push(paint(style, 'red', `target ${u.target} could not be listed, so none of its images is in the plan: ${u.error}`));
  return lines.join('\n');
}
