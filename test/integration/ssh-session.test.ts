import { describe, expect, inject, it } from 'vitest';
import { SshSession, shellQuote } from '../../activities/ssh/connection';
import { MAX_WINDOW, topUpWindow } from '../../activities/fetch/range-stream';
import { tcpRelay } from './fetch-helpers';

describe('ssh session', () => {
  const rig = inject('rig');
  const host = rig.sshHosts[0];

  it('runs an argument array on the host with every argument quoted', async () => {
    const ssh = await SshSession.connect({ ...host }, { privateKeyPath: rig.privateKeyPath });
    try {
      const tricky = `it's a "test" $(whoami) ; rm -rf /nonexistent`;
      const { stdout } = await ssh.exec(['printf', '%s', tricky]);
      expect(stdout).toBe(tricky);
      expect(ssh.hostKey.split(' ')[1]).toBe(host.hostKey.split(' ')[1]);
    } finally {
      ssh.close();
    }
  });

  it('refuses a host whose key differs from the pinned one', async () => {
    const other = rig.sshHosts[1];
    await expect(
      SshSession.connect({ ...host, hostKey: other.hostKey }, { privateKeyPath: rig.privateKeyPath }),
    ).rejects.toThrow(/host key changed/);
  });

  it("widens a channel's receive window beyond ssh2's 2 MiB (what a fetch over a WAN needs; guards the ssh2 internals it uses)", async () => {
    const ssh = await SshSession.connect({ ...host }, { privateKeyPath: rig.privateKeyPath });
    try {
      const want = 12 * 1024 * 1024;
      const channel = await ssh.channel(`head -c ${want} /dev/zero`);
      // Nothing reads from here on: what arrives is what the window lets the server send (ssh2 alone: 2 MiB).
      // The fetch has sent its ranges and EOF by the time it tops up: the window must still grow then.
      channel.pause();
      channel.end();
      topUpWindow(channel, 16 * 1024 * 1024);
      expect(MAX_WINDOW).toBeGreaterThanOrEqual(16 * 1024 * 1024);
      const deadline = Date.now() + 15_000;
      while (channel.readableLength < want && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(channel.readableLength).toBe(want);
    } finally {
      ssh.close();
    }
  });

  it('times a round trip, and gives up on an answer that does not come in time without harming the session', async () => {
    const link = await tcpRelay(host);
    const ssh = await SshSession.connect(
      { ...host, address: link.address, port: link.port },
      { privateKeyPath: rig.privateKeyPath },
    );
    try {
      expect(await ssh.ping()).toBeGreaterThan(0);
      // Nothing comes back while the link stalls: no figure after the timeout, and the late answer is absorbed.
      link.stall(true);
      expect(await ssh.ping(300)).toBeUndefined();
      link.stall(false);
      expect(await ssh.ping()).toBeLessThan(1000);
      expect((await ssh.exec(['echo', 'still fine'])).stdout.trim()).toBe('still fine');
    } finally {
      ssh.close();
      await link.close();
    }
  });

  it('reports the exit code of commands that end at once (their exit-status can come with the channel opening)', async () => {
    const ssh = await SshSession.connect({ ...host }, { privateKeyPath: rig.privateKeyPath });
    try {
      for (let i = 0; i < 40; i++) {
        const result = await ssh.exec('echo done; exit 3', { allowFailure: true });
        expect(result).toMatchObject({ code: 3, stdout: 'done\n' });
      }
    } finally {
      ssh.close();
    }
  });

  it('quotes the empty string and single quotes', () => {
    expect(shellQuote('')).toBe("''");
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });
});

describe('a connection that breaks after it was established', () => {
  const rig = inject('rig');

  it('does not crash the process: the error is recorded and a running command rejects', async () => {
    const ssh = await SshSession.connect({ ...rig.sshHosts[0]! }, { privateKeyPath: rig.privateKeyPath });
    const running = ssh.exec(['sleep', '30']).then(
      () => 'finished',
      () => 'rejected',
    );
    await new Promise((r) => setTimeout(r, 300));
    // Break the transport underneath ssh2, as a network fault would.
    (ssh as unknown as { client: { _sock: { destroy(err: Error): void } } }).client._sock.destroy(
      new Error('connection reset by test'),
    );
    expect(await running).toBe('rejected');
    expect(ssh.lastError?.message).toMatch(/connection reset by test/);
  });
});
