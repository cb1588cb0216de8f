// The host key an EC2 instance vouches for itself: cloud-init prints the keys sshd generated on first boot to the
// serial console between `-----BEGIN SSH HOST KEY KEYS-----` and `-----END SSH HOST KEY KEYS-----`, and
// GetConsoleOutput returns it through the API, outside the SSH channel an attacker in between would control.
import { GetConsoleOutputCommand } from '@aws-sdk/client-ec2';
import type { Sends } from './clients';

/** Most preferred first: the type ssh2 asks for first, so a pinned key is what the host presents. */
const PREFERENCE = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];

/** Every "type base64" key of the last host key block in a console log (lines may carry an `ec2: ` prefix). */
export function hostKeysFromConsole(output: string): string[] {
  const lines = output.split(/\r?\n/).map((l) => l.replace(/^ec2:\s*/, '').trim());
  const begin = lines.lastIndexOf('-----BEGIN SSH HOST KEY KEYS-----');
  const end = lines.indexOf('-----END SSH HOST KEY KEYS-----', begin);
  if (begin < 0 || end < 0) return [];
  return lines
    .slice(begin + 1, end)
    .map((l) => l.split(/\s+/))
    .filter(([type, key]) => PREFERENCE.includes(type) && /^[A-Za-z0-9+/]+=*$/.test(key ?? ''))
    .map(([type, key]) => `${type} ${key}`);
}

export const preferredHostKey = (keys: string[]) =>
  [...keys].sort((a, b) => PREFERENCE.indexOf(a.split(' ')[0]) - PREFERENCE.indexOf(b.split(' ')[0]))[0];

/**
 * The instance's host key from its console output, or undefined while the console shows none (it appears a minute
 * or so after boot, and images without cloud-init never print it): the first key seen is pinned instead.
 */
export async function consoleHostKey(ec2: Sends<GetConsoleOutputCommand>, instanceId: string): Promise<string | undefined> {
  try {
    const out = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId }));
    return preferredHostKey(hostKeysFromConsole(Buffer.from(out.Output ?? '', 'base64').toString('utf8')));
  } catch {
    // Not allowed to read the console (ec2:GetConsoleOutput) or not available: trust on first use still pins a key.
    return undefined;
  }
}
