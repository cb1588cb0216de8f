// Host keys for builders that no cloud API vouches for (static hosts, command-provided hosts): a configured key is
// enforced; otherwise the key presented at first contact is recorded in BuilderHost and enforced from then on (TOFU).
import { Context } from '@temporalio/activity';
import { SshSession, type SshCredentials, type SshEndpoint } from '../ssh/connection';

/** Connects once; returns the key the host presented (equal to endpoint.hostKey when that was set). */
export async function learnHostKey(
  endpoint: SshEndpoint,
  creds: SshCredentials,
  signal?: AbortSignal,
): Promise<string> {
  const ssh = await SshSession.connect(endpoint, creds, { signal, readyTimeoutMs: 15_000 });
  try {
    return ssh.hostKey;
  } finally {
    ssh.close();
  }
}

/** The running activity's context, or undefined when called as a plain function (tests, benches, CLI). */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export const shortKey = (key: string) => `${key.slice(0, 30)}…`;
