import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, inject, it } from 'vitest';
import { Builder } from '../../config/schema';
import { createCommandProvider, type CommandBuilder } from '../../activities/hosts/command';
import { testDir } from './builder-fixtures';

/**
 * Test fixture: a tiny resalloc-like allocator. `ticket` opens a numbered ticket, `ticket-wait ID` prints the
 * address of the host behind it, `ticket-close ID` closes it. Every call is logged for the assertions.
 */
function fakeResalloc(dir: string, address: string, waitSecondsFile = ''): string {
  const script = path.join(dir, 'resalloc');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
WAIT_SECONDS_FILE=${waitSecondsFile}
d=${dir}/tickets
mkdir -p "$d"
echo "$* release=$BOOTC_RELEASE_ID arch=$BOOTC_RELEASE_ARCH" >> "$d/calls"
case "$1" in
  ticket) n=$(( $(cat "$d/counter" 2>/dev/null || echo 0) + 1 )); echo $n > "$d/counter"; echo open > "$d/$n"; echo "Created ticket"; echo $n ;;
  ticket-wait) [ -z "$WAIT_SECONDS_FILE" ] || sleep "$(cat "$WAIT_SECONDS_FILE")"; [ "$(cat "$d/$2")" = open ] || { echo "ticket $2 is not open" >&2; exit 1; }; echo ${address} ;;
  ticket-close) echo closed > "$d/$2" ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
`,
  );
  chmodSync(script, 0o755);
  return script;
}

describe('command builder provider', () => {
  const rig = inject('rig');
  const h = rig.sshHosts[3];
  const builderFor = (dir: string, script: string) =>
    Builder.parse({
      provider: 'command',
      acquire: [script, 'ticket', '--tag', 'arch_x86_64'],
      wait: [script, 'ticket-wait'],
      release: [script, 'ticket-close'],
      ssh: { privateKeyPath: rig.privateKeyPath, port: h.port },
      workDir: path.join(dir, 'work'),
    }) as CommandBuilder;
  const tickets = (dir: string) => path.join(dir, 'tickets');

  it('takes one ticket, waits for its address, pins the host key, and a retry reuses the ticket', async () => {
    const dir = testDir(rig, 'command-ticket');
    const builder = builderFor(dir, fakeResalloc(dir, h.address));
    const provider = createCommandProvider({ stateDir: path.join(dir, 'state') });
    const ctx = { releaseId: 'r1', arch: 'x86_64' as const };
    const host = await provider.acquire(builder, ctx);
    expect(host).toEqual({
      provider: 'command',
      id: '1',
      address: h.address,
      port: h.port,
      user: 'root',
      hostKey: h.hostKey,
      resources: [],
    });
    expect(await provider.acquire(builder, ctx)).toEqual(host);
    expect(readFileSync(path.join(tickets(dir), 'counter'), 'utf8').trim()).toBe('1');
    expect(readFileSync(path.join(tickets(dir), 'calls'), 'utf8')).toContain(
      'ticket --tag arch_x86_64 release=r1 arch=x86_64',
    );

    await provider.release(builder, ctx, host);
    expect(readFileSync(path.join(tickets(dir), '1'), 'utf8').trim()).toBe('closed');
    expect(readdirSync(path.join(dir, 'state', 'command-provider'))).toEqual([]);
    // A new acquire after release is a new ticket.
    expect((await provider.acquire(builder, ctx)).id).toBe('2');
  });

  it('finds the ticket in the heartbeat details when the retry runs on another worker', async () => {
    const dir = testDir(rig, 'command-heartbeat');
    const builder = builderFor(dir, fakeResalloc(dir, h.address));
    const ctx = { releaseId: 'r2', arch: 'x86_64' as const };
    const beats: unknown[] = [];
    const first = new MockActivityEnvironment();
    first.on('heartbeat', (d: unknown) => beats.push(d));
    const host = await first.run(() =>
      createCommandProvider({ stateDir: path.join(dir, 'worker-a') }).acquire(builder, ctx),
    );
    expect(beats).toContainEqual({ handle: '1' });

    const retry = new MockActivityEnvironment({ heartbeatDetails: { handle: '1' } });
    const again = await retry.run(() =>
      createCommandProvider({ stateDir: path.join(dir, 'worker-b') }).acquire(builder, ctx),
    );
    expect(again).toEqual(host);
    expect(readFileSync(path.join(tickets(dir), 'counter'), 'utf8').trim()).toBe('1');
  });

  it('keeps the ticket in every heartbeat while ticket-wait runs, so a retry elsewhere waits on the same ticket', async () => {
    const dir = testDir(rig, 'command-wait-heartbeat');
    // ticket-wait takes long (the allocator has no free builder yet): the first attempt dies while it waits.
    const waitFile = path.join(dir, 'wait-seconds');
    writeFileSync(waitFile, '30');
    const builder = builderFor(dir, fakeResalloc(dir, h.address, waitFile));
    const ctx = { releaseId: 'r4', arch: 'x86_64' as const };
    const beats: unknown[] = [];
    const first = new MockActivityEnvironment();
    first.on('heartbeat', (d: unknown) => {
      beats.push(d);
      // The worker dies after a few heartbeats of the wait: only what the server recorded last survives.
      if (beats.length === 4) first.cancel();
    });
    await expect(
      first.run(() =>
        createCommandProvider({ stateDir: path.join(dir, 'worker-a'), heartbeatMs: 100 }).acquire(builder, ctx),
      ),
    ).rejects.toThrow();
    expect(beats.at(-1)).toEqual({ handle: '1' });

    writeFileSync(waitFile, '0');
    const retry = new MockActivityEnvironment({ heartbeatDetails: beats.at(-1) });
    const host = await retry.run(() =>
      createCommandProvider({ stateDir: path.join(dir, 'worker-b'), heartbeatMs: 100 }).acquire(builder, ctx),
    );
    expect((host as { id: string }).id).toBe('1');
    expect(readFileSync(path.join(tickets(dir), 'counter'), 'utf8').trim()).toBe('1');
    const calls = readFileSync(path.join(tickets(dir), 'calls'), 'utf8').split('\n');
    expect(calls.filter((c) => c.startsWith('ticket-wait 1 '))).toHaveLength(2);
  });

  it('fails non-retryably naming the field when the allocator is not installed, and check says so first', async () => {
    const dir = testDir(rig, 'command-missing');
    const builder = builderFor(dir, path.join(dir, 'no-such-resalloc'));
    const provider = createCommandProvider({ stateDir: path.join(dir, 'state') });
    const check = await provider.check(builder, { releaseId: 'r3', arch: 'x86_64' });
    expect(check.ok).toBe(false);
    expect(check.messages[0]).toMatch(/acquire: .*no-such-resalloc is not an executable/);
    const err = await provider.acquire(builder, { releaseId: 'r3', arch: 'x86_64' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toContain('architectures.x86_64.builder.acquire');
    expect(existsSync(path.join(dir, 'state', 'command-provider', 'r3-x86_64.json'))).toBe(false);

    const good = await createCommandProvider({ stateDir: path.join(dir, 'state') }).check(
      builderFor(dir, fakeResalloc(dir, h.address)),
      {
        releaseId: 'r3',
        arch: 'x86_64',
      },
    );
    expect(good).toMatchObject({ ok: true });
  });
});
