// Opening virsh on a hypervisor over SSH, with refused keys turned into errors that name the config field to fix.
import { ApplicationFailure } from '@temporalio/common';
import { durationMs } from '../../config/duration';
import type { Target } from '../../config/schema';
import { SshSession } from '../ssh/connection';
import type { KnownHosts } from '../ssh/known-hosts';
import { sshHypervisor, type HypervisorRunner } from './virsh';
import { FailureType } from '../failures';

export type HypervisorSsh = Extract<Target, { kind: 'libvirt' }>['ssh'];

/**
 * `field` is the config path of the ssh block, e.g. `targets.hypervisors.ssh`. With `knownHosts` (the worker's file),
 * a hypervisor without a configured `hostKey` must present the key it presented the first time.
 */
export async function openHypervisor(
  host: string,
  ssh: HypervisorSsh,
  uri: string,
  field: string,
  signal?: AbortSignal,
  knownHosts?: KnownHosts,
): Promise<HypervisorRunner> {
  try {
    const configured = { address: host, port: ssh.port, user: ssh.user, hostKey: ssh.hostKey, hostKeyHint: `The key is pinned by ${field}.hostKey.` };
    const endpoint = knownHosts ? await knownHosts.pin(configured) : configured;
    const session = await SshSession.connect(
      endpoint,
      { privateKeyPath: ssh.privateKeyPath, privateKeyEnv: ssh.privateKeyEnv },
      { signal, readyTimeoutMs: durationMs(ssh.connectTimeout) },
    );
    if (knownHosts && !endpoint.hostKey)
      await knownHosts.record(endpoint, session.hostKey).catch((err: unknown) => {
        session.close();
        throw err;
      });
    return sshHypervisor(session, host, uri);
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    if (/authentication methods failed/i.test((err as Error).message))
      throw ApplicationFailure.nonRetryable(`${host}: SSH refused the key for ${ssh.user}; fix ${field}`, FailureType.Permission);
    throw new Error(`${host}:${ssh.port}: cannot connect over SSH: ${(err as Error).message}`);
  }
}
