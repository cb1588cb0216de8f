// Connecting to a builder the workflow already knows: its address and pinned host key come from BuilderHost,
// the private key from the builder's ssh config (a path or an env var name on the worker).
import type { Builder } from '../../config/schema';
import type { BuilderHost } from '../types';
import { SshSession, withSsh, type SshCredentials, type SshEndpoint } from './connection';

export const endpointOf = (host: BuilderHost): SshEndpoint => ({
  address: host.address,
  port: host.port,
  user: host.user,
  hostKey: host.hostKey,
});

export const credentialsOf = (builder: Pick<Builder, 'ssh'>): SshCredentials => ({
  privateKeyPath: builder.ssh.privateKeyPath,
  privateKeyEnv: builder.ssh.privateKeyEnv,
});

export const connectBuilder = (host: BuilderHost, builder: Pick<Builder, 'ssh'>, signal?: AbortSignal) =>
  SshSession.connect(endpointOf(host), credentialsOf(builder), { signal });

export const withBuilder = <T>(
  host: BuilderHost,
  builder: Pick<Builder, 'ssh'>,
  fn: (ssh: SshSession) => Promise<T>,
  signal?: AbortSignal,
) => withSsh(endpointOf(host), credentialsOf(builder), fn, { signal });
