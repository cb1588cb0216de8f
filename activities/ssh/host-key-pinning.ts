// Host keys for builders that no cloud API vouches for (static and command-provided hosts, cloud VMs whose console
// shows no key): a configured key is enforced; otherwise the key presented at first contact is recorded in
// BuilderHost and enforced from then on (TOFU).
import { activityLog, activitySignal, heartbeat } from '../runtime/heartbeat';
import { pollUntil } from '../runtime/poll';
import { hostKeyMismatch, SshSession, type SshCredentials, type SshEndpoint } from './connection';
import type { BuilderHost } from '../types';

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

export const shortKey = (key: string) => `${key.slice(0, 30)}…`;

/** Heartbeat details an acquire leaves once it has seen the builder's key, so that its retry enforces that key. */
export interface PinnedHostKey {
  pinnedHostKey: { id: string; address: string; port: number; hostKey: string };
}

/**
 * For builders that come back from acquire without a host key (a cloud whose console showed none yet, a cloud
 * without console output): waits until SSH answers, pins the key presented first, and returns the host with it. The
 * workflow keeps that host, so every later step enforces the key; a retried acquire enforces the key its previous
 * attempt saw (from the heartbeat) as long as it reaches the same VM.
 */
export async function pinFirstHostKey(
  host: BuilderHost,
  creds: SshCredentials,
  opts: { previous?: unknown; timeoutMs?: number; intervalMs?: number } = {},
): Promise<BuilderHost> {
  const earlier = (opts.previous as Partial<PinnedHostKey> | undefined)?.pinnedHostKey;
  const pinned = earlier && earlier.id === host.id && earlier.address === host.address && earlier.port === host.port ? earlier.hostKey : undefined;
  const endpoint = { address: host.address, port: host.port, user: host.user, hostKey: pinned };
  if (host.hostKey) {
    // The console may show the keys only by the retry: it must vouch for the key the first attempt saw.
    const typeOf = (key: string) => key.split(' ')[0];
    if (pinned && typeOf(pinned) === typeOf(host.hostKey) && pinned.split(' ')[1] !== host.hostKey.split(' ')[1])
      throw hostKeyMismatch(endpoint, host.hostKey);
    return host;
  }
  const signal = activitySignal();
  const maxIntervalMs = opts.intervalMs ?? 5000;
  const hostKey = await pollUntil(
    async (attempt) => {
      // Keeps the earlier attempt's record, so that a third attempt still knows it.
      heartbeat({ step: 'host-key', attempt, ...(pinned ? { pinnedHostKey: earlier } : {}) });
      return await learnHostKey(endpoint, creds, signal);
    },
    {
      describe: `builder ${host.id} at ${host.address}:${host.port} to answer SSH`,
      intervalMs: Math.min(1000, maxIntervalMs),
      maxIntervalMs,
      backoff: 'linear',
      timeoutMs: opts.timeoutMs ?? 10 * 60_000,
      signal,
      transientErrors: Number.POSITIVE_INFINITY,
      timeoutError: (tries, err) =>
        new Error(`builder ${host.id} at ${host.address}:${host.port}: no SSH after ${tries} tries to learn its host key: ${err?.message}`),
    },
  );
  heartbeat({ pinnedHostKey: { id: host.id, address: host.address, port: host.port, hostKey } } satisfies PinnedHostKey);
  activityLog(`builder ${host.id} at ${host.address}:${host.port}: host key ${shortKey(hostKey)} pinned for this release`);
  return { ...host, hostKey };
}
