// `image-map-file` on `host:/path`: the farm keeps its inventory on a host. The host key must be pinned in the
// definition (`ssh.hostKey`): unlike a builder, an inventory host is long-lived and no earlier step of the release has
// met it, so trust on first use would trust whoever answers on every release.
import { ApplicationFailure } from '@temporalio/common';
import type { Activation } from '../../config/schema';
import type { SshCredentials, SshEndpoint } from '../ssh/connection';
import { FailureType } from '../failures';

type MapFile = Extract<Activation, { kind: 'image-map-file' }>;

/** `host:/abs/path` (host name or IPv4 address); anything else is a path on the worker. */
export const REMOTE_MAP_PATH = /^([A-Za-z0-9][A-Za-z0-9.-]{0,252}):(\/.*)$/;

export function remoteMapPath(a: MapFile, where: string): { endpoint: SshEndpoint; credentials: SshCredentials; file: string } | undefined {
  const m = REMOTE_MAP_PATH.exec(a.path);
  if (!m) return undefined;
  if (!a.ssh?.hostKey)
    throw ApplicationFailure.nonRetryable(
      `${where}.ssh.hostKey: required for an image map on a host (${a.path}); put the host's key there ` +
        `(\`ssh-keyscan -t ed25519 ${m[1]}\`, as "ssh-ed25519 AAAA...")`,
      FailureType.Config,
    );
  return {
    endpoint: { address: m[1]!, port: a.ssh.port, user: a.ssh.user, hostKey: a.ssh.hostKey },
    credentials: { privateKeyPath: a.ssh.privateKeyPath, privateKeyEnv: a.ssh.privateKeyEnv },
    file: m[2]!,
  };
}
