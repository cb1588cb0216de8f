// Activation: make the approved images the ones builders boot from, changing only what the release owns. Every step
// of the channel is planned (and its configuration checked) before the first one writes anything; then the image maps
// (a file on the worker or on a host over SSH, a git repository), the SSM parameters and the hook run in order.
import { commandEnv } from '../runtime/command-env';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import type { Activation, ReleasePlan } from '../../config/schema';
import type { ActivationRecord } from '../types';
import type { AwsClientDeps } from '../aws/clients';
import { activityContext } from '../ssh/host-key-pinning';
import { withHeartbeats } from '../runtime/heartbeat';
import { withSsh } from '../ssh/connection';
import type { Candidate } from '../types';
import { runHook, type HookDeps } from './hook';
import { buildImageMap, imageMapEntries, type MapEntry, type ReplacedEntry } from './image-map';
import { localStore, mergeIntoFile, sftpStore } from './map-file';
import { remoteMapPath } from './remote-path';
import { ssmWrites, writeSsmParameters, type SsmWrite } from '../aws/ssm-parameters';
import { durationMs } from '../../config/duration';

const git = promisify(execFile);

export interface ActivationDeps extends HookDeps {
  /** AWS client settings for SSM (tests: recording middleware). Credentials come from the activation's reference. */
  aws?: AwsClientDeps;
}

export interface ActivateInput {
  plan: ReleasePlan;
  channel: string;
  candidates: Candidate[];
  approvedBy: string;
}

type Step = { where: string; target: string; run: () => Promise<ReplacedEntry[]> };

export function createActivationActivities(deps: ActivationDeps) {
  function planStep(
    a: Activation,
    i: number,
    input: ActivateInput,
    entries: MapEntry[],
    /** What the steps before this one replaced (the hook gets it). */
    done: ActivationRecord['replaced'],
    signal?: AbortSignal,
  ): Step {
    const { plan, channel } = input;
    const where = `channels.${channel}.activation.${i}`;
    const releaseId = plan.releaseId;
    switch (a.kind) {
      case 'image-map-file': {
        const remote = remoteMapPath(a, where);
        if (!remote) return { where, target: a.path, run: () => mergeIntoFile(localStore(a.path), a.key, entries, releaseId) };
        const label = `${remote.endpoint.user}@${remote.endpoint.address}:${remote.file}`;
        return {
          where,
          target: label,
          run: () =>
            withSsh(
              remote.endpoint,
              remote.credentials,
              async (ssh) => mergeIntoFile(sftpStore(ssh, await ssh.sftp(), label, remote.file), a.key, entries, releaseId),
              { signal },
            ),
        };
      }
      case 'image-map-git':
        return {
          where,
          target: `${a.repository}#${a.branch}:${a.file}`,
          run: async () => {
            const dir = await mkdtemp(path.join(os.tmpdir(), 'bootc-release-git-'));
            try {
              await git('git', ['clone', '--quiet', '--depth', '1', '--branch', a.branch, a.repository, dir]);
              // A private clone: no lock; a push that lost a race fails, and the retry merges into the new head.
              const replaced = await mergeIntoFile(localStore(path.join(dir, a.file), { lock: false }), a.key, entries, releaseId);
              await git('git', ['-C', dir, 'add', a.file]);
              const staged = await git('git', ['-C', dir, 'diff', '--cached', '--quiet']).then(() => false, () => true);
              if (staged) {
                const id = ['-c', 'user.name=bootc-release', '-c', 'user.email=bootc-release@localhost'];
                await git('git', ['-C', dir, ...id, 'commit', '--quiet', '-m', `Activate images of release ${releaseId}`]);
                await git('git', ['-C', dir, 'push', '--quiet', 'origin', `HEAD:${a.branch}`]);
              }
              return replaced;
            } finally {
              await rm(dir, { recursive: true, force: true });
            }
          },
        };
      case 'ssm-parameter': {
        const writes: SsmWrite[] = ssmWrites(a, input.candidates, where);
        if (writes.length === 0) return { where, target: `ssm:${a.name} (no AMI chosen: left as it is)`, run: async () => [] };
        return {
          where,
          target: `ssm:${a.name} in ${[...new Set(writes.map((w) => w.region))].join(', ')}`,
          run: () => writeSsmParameters(a, writes, { releaseId, where, signal, deps: deps.aws }),
        };
      }
      case 'command':
        return {
          where,
          target: `command:${a.command.join(' ')}`,
          run: async () => {
            await runHook(
              a,
              {
                dir: path.join(deps.stateDir, 'activation', releaseId, `${channel}-${i}`),
                timeoutMs: durationMs(a.timeout),
                input: { releaseId, channel, approvedBy: input.approvedBy, imageMap: buildImageMap(input.candidates, plan), replaced: done },
                // An explicit environment, not the worker's: a hook sees no credentials the worker holds.
                env: commandEnv(a.passEnv, { BOOTC_RELEASE_ID: releaseId }),
                where,
              },
              deps,
            );
            return [];
          },
        };
    }
  }

  async function activate(input: ActivateInput): Promise<ActivationRecord> {
    const { plan, channel, candidates } = input;
    if (candidates.length === 0) throw ApplicationFailure.nonRetryable('nothing to activate: no image was chosen', 'ConfigError');
    const entries = imageMapEntries(candidates, plan);
    const signal = activityContext()?.cancellationSignal;
    const replaced: ActivationRecord['replaced'] = [];
    const steps = (plan.definition.channels[channel]?.activation ?? []).map((a, i) => planStep(a, i, input, entries, replaced, signal));
    for (const step of steps) {
      try {
        replaced.push({ target: step.target, entries: await withHeartbeats(step.run) });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof ApplicationFailure) throw err;
        throw new Error(`${step.where} (${step.target}): ${(err as Error).message}`);
      }
    }
    return { channel, imageMap: buildImageMap(candidates, plan), replaced, writtenTo: steps.map((s) => s.target), at: new Date().toISOString() };
  }

  return { activate };
}

