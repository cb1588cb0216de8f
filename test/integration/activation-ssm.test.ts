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
import type { Candidate } from '../../activities/types';
import { parsePlan } from '../../config/load';
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
