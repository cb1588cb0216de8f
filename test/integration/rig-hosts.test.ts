// The rig's SSH hosts behave the same on every machine: sessions never run the machine user's login files.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, inject, it } from 'vitest';

describe("the rig's SSH builders", () => {
  const rig = inject('rig');
  const ssh = (host: { address: string; port: number }, command: string) =>
    execFileSync(
      'ssh',
      ['-i', rig.privateKeyPath, '-p', String(host.port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', `root@${host.address}`, command],
      { encoding: 'utf8' },
    ).trim();

  it("give sessions a HOME inside the rig, so bash never sources this machine's ~/.bashrc", () => {
    for (const host of rig.sshHosts) {
      const home = ssh(host, 'echo "$HOME"');
      expect(path.relative(rig.dir, home).startsWith('..')).toBe(false);
      // bash sources ~/.bashrc for commands run by sshd; the rig's HOME holds none.
      expect(ssh(host, 'test -e "$HOME/.bashrc" && echo present || echo absent')).toBe('absent');
    }
  });
});
