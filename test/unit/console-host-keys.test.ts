// Host keys as cloud-init prints them to an EC2 instance's console, read back from GetConsoleOutput's text.
import { describe, expect, it } from 'vitest';
import { hostKeysFromConsole, preferredHostKey } from '../../activities/aws/console-host-keys';

const ED = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb7mS3fPbq5a8nCq0u1ZyQn0s8mUuB6xQ9Zx5fJ3kLm';
const EC = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPo7wG5x+Ab=';

describe('host keys from the EC2 console', () => {
  it('reads the keys of the last block, ignoring fingerprints, prefixes and carriage returns, and prefers ed25519', () => {
    const text = [
      '[   10.1] cloud-init[812]: Generating public/private ed25519 key pair.',
      'ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----',
      'ec2: 256 SHA256:abc root@ip-10-0-0-1 (ECDSA)',
      'ec2: -----END SSH HOST KEY FINGERPRINTS-----',
      '-----BEGIN SSH HOST KEY KEYS-----',
      'ssh-ed25519 AAAAold root@ip-10-0-0-1',
      '-----END SSH HOST KEY KEYS-----',
      '-----BEGIN SSH HOST KEY KEYS-----',
      `${EC} root@ip-10-0-0-1`,
      `${ED} root@ip-10-0-0-1`,
      '-----END SSH HOST KEY KEYS-----',
    ].join('\r\n');
    expect(hostKeysFromConsole(text)).toEqual([EC, ED]);
    expect(preferredHostKey(hostKeysFromConsole(text))).toBe(ED);
  });

  it('finds nothing in a console that has not printed its keys yet', () => {
    expect(hostKeysFromConsole('Linux version 6.8\n-----BEGIN SSH HOST KEY KEYS-----\n')).toEqual([]);
    expect(preferredHostKey([])).toBeUndefined();
  });
});
