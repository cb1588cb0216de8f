import { describe, expect, inject, it } from 'vitest';
import { SshSession, shellQuote } from '../../activities/ssh/connection';

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
    (ssh as unknown as { client: { _sock: { destroy(err: Error): void } } }).client._sock.destroy(new Error('connection reset by test'));
    expect(await running).toBe('rejected');
    expect(ssh.lastError?.message).toMatch(/connection reset by test/);
  });
});
