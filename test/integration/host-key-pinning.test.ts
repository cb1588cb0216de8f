// SSH host keys pinned for the life of a release (builders) and of the worker (hypervisors), against real OpenSSH:
// each test runs its own sshd and restarts it with a different host key, as a replaced machine or someone in
// between would present. The builder is an AWS instance on moto (whose console output carries no key, so the first
// key seen is pinned); the hypervisor runs virsh against the real libvirtd.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { EC2Client, RegisterImageCommand } from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createActivities } from '../../activities';
import type { AwsClientDeps } from '../../activities/aws/clients';
import { createLibvirtBuilderProvider, type LibvirtBuilder } from '../../activities/libvirt/builder-vm';
import { createLibvirtTarget, type LibvirtTarget } from '../../activities/libvirt/target';
import { planFromDefinition } from '../../activities/plan/resolve-plan';
import { KnownHosts } from '../../activities/ssh/known-hosts';
import type { BuilderHost, PublishRequest } from '../../activities/types';
import { Builder, Target } from '../../config/schema';
import { createActivityDeps, releaseStateFrom } from '../../worker/wiring';
import { createPool, startLibvirtd, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { connectRig, workerDirs, type RigInfo } from '../rig/release-harness';
import { generateKey, SshServer, type RigKeys } from '../../scripts/servers/sshd';
import { MiB, sha256, sparseRaw } from './libvirt-helpers';

const rig = inject('rig') as RigInfo;
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const region = 'eu-west-1';
const keys: RigKeys = { privateKeyPath: rig.privateKeyPath, publicKey: readFileSync(`${rig.privateKeyPath}.pub`, 'utf8').trim() };
let dir: string;
let conn: Awaited<ReturnType<typeof connectRig>>;
const servers: SshServer[] = [];

/** An sshd of this test's own (rig hosts are shared by other test files), and a way to give it another host key. */
async function sshd(address: string) {
  let server = await SshServer.start(path.join(dir, 'hosts'), address, keys);
  servers.push(server);
  return {
    host: server.host,
    async rekey() {
      await server.stop();
      server = await SshServer.start(path.join(dir, 'hosts'), address, keys, { port: server.host.port, hostKeyName: 'replaced_host_ed25519_key' });
      servers.push(server);
      expect(server.host.hostKey).not.toBe(this.host.hostKey);
    },
  };
}

beforeAll(async () => {
  // Not under rig.dir: another vitest run in the same tree wipes .rig/last when it starts.
  dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-host-keys-'));
  conn = await connectRig(rig, 'host-key-pinning');
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  await conn?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A one-arch release plan whose builder is an instance of `ami` on moto. */
const awsPlan = (name: string, ami: string) =>
  planFromDefinition(
    {
      name,
      source: { image: 'quay.io/example/builder:latest' },
      architectures: {
        x86_64: {
          builder: { provider: 'aws', region, instanceType: 't3.micro', ami, credentials: { endpoint: rig.motoEndpoint }, ssh: { privateKeyPath: rig.privateKeyPath } },
          types: ['raw'],
          targets: ['local'],
        },
      },
      targets: { local: { kind: 'directory', path: '/var/tmp/bootc-release-host-key-test' } },
      approval: { approvers: ['copr-admin'] },
    },
    { releaseId: `${name}-${randomUUID().slice(0, 8)}`, startedAt: new Date() },
  );

const expectHostKeyRefused = (err: unknown, host: { address: string; port: number }) => {
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect(err).toMatchObject({ nonRetryable: true, type: 'HostKeyMismatch' });
  expect((err as Error).message).toContain(`${host.address}:${host.port}: SSH host key changed`);
};

describe('builder host keys', () => {
  it('pins the first key an AWS builder presents; a changed key fails the next step and a retried acquire without retry', async () => {
    const vm = await sshd('127.0.0.41');
    const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials });
    const ami = await ec2.send(new RegisterImageCommand({ Name: `host-keys-${randomUUID()}`, Architecture: 'x86_64' }));
    const dirs = workerDirs(path.join(dir, 'worker'));
    const acts = createActivities(
      createActivityDeps({ ...dirs, stagingQueue: 'host-keys@w1' }, releaseStateFrom(conn.client), {
        aws: { credentials, pollIntervalMs: 50, addressOf: () => ({ address: vm.host.address, port: vm.host.port }) },
      }),
    );
    const step = { plan: awsPlan('host-keys', ami.ImageId!), arch: 'x86_64' as const };

    const first = new MockActivityEnvironment();
    const beats: unknown[] = [];
    first.on('heartbeat', (d: unknown) => beats.push(d));
    const host: BuilderHost = await first.run(acts.acquireBuilder, step);
    try {
      expect(host.hostKey).toBe(vm.host.hostKey);
      // The step after acquire reaches the builder with the pinned key.
      expect(await new MockActivityEnvironment().run(acts.fetchArtifacts, { ...step, host, artifacts: [] })).toEqual([]);

      await vm.rekey();
      const err = await new MockActivityEnvironment().run(acts.fetchArtifacts, { ...step, host, artifacts: [] }).catch((e: unknown) => e);
      expectHostKeyRefused(err, vm.host);

      // A retry of the acquire (its worker died before it returned) resumes from the key its attempt recorded.
      const retry = new MockActivityEnvironment({ heartbeatDetails: beats.at(-1) });
      expectHostKeyRefused(await retry.run(acts.acquireBuilder, step).catch((e: unknown) => e), vm.host);
    } finally {
      await new MockActivityEnvironment().run(acts.releaseBuilder, { ...step, host });
    }
  });
});

describe('builder host keys from the AWS console', () => {
  it('pins the key the console output shows, so a builder presenting another one is refused from the first step', async () => {
    const vm = await sshd('127.0.0.43');
    const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials });
    const ami = await ec2.send(new RegisterImageCommand({ Name: `console-keys-${randomUUID()}`, Architecture: 'x86_64' }));
    // moto's console output is a fixed text without host keys: the test rewrites the answer to what cloud-init
    // prints on EC2, vouching for a key this sshd does not have (as if someone else answered on the builder's address).
    const vouched = generateKey(path.join(dir, 'vouched_host_key'), 'vouched').split(' ').slice(0, 2).join(' ');
    const consoleText = [
      'ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----',
      'ec2: 256 SHA256:x root@ip-10-0-0-1 (ED25519)',
      'ec2: -----END SSH HOST KEY FINGERPRINTS-----',
      '-----BEGIN SSH HOST KEY KEYS-----',
      `${vouched} root@ip-10-0-0-1`,
      '-----END SSH HOST KEY KEYS-----',
    ].join('\r\n');
    const onClient: AwsClientDeps['onClient'] = (client, service) => {
      if (service !== 'ec2') return;
      client.middlewareStack.add(
        (next: any, context: any) => async (args: any) => {
          const result = await next(args);
          if (context.commandName === 'GetConsoleOutputCommand') result.output.Output = Buffer.from(consoleText).toString('base64');
          return result;
        },
        { step: 'initialize', name: 'consoleWithHostKeys' },
      );
    };
    const dirs = workerDirs(path.join(dir, 'worker-console'));
    const acts = createActivities(
      createActivityDeps({ ...dirs, stagingQueue: 'console-keys@w1' }, releaseStateFrom(conn.client), {
        aws: { credentials, onClient, pollIntervalMs: 50, addressOf: () => ({ address: vm.host.address, port: vm.host.port }) },
      }),
    );
    const step = { plan: awsPlan('console-keys', ami.ImageId!), arch: 'x86_64' as const };
    const host: BuilderHost = await new MockActivityEnvironment().run(acts.acquireBuilder, step);
    try {
      expect(host.hostKey).toBe(vouched);
      const err = await new MockActivityEnvironment().run(acts.fetchArtifacts, { ...step, host, artifacts: [] }).catch((e: unknown) => e);
      expectHostKeyRefused(err, vm.host);
    } finally {
      await new MockActivityEnvironment().run(acts.releaseBuilder, { ...step, host });
    }
  });
});

describe('hypervisor host keys', () => {
  let libvirtd: Libvirtd;
  let pool: RigPool;
  beforeAll(async () => {
    libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
    pool = await createPool(dir, 'hostkeys');
  });
  afterAll(async () => {
    await pool?.remove();
    await libvirtd?.stop();
  });

  it('pins a hypervisor key in the worker-owned known_hosts file; a changed key fails the publish without retry, naming the host', async () => {
    const hv = await sshd('127.0.0.42');
    const knownHosts = new KnownHosts(path.join(dir, 'state', 'known_hosts'));
    const target = Target.parse({ kind: 'libvirt', hosts: [hv.host.address], ssh: { port: hv.host.port, privateKeyPath: rig.privateKeyPath }, pool: pool.name }) as LibvirtTarget;
    const file = sparseRaw(path.join(dir, 'disk.raw'), 8 * MiB, [[0, MiB]]);
    const st = statSync(file);
    const request = (imageName: string): PublishRequest & { target: LibvirtTarget } => ({
      releaseId: 'r1',
      arch: 'x86_64',
      targetName: 'hypervisors',
      target,
      artifact: { arch: 'x86_64', type: 'raw', path: file, size: st.size, dataBytes: st.blocks * 512, sha256: sha256(file), stagingQueue: 'q' },
      imageName,
    });
    // A worker restart builds a new driver over the same file: the pin lives in the file, not in the process.
    const publish = (imageName: string) => new MockActivityEnvironment().run(() => createLibvirtTarget({ knownHosts }).publish(request(imageName)));

    await publish('hostkeys-x86_64-20260101_000001');
    expect(await knownHosts.lookup(hv.host.address, hv.host.port)).toBe(hv.host.hostKey);

    await hv.rekey();
    const err = await publish('hostkeys-x86_64-20260101_000002').catch((e: unknown) => e);
    expectHostKeyRefused(err, hv.host);
    expect((err as Error).message).toContain(`ssh-keygen -R '[${hv.host.address}]:${hv.host.port}'`);
    expect(await pool.volumes()).not.toContain('hostkeys-x86_64-20260101_000002');
  });

  it("pins a libvirt builder's hypervisor the same way", async () => {
    const hv = await sshd('127.0.0.44');
    const knownHosts = new KnownHosts(path.join(dir, 'state-builder', 'known_hosts'));
    const builder = Builder.parse({
      provider: 'libvirt',
      host: hv.host.address,
      hypervisorSsh: { port: hv.host.port, privateKeyPath: rig.privateKeyPath },
      pool: pool.name,
      baseVolume: 'base.raw',
      ssh: { privateKeyPath: rig.privateKeyPath },
    }) as LibvirtBuilder;
    // A new provider per call, as after a worker restart.
    const listOwned = () => createLibvirtBuilderProvider({ knownHosts }).listOwned!(builder);
    await listOwned();
    expect(await knownHosts.lookup(hv.host.address, hv.host.port)).toBe(hv.host.hostKey);
    await hv.rekey();
    expectHostKeyRefused(await listOwned().catch((e: unknown) => e), hv.host);
  });
});
