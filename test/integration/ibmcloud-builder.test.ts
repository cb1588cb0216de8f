// Builder VMs on IBM Cloud VPC against the documented-contract stand-in; the instance is mapped to a real rig sshd so
// the host the provider returns is one we can actually log in to.
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Builder } from '../../config/schema';
import { createIbmCloudBuilderProvider, type IbmCloudBuilder } from '../../activities/ibmcloud/builder-vm';
import type { IbmCloudDeps } from '../../activities/ibmcloud/deps';
import { SshSession } from '../../activities/ssh/connection';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';

const rig = inject('rig');
const sshHost = rig.sshHosts[2];
const env = { IBM_KEY: 'editor-key-for-builders', IBM_VIEWER: 'viewer-key-for-builders' };
const ctx = { releaseId: 'rel-b1', arch: 's390x' } as const;
let standin: IbmCloudStandin;
let builder: IbmCloudBuilder;

const provider = (deps: IbmCloudDeps = {}) =>
  createIbmCloudBuilderProvider({ env, pollIntervalMs: 5, addressOf: () => ({ address: sshHost.address, port: sshHost.port }), ...deps });

beforeAll(async () => {
  standin = await IbmCloudStandin.start({
    apiKeys: { [env.IBM_KEY]: 'editor', [env.IBM_VIEWER]: 'viewer' },
    regions: {
      'us-east': {
        vpcs: ['r014-vpc-builders'],
        subnets: [{ id: '0757-subnet-1', zone: 'us-east-1', vpc: 'r014-vpc-builders' }],
        keys: ['r014-key-copr'],
        images: [{ id: 'r014-fedora-40-s390x', name: 'ibm-fedora-40-s390x' }],
      },
    },
    pendingReads: 3,
    maxPage: 2, // the janitor test lists more than a page
  });
  builder = Builder.parse({
    provider: 'ibmcloud',
    region: 'us-east',
    zone: 'us-east-1',
    profile: 'bz2-4x16',
    image: 'r014-fedora-40-s390x',
    vpc: 'r014-vpc-builders',
    subnet: '0757-subnet-1',
    keys: ['r014-key-copr'],
    floatingIp: true,
    apiKeyEnv: 'IBM_KEY',
    endpoint: standin.endpoint,
    iamEndpoint: standin.iamEndpoint,
    ssh: { privateKeyPath: rig.privateKeyPath },
  }) as IbmCloudBuilder;
});

afterAll(() => standin?.stop());

describe('ibmcloud builder provider', () => {
  it('check passes for a complete config and names the field of each missing resource', async () => {
    expect(await provider().check(builder, ctx)).toEqual({
      ok: true,
      messages: ['Exchanging the API key in IBM_KEY for an IAM token…', 'Checking image, profile, VPC, subnet and keys in us-east…', 'Builder conditions met.'],
    });
    const wrong = { ...builder, zone: 'us-east-2', subnet: '0757-nope', keys: ['r014-key-copr', 'r014-key-lost'], profile: 'bz2-64x256' };
    const result = await provider().check(wrong, ctx);
    expect(result.ok).toBe(false);
    expect(result.messages).toEqual(
      expect.arrayContaining([
        'architectures.s390x.builder.subnet: subnet 0757-nope not found in us-east',
        'architectures.s390x.builder.keys.1: SSH key r014-key-lost not found in us-east',
        'architectures.s390x.builder.profile: instance profile bz2-64x256 not found in us-east',
      ]),
    );
  });

  it('a refused API key is reported by check() before anything is created', async () => {
    const before = standin.requests.length;
    const result = await provider({ env: { IBM_KEY: 'revoked-key-123' } }).check(builder, ctx);
    expect(result.ok).toBe(false);
    expect(result.messages.at(-1)).toMatch(/IAM at .* refused the API key in IBM_KEY \(400: BXNIM0415E: Provided API key could not be found\.\).*architectures\.s390x\.builder\.apiKeyEnv/);
    expect(result.messages.join(' ')).not.toContain('revoked-key-123');
    expect(standin.requests.slice(before).map((r) => r.path)).toEqual(['/identity/token']);
    expect(standin.instances()).toEqual([]);

    const unset = await provider({ env: {} }).check(builder, ctx);
    expect(unset.messages.at(-1)).toMatch(/environment variable IBM_KEY is not set on the worker/);
  });

  it('acquire twice gives one running instance reachable over SSH; release leaves nothing behind', async () => {
    const exchanges = standin.tokenExchanges;
    const host = await provider().acquire(builder, ctx);
    const again = await provider().acquire(builder, ctx);

    expect(again.id).toBe(host.id);
    const instances = standin.instances('us-east');
    expect(instances).toHaveLength(1);
    expect(instances[0]).toMatchObject({
      name: 'bootc-release-rel-b1-s390x-builder',
      status: 'running',
      profile: { name: 'bz2-4x16' },
      image: { id: 'r014-fedora-40-s390x' },
      vpc: { id: 'r014-vpc-builders' },
      zone: { name: 'us-east-1' },
      keys: [{ id: 'r014-key-copr' }],
    });
    expect(standin.floatingIps()).toHaveLength(1);
    expect(host).toMatchObject({ provider: 'ibmcloud', address: sshHost.address, port: sshHost.port, user: 'root' });
    expect(host.resources.map((r) => r.kind)).toEqual(['instance', 'floating-ip']);
    // One token exchange per provider (each has its own cache), however many requests its acquire made.
    expect(standin.tokenExchanges - exchanges).toBe(2);

    const ssh = await SshSession.connect(host, { privateKeyPath: rig.privateKeyPath });
    try {
      expect((await ssh.exec(['echo', 'builder up'])).stdout.trim()).toBe('builder up');
    } finally {
      ssh.close();
    }

    await provider().release(builder, ctx, host);
    expect(standin.instances()).toEqual([]);
    expect(standin.floatingIps()).toEqual([]);
    await provider().release(builder, ctx, host); // twice: already gone is fine
  });

  it('without a floating IP the builder is reached at its primary IP', async () => {
    const plain = { ...builder, floatingIp: false };
    const host = await createIbmCloudBuilderProvider({ env, pollIntervalMs: 5 }).acquire(plain, { releaseId: 'rel-plain', arch: 's390x' });
    expect(host.address).toMatch(/^10\.240\./);
    expect(standin.floatingIps()).toEqual([]);
    await provider().release(plain, { releaseId: 'rel-plain', arch: 's390x' }, host);
  });

  it('renews a revoked token once instead of failing the step', async () => {
    const p = provider();
    const host = await p.acquire(builder, { releaseId: 'rel-revoked', arch: 's390x' });
    standin.revokeTokens();
    await p.release(builder, { releaseId: 'rel-revoked', arch: 's390x' }, host);
    expect(standin.instances()).toEqual([]);
  });

  it('a key that may only read fails acquire as a non-retryable permission error naming the key variable', async () => {
    const viewer = { ...builder, apiKeyEnv: 'IBM_VIEWER' };
    const err = await provider()
      .acquire(viewer, { releaseId: 'rel-viewer', arch: 's390x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ nonRetryable: true, type: 'PermissionError' });
    expect((err as Error).message).toMatch(/POST \/v1\/instances in us-east answered 403 .*the API key in IBM_VIEWER lacks access/);
    expect((err as Error).message).not.toContain(env.IBM_VIEWER);
  });

  it('lists every builder it owns, across pages, for the janitor, and deletes them', async () => {
    const p = provider();
    await Promise.all(['rel-j1', 'rel-j2', 'rel-j3'].map((releaseId) => p.acquire(builder, { releaseId, arch: 's390x' })));
    const owned = await p.listOwned!(builder);
    expect(owned.filter((o) => o.kind === 'instance').map((o) => [o.releaseId, o.arch]).sort()).toEqual([
      ['rel-j1', 's390x'],
      ['rel-j2', 's390x'],
      ['rel-j3', 's390x'],
    ]);
    expect(owned.filter((o) => o.kind === 'floating-ip')).toHaveLength(3);
    for (const o of owned.filter((r) => r.kind === 'floating-ip')) await p.deleteOwned!(builder, o);
    for (const o of owned.filter((r) => r.kind === 'instance')) await p.deleteOwned!(builder, o);
    expect(standin.floatingIps()).toEqual([]);
    expect(standin.instances().every((i) => i.status === 'deleting')).toBe(true);
  });
});
