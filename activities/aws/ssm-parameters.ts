// SSM parameter activation (`aws:ec2:image`): launch templates resolve `resolve:ssm:NAME` in their own region, so each
// region an AMI was copied to gets its own parameter holding that region's AMI id. Clients use the activation's
// credentials reference (profile, role, endpoint), as every other AWS module does.
import { GetParameterHistoryCommand, PutParameterCommand, type ParameterHistory } from '@aws-sdk/client-ssm';
import { ApplicationFailure } from '@temporalio/common';
import type { ReleasePlan } from '../../config/schema';
import type { ActivationConfigs, ActivationDriver, Candidate, CheckResult, ReplacedEntry } from '../types';
import { awsClients, type AwsClientDeps, type Sends } from './clients';
import { classifyAwsError, isNotFound } from './errors';
import { awsPreflight } from './preflight';
import { FailureType } from '../failures';

export type SsmActivation = ActivationConfigs['ssm-parameter'];

export interface SsmWrite {
  name: string;
  region: string;
  value: string;
}

/**
 * The parameters the chosen AMIs go to: one per (name, region). None when the release chose no AMI at all (a release
 * of s390x alone leaves the AMI parameters as they are, as activation leaves every entry it did not produce). Fails
 * before anything is written when AMIs were chosen and still no parameter would be written (an activation that
 * changes nothing must not be reported as done), or when two AMIs would share one parameter.
 */
export function ssmWrites(a: SsmActivation, candidates: Candidate[], where: string): SsmWrite[] {
  if (!candidates.some((c) => c.kind === 'aws')) return [];
  const writes = new Map<string, SsmWrite & { from: string }>();
  for (const c of candidates) {
    if (c.kind !== 'aws' || !c.region) continue;
    const name = a.name.replaceAll('{arch}', c.arch);
    const from = `${c.imageId} (${c.arch}, target ${c.target})`;
    const other = writes.get(`${name}\u0000${c.region}`);
    if (other && other.value !== c.imageId)
      throw ApplicationFailure.nonRetryable(
        `${where}: parameter ${name} in ${c.region} would get both ${other.from} and ${from}; put {arch} in ${where}.name or approve one of them`,
        FailureType.Config,
      );
    writes.set(`${name}\u0000${c.region}`, { name, region: c.region, value: c.imageId, from });
  }
  if (writes.size === 0)
    throw ApplicationFailure.nonRetryable(
      `${where}: no parameter to write: none of the chosen AMIs names its region (chosen: ${candidates
        .filter((c) => c.kind === 'aws')
        .map((c) => `${c.arch} ${c.imageId} on ${c.target}`)
        .join(', ')}); this is a bug in the aws target, please report it`,
      FailureType.Config,
    );
  return [...writes.values()].map(({ name, region, value }) => ({ name, region, value }));
}

type SsmClient = Sends<GetParameterHistoryCommand | PutParameterCommand>;

async function history(ssm: SsmClient, name: string, signal?: AbortSignal): Promise<ParameterHistory[]> {
  const versions: ParameterHistory[] = [];
  let token: string | undefined;
  do {
    try {
      const out = await ssm.send(new GetParameterHistoryCommand({ Name: name, NextToken: token, MaxResults: 50 }), { abortSignal: signal });
      versions.push(...(out.Parameters ?? []));
      token = out.NextToken;
    } catch (err) {
      if (isNotFound(err) || (err as Error).name === 'ParameterNotFound') return versions;
      throw err;
    }
  } while (token);
  return versions.sort((x, y) => (x.Version ?? 0) - (y.Version ?? 0));
}

/**
 * Writes each parameter unless it already holds the value, and returns what was there before this release. The
 * release id goes into each version's description, so a retry skips the versions it wrote itself when it looks for
 * what it replaced.
 */
export async function writeSsmParameters(
  a: SsmActivation,
  writes: SsmWrite[],
  ctx: { releaseId: string; where: string; signal?: AbortSignal; deps?: AwsClientDeps },
): Promise<ReplacedEntry[]> {
  const clients = awsClients(a.region, a.credentials, ctx.deps);
  const mark = `bootc-release ${ctx.releaseId}`;
  const replaced: ReplacedEntry[] = [];
  for (const w of writes) {
    const what = `${ctx.where}: parameter ${w.name} in ${w.region}`;
    try {
      const ssm = clients.ssm(w.region) as SsmClient;
      const versions = await history(ssm, w.name, ctx.signal);
      const before = [...versions].reverse().find((v) => v.Description !== mark);
      const current = versions.at(-1);
      if (current?.Value !== w.value || current?.Description !== mark)
        await ssm.send(
          new PutParameterCommand({ Name: w.name, Value: w.value, Type: 'String', DataType: 'aws:ec2:image', Overwrite: true, Description: mark }),
          { abortSignal: ctx.signal },
        );
      if (before?.Value !== w.value) replaced.push({ path: [w.name, w.region], previous: before?.Value, value: w.value });
    } catch (err) {
      if (ctx.signal?.aborted) throw ctx.signal.reason;
      throw classifyAwsError(err, what, `${ctx.where}.credentials`);
    }
  }
  return replaced;
}

/** `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`... */
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** Every region the release may copy an AMI to: the parameters it would write live there. */
function amiRegions(plan: ReleasePlan): string[] {
  const used = new Set(plan.arches.flatMap((arch) => plan.definition.architectures[arch]!.targets));
  const regions = [...used].flatMap((name) => {
    const t = plan.definition.targets[name];
    return t?.kind === 'aws' ? [t.region, ...t.copyTo] : [];
  });
  return [...new Set(regions)];
}

/**
 * Writes nothing: the region is a region, the credentials resolve (the role is assumed), and in each region the
 * release may copy an AMI to, the parameter's history can be read (a parameter that does not exist yet is fine).
 */
async function checkSsm(a: SsmActivation, plan: ReleasePlan, where: string, deps?: AwsClientDeps): Promise<CheckResult> {
  if (!REGION.test(a.region)) return { ok: false, messages: [`region "${a.region}" is not an AWS region name (like us-east-1); fix ${where}.region`] };
  const clients = awsClients(a.region, a.credentials, deps);
  const { result, probe, credentials } = awsPreflight(`activation ${where}`, (f) => `${where}.${f}`);
  await credentials(clients);
  if (!result.ok) return result;
  const name = a.name.replaceAll('{arch}', plan.arches[0]!);
  for (const region of amiRegions(plan))
    await probe(`Checking parameter ${name} in ${region}…`, 'credentials', async () => {
      const versions = await history(clients.ssm(region) as SsmClient, name);
      return versions.length ? `Parameter ${name} in ${region} can be read.` : `Parameter ${name} does not exist in ${region} yet; it will be created.`;
    });
  if (result.ok) result.messages.push('SSM conditions met.');
  return result;
}

export function createSsmActivation(deps?: AwsClientDeps): ActivationDriver<SsmActivation> {
  return {
    writesImageMap: false,
    check: (a, { plan, where }) => checkSsm(a, plan, where, deps),
    describe: (a) => `SSM parameter ${a.name} (aws:ec2:image) in each region of the chosen AMIs`,
    writesTo(a, { candidates, where }) {
      const writes = ssmWrites(a, candidates, where);
      if (writes.length === 0) return `ssm:${a.name} (no AMI chosen: left as it is)`;
      return `ssm:${a.name} in ${[...new Set(writes.map((w) => w.region))].join(', ')}`;
    },
    async activate(a, { candidates, where, plan, signal }) {
      const writes = ssmWrites(a, candidates, where);
      return writes.length ? await writeSsmParameters(a, writes, { releaseId: plan.releaseId, where, signal, deps }) : [];
    },
  };
}
