import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, inject, it } from 'vitest';
import { Builder } from '../../config/schema';
import { createStaticProvider, type StaticBuilder } from '../../activities/hosts/static';
import { freePort } from '../../scripts/servers/tools';
import { testDir } from './builder-fixtures';

describe('static builder provider', () => {
  const rig = inject('rig');
  const [h0, h1, h2] = rig.sshHosts;
  const provider = createStaticProvider();
  const staticHosts = (dir: string, hosts: Record<string, unknown>[]) =>
    Builder.parse({
      provider: 'static',
      hosts,
      ssh: { privateKeyPath: rig.privateKeyPath },
      workDir: path.join(dir, 'work'),
    }) as StaticBuilder;

  it('gives each architecture its own free host, pins its key on first use, and gives a retry the same host', async () => {
    const dir = testDir(rig, 'static-claims');
    const builder = staticHosts(dir, [
      { address: h0.address, port: h0.port },
      { address: h1.address, port: h1.port },
    ]);
    const x86 = await provider.acquire(builder, { releaseId: 'r1', arch: 'x86_64' });
    expect(x86).toMatchObject({
      provider: 'static',
      address: h0.address,
      port: h0.port,
      user: 'root',
      hostKey: h0.hostKey,
    });
    const arm = await provider.acquire(builder, { releaseId: 'r1', arch: 'aarch64' });
    expect(arm).toMatchObject({ address: h1.address, hostKey: h1.hostKey });
    expect(await provider.acquire(builder, { releaseId: 'r1', arch: 'x86_64' })).toEqual(x86);

    const busy = await provider.acquire(builder, { releaseId: 'r2', arch: 's390x' }).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(Error);
    expect(busy).not.toBeInstanceOf(ApplicationFailure);
    expect((busy as Error).message).toMatch(
      /no free static builder: .*in use by r1\/x86_64.*in use by r1\/aarch64/,
    );

    expect(await provider.listOwned!(builder)).toEqual([
      { kind: 'static-claim', id: `${h0.address}:${h0.port}`, releaseId: 'r1', arch: 'x86_64' },
      { kind: 'static-claim', id: `${h1.address}:${h1.port}`, releaseId: 'r1', arch: 'aarch64' },
    ]);

    const leftover = path.join(builder.workDir, 'r1', 'x86_64', 'qcow2');
    mkdirSync(leftover, { recursive: true });
    writeFileSync(path.join(leftover, 'build.log'), 'x');
    await provider.release(builder, { releaseId: 'r1', arch: 'x86_64' }, x86);
    expect(existsSync(path.join(builder.workDir, 'r1', 'x86_64'))).toBe(false);
    expect(await provider.acquire(builder, { releaseId: 'r2', arch: 's390x' })).toMatchObject({
      address: h0.address,
    });

    await provider.deleteOwned!(builder, {
      kind: 'static-claim',
      id: `${h1.address}:${h1.port}`,
      releaseId: 'r1',
      arch: 'aarch64',
    });
    expect((await provider.listOwned!(builder)).map((o) => o.releaseId)).toEqual(['r2']);
  });

  it('refuses a host whose key differs from the configured one, without trying the next host', async () => {
    const dir = testDir(rig, 'static-key');
    const builder = staticHosts(dir, [
      { address: h0.address, port: h0.port, hostKey: h2.hostKey },
      { address: h1.address, port: h1.port },
    ]);
    const err = await provider.acquire(builder, { releaseId: 'r3', arch: 'x86_64' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('HostKeyMismatch');
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
  });

  it('checks every host before a release starts and passes while one is usable', async () => {
    const dir = testDir(rig, 'static-check');
    const closed = await freePort('127.0.0.1');
    const one = await provider.check(
      staticHosts(dir, [
        { address: '127.0.0.1', port: closed },
        { address: h0.address, port: h0.port },
      ]),
      { releaseId: 'r4', arch: 'x86_64' },
    );
    expect(one.ok).toBe(true);
    expect(one.messages.join('\n')).toMatch(/127\.0\.0\.1: .*ECONNREFUSED/);
    expect(one.messages.join('\n')).toContain(
      `${h0.address}: reachable, host key ${h0.hostKey.slice(0, 30)}`,
    );
    const none = await provider.check(staticHosts(dir, [{ address: '127.0.0.1', port: closed }]), {
      releaseId: 'r4',
      arch: 'x86_64',
    });
    expect(none.ok).toBe(false);
    const wrongKey = await provider.check(
      staticHosts(dir, [{ address: h0.address, port: h0.port, hostKey: h1.hostKey }]),
      { releaseId: 'r4', arch: 'x86_64' },
    );
    expect(wrongKey.ok).toBe(false);
    expect(wrongKey.messages.join('\n')).toMatch(/host key changed/);
  });
});
