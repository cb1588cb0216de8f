// The first activity of every release: turn what was typed into the Temporal UI (a definition name plus overrides)
// or what the CLI sent (a whole plan) into a validated, secret-free plan. Its result lives in the history, so a
// replay never reads the definitions directory again.
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, findDefinition, formatIssues, parseDefinition, parsePlan } from '../../config/load';
import { ReleaseInput, type Arch, type ReleaseDefinition, type ReleasePlan } from '../../config/schema';
import { requireKnownDefinition } from './known-definition';
import { FailureType } from '../failures';

export interface ResolvePlanInput {
  input: unknown;
  releaseId: string;
  /** Workflow start time (ISO): the image name stamp. */
  startedAt: string;
}

export const stampOf = (iso: string) => iso.replace(/[-:]/g, '').replace('T', '_').slice(0, 15);

export async function resolvePlan(
  { definitionsDir, allowInlineDefinitions }: { definitionsDir: string; allowInlineDefinitions?: boolean },
  { input, releaseId, startedAt }: ResolvePlanInput,
): Promise<ReleasePlan> {
  try {
    const parsed = ReleaseInput.safeParse(input);
    if (!parsed.success) {
      throw new ConfigError('input', [
        ...formatIssues(parsed.error, ['input']),
        'expected {"definition": "<name>", "arches"?: [...], "reason"?: "..."} or {"plan": {...}}',
      ]);
    }
    const value = parsed.data;
    if ('plan' in value) {
      const plan = parsePlan(value.plan, 'input.plan');
      if (plan.releaseId !== releaseId)
        throw new ConfigError('input.plan', [`releaseId: "${plan.releaseId}" differs from the workflow id "${releaseId}"`]);
      checkArches(plan.definition, plan.arches, 'input.plan.arches');
      if (!allowInlineDefinitions) await requireKnownDefinition(definitionsDir, plan.definition);
      return plan;
    }
    const definition = await findDefinition(definitionsDir, value.definition);
    const arches = value.arches ?? (Object.keys(definition.architectures) as Arch[]);
    checkArches(definition, arches, 'input.arches');
    return parsePlan(
      { releaseId, definition, arches, reason: value.reason, requestedBy: value.requestedBy, stamp: stampOf(startedAt) },
      'plan',
    );
  } catch (err) {
    if (err instanceof ConfigError) throw ApplicationFailure.nonRetryable(err.message, FailureType.Config);
    throw err;
  }
}

function checkArches(definition: ReleaseDefinition, arches: Arch[], where: string) {
  const unknown = arches.filter((a) => !definition.architectures[a]);
  if (unknown.length)
    throw new ConfigError(where, [`${unknown.join(', ')} not in the definition (it has ${Object.keys(definition.architectures).join(', ')})`]);
}

/** Validation the CLI runs before sending a plan: the same as the worker's. */
export function planFromDefinition(
  definitionInput: unknown,
  opts: { releaseId: string; arches?: Arch[]; reason?: string; requestedBy?: string; startedAt: Date; source?: string },
): ReleasePlan {
  const definition = parseDefinition(definitionInput, opts.source);
  const arches = opts.arches ?? (Object.keys(definition.architectures) as Arch[]);
  checkArches(definition, arches, '--arch');
  return parsePlan({
    releaseId: opts.releaseId,
    definition,
    arches,
    reason: opts.reason,
    requestedBy: opts.requestedBy,
    stamp: stampOf(opts.startedAt.toISOString()),
  });
}
