// SSM parameter activation on moto: one parameter per region an AMI was copied to, written with the activation's own
// credentials (a profile as the base identity, a role assumed from it, the endpoint). moto keeps an assumed role's
// parameters in the role's account, so reading them back through the role (and not finding them in the default
// account) proves which identity wrote them.
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { GetParameterCommand, GetParameterHistoryCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createActivities } from '../../activities';
import { createActivationDrivers } from '../../activities/activation';
import type { Candidate } from '../../activities/types';
import { parsePlan } from '../../config/load';
import type { Activation } from '../../config/schema';
import { createActivityDeps } from '../../worker/wiring';
import { fakeCredentials } from './aws-helpers';

const rig = inject('rig');
const ROLE = 'arn:aws:iam::111111111111:role/copr-activation';
const dir = mkdtempSync(path.join(rig.dir, 'activation-ssm-'));
const prefix = `/copr/${randomUUID().slice(0, 8)}`;

beforeAll(() => {
  // The worker's AWS files: only the profile the activation names holds keys; nothing else to fall back on.
  writeFileSync(path.join(dir, 'credentials'), '[copr-base]\naws_access_key_id = AKIACOPRBASE0000001\naws_secret_access_key = base-secret\n');
  writeFileSync(path.join(dir, 'config'), '');
  process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'credentials');
  process.env.AWS_CONFIG_FILE = path.join(dir, 'config');
  for (const v of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete process.env[v];
});

/** An SSM client in the role's account, as an operator checking the result would use. */
async function roleSsm(region: string): Promise<SSMClient> {
  const sts = new STSClient({ region, endpoint: rig.motoEndpoint, credentials: fakeCredentials });
  const { Credentials: c } = await sts.send(new AssumeRoleCommand({ RoleArn: ROLE, RoleSessionName: 'test' }));
  return new SSMClient({
    region,
    endpoint: rig.motoEndpoint,
    credentials: { accessKeyId: c!.AccessKeyId!, secretAccessKey: c!.SecretAccessKey!, sessionToken: c!.SessionToken },
  });
}
const valueIn = async (ssm: SSMClient, name: string) =>
  (await ssm.send(new GetParameterCommand({ Name: name })).catch(() => undefined))?.Parameter?.Value;

const ami = (o: Partial<Candidate>): Candidate => ({
  arch: 'x86_64',
  target: 'aws-prod',
  kind: 'aws',
  region: 'us-east-1',
  imageId: 'ami-1',
  name: 'copr-builder-x86_64-20261126_120000',
  type: 'ami',
  size: 10,
  sha256: 'ab',
  ...o,
});

function plan(releaseId: string) {
  return parsePlan({
    releaseId,
    stamp: '20261126_120000',
    arches: ['x86_64', 'aarch64'],
    definition: {
      name: 'copr-builder',
      source: { image: 'quay.io/x/y:1' },
      architectures: {
        x86_64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['ami'], targets: ['aws-prod'] },
        aarch64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['ami'], targets: ['aws-prod'] },
      },
      targets: { 'aws-prod': { kind: 'aws', region: 'us-east-1', copyTo: ['us-west-2'] } },
      approval: { approvers: ['a'] },
      channels: {
        staging: {
          activation: [
            {
              kind: 'ssm-parameter',
              region: 'us-east-1',
              name: `${prefix}/{arch}`,
              credentials: { profile: 'copr-base', roleArn: ROLE, endpoint: rig.motoEndpoint },
            },
          ],
        },
      },
    },
  });
}

// Production wiring, no test credentials: the activation's reference is all the worker has.
const { activate } = createActivities(createActivityDeps({ definitionsDir: dir, stagingDir: dir, stateDir: dir, stagingQueue: 'q@w' }, { state: async () => 'open' as const, idsStartingWith: async () => [] }));

describe('ssm-parameter activation', () => {
  it('writes one parameter per region the AMI was copied to, with the role and profile of the activation, and records what it replaced', async () => {
    const east = await roleSsm('us-east-1');
    const west = await roleSsm('us-west-2');
    await east.send(new PutParameterCommand({ Name: `${prefix}/x86_64`, Value: 'ami-0000old', Type: 'String', DataType: 'aws:ec2:image' }));
    const candidates = [
      ami({ region: 'us-east-1', imageId: 'ami-00east' }),
      ami({ region: 'us-west-2', imageId: 'ami-00west' }),
      ami({ arch: 'aarch64', region: 'us-east-1', imageId: 'ami-000arm' }),
      ami({ arch: 'aarch64', region: 'us-west-2', imageId: 'ami-00armw' }),
    ];
    const input = { plan: plan('ssm-1'), channel: 'staging', candidates, approvedBy: 'a' };
    const record = await activate(input);

    expect(await valueIn(east, `${prefix}/x86_64`)).toBe('ami-00east');
    for (const [ssm, name] of [[east, 'x86_64'], [west, 'x86_64'], [east, 'aarch64'], [west, 'aarch64']] as const)
      expect((await ssm.send(new GetParameterCommand({ Name: `${prefix}/${name}` }))).Parameter?.DataType).toBe('aws:ec2:image');
    expect(await valueIn(west, `${prefix}/x86_64`)).toBe('ami-00west');
    expect(await valueIn(east, `${prefix}/aarch64`)).toBe('ami-000arm');
    expect(await valueIn(west, `${prefix}/aarch64`)).toBe('ami-00armw');
    // Not in the default account: the role was assumed, not some ambient identity used.
    const plain = new SSMClient({ region: 'us-east-1', endpoint: rig.motoEndpoint, credentials: fakeCredentials });
    expect(await valueIn(plain, `${prefix}/x86_64`)).toBeUndefined();

    const entries = [
      { path: [`${prefix}/x86_64`, 'us-east-1'], previous: 'ami-0000old', value: 'ami-00east' },
      { path: [`${prefix}/x86_64`, 'us-west-2'], value: 'ami-00west' },
      { path: [`${prefix}/aarch64`, 'us-east-1'], value: 'ami-000arm' },
      { path: [`${prefix}/aarch64`, 'us-west-2'], value: 'ami-00armw' },
    ];
    expect(record.replaced).toEqual([{ target: expect.stringContaining(`ssm:${prefix}/{arch}`), entries }]);

    // A retried activation writes nothing new and still reports what the first attempt replaced.
    const retried = await activate(input);
    expect(retried.replaced[0]!.entries).toEqual(entries);
    const versions = await east.send(new GetParameterHistoryCommand({ Name: `${prefix}/x86_64` }));
    expect(versions.Parameters?.map((p) => p.Value)).toEqual(['ami-0000old', 'ami-00east']);
  });

  it('leaves every parameter as it is for a release that chose no AMI (s390x alone), and writes nothing', async () => {
    const s390x: Candidate = { ...ami({}), arch: 's390x', target: 'ibm', kind: 'ibmcloud', region: 'us-east', imageId: 'r014-1', type: 'qcow2' };
    const east = await roleSsm('us-east-1');
    const before = await valueIn(east, `${prefix}/x86_64`);
    const record = await activate({ plan: plan('ssm-2'), channel: 'staging', candidates: [s390x], approvedBy: 'a' });
    expect(record.replaced.flatMap((r) => r.entries)).toEqual([]);
    expect(await valueIn(east, `${prefix}/x86_64`)).toBe(before);
    expect(await valueIn(east, `${prefix}/s390x`)).toBeUndefined();
  });

  it('fails instead of reporting "activated" when AMIs were chosen and still no parameter would be written', async () => {
    const regionless = ami({ region: undefined });
    await expect(activate({ plan: plan('ssm-3'), channel: 'staging', candidates: [regionless], approvedBy: 'a' })).rejects.toThrow(
      /channels\.staging\.activation\.0: no parameter to write: none of the chosen AMIs names its region/,
    );
  });
});

describe('ssm-parameter activation: preflight check', () => {
  const driver = createActivationDrivers({ stateDir: dir })['ssm-parameter'];
  const where = 'channels.staging.activation.0';
  const ssmOf = (p: ReturnType<typeof plan>) => p.definition.channels.staging!.activation[0] as Extract<Activation, { kind: 'ssm-parameter' }>;

  it('passes with the activation\'s credentials, reading the parameter in each region an AMI may be copied to, and writes nothing', async () => {
    const p = plan('ssm-check');
    const result = await driver.check(ssmOf(p), { plan: p, where });
    expect(result.ok).toBe(true);
    expect(result.messages).toEqual([
      'Checking AWS credentials…',
      'Credentials work (account 111111111111).',
      `Checking parameter ${prefix}/x86_64 in us-east-1…`,
      expect.stringMatching(new RegExp(`^Parameter ${prefix}/x86_64 (in us-east-1 can be read|does not exist in us-east-1 yet; it will be created)\\.$`)),
      `Checking parameter ${prefix}/x86_64 in us-west-2…`,
      expect.stringMatching(/us-west-2/),
      'SSM conditions met.',
    ]);
  });

  it('fails for a region that is not one and for credentials that do not resolve, naming the field', async () => {
    const p = plan('ssm-check-bad');
    const badRegion = await driver.check({ ...ssmOf(p), region: 'us-east' }, { plan: p, where });
    expect(badRegion).toEqual({ ok: false, messages: [`region "us-east" is not an AWS region name (like us-east-1); fix ${where}.region`] });
    const noProfile = { ...ssmOf(p), credentials: { profile: 'no-such-profile', endpoint: rig.motoEndpoint } };
    const refused = await driver.check(noProfile, { plan: p, where });
    expect(refused.ok).toBe(false);
    expect(refused.messages.at(-1)).toMatch(new RegExp(`^Failed: activation ${where}: AWS refused the credentials .*; check ${where.replace(/\./g, '\\.')}\\.credentials`));
  });
});
