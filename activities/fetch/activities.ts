// The fetch activity: every artifact of one architecture, from its builder into this worker's staging directory
// (`<stagingDir>/<releaseId>/<arch>/<type>/<basename>`), through activities/fetch/fetch-file.ts: data extents only,
// sha256 checked against the builder's. Heartbeats carry small resume state, so an attempt after a worker restart
// continues with the artifact and the pieces where the last one stopped; cancellation closes the channels.
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Arch, Builder } from '../../config/schema';
import { connectBuilder } from '../ssh/builder-session';
import type { SshSession } from '../ssh/connection';
import { fetchFile, StagingSpaceError, type FetchProgress } from './fetch-file';
import type { BuilderHost, BuiltArtifact, StagedArtifact } from '../types';
import { activityLog, activitySignal, previousDetails, throttledHeartbeat, withHeartbeats } from '../runtime/heartbeat';
import { FailureType } from '../failures';

export interface FetchArtifactsInput {
  releaseId: string;
  arch: Arch;
  host: BuilderHost;
  builder: Builder;
  artifacts: BuiltArtifact[];
}

/** Heartbeat details: a few hundred bytes whatever the artifact size. */
export interface FetchHeartbeat {
  /** Artifact being fetched (index into input.artifacts). */
  index: number;
  /** Data bytes of that artifact on disk, and its data bytes in all (0 until the builder described it). */
  bytesDone: number;
  total: number;
  /** fetchFile's resume state for that artifact. Artifacts before it are found by their checksum files. */
  progress?: FetchProgress;
}

export interface FetchDeps {
  stagingDir: string;
  stagingQueue: string;
  /** Minimum time between two heartbeats. Default 3 s. */
  heartbeatIntervalMs?: number;
  /** Data bytes per resumable piece (fetchFile's default: 64 MiB). */
  pieceBytes?: number;
}

export const stagingPath = (
  stagingDir: string,
  releaseId: string,
  arch: Arch,
  a: Pick<BuiltArtifact, 'type' | 'remotePath'>,
) => path.join(stagingDir, releaseId, arch, a.type, path.posix.basename(a.remotePath));

/**
 * `<file>.sha256` in sha256sum's format (`sha256sum -c` works; it skips the `#` line that keeps the data size), written
 * once the file is verified and on disk: a later attempt trusts it instead of hashing the file again.
 */
const checksumFile = (local: string) => `${local}.sha256`;

export function createFetchActivities(deps: FetchDeps) {
  const interval = deps.heartbeatIntervalMs ?? 3000;

  async function alreadyStaged(
    local: string,
    a: BuiltArtifact,
  ): Promise<{ size: number; dataBytes: number } | undefined> {
    const [st, sum] = await Promise.all([
      stat(local).catch(() => undefined),
      readFile(checksumFile(local), 'utf8').catch(() => ''),
    ]);
    if (!st || st.size !== a.size || !a.sha256 || sum.split(/\s+/)[0] !== a.sha256) return undefined;
    const dataBytes = /dataBytes=(\d+)/.exec(sum);
    return {
      size: st.size,
      dataBytes: dataBytes ? Number(dataBytes[1]) : Math.min(st.blocks * 512, st.size),
    };
  }

  async function fetchAll(input: FetchArtifactsInput): Promise<StagedArtifact[]> {
    const signal = activitySignal();
    const details = previousDetails<FetchHeartbeat>();
    const staged: StagedArtifact[] = [];
    const heartbeat = throttledHeartbeat<FetchHeartbeat>(interval);
    // Where this attempt starts: the previous attempt's resume state, else the first artifact.
    heartbeat(details ?? { index: 0, bytesDone: 0, total: 0 }, true);
    const connect = () => connectBuilder(input.host, input.builder, signal);
    let ssh: SshSession | undefined;
    try {
      ssh = await connect();
      for (const [index, a] of input.artifacts.entries()) {
        const local = stagingPath(deps.stagingDir, input.releaseId, input.arch, a);
        const stagedArtifact = (size: number, dataBytes: number, sha256: string): StagedArtifact => ({
          arch: input.arch,
          type: a.type,
          path: local,
          size,
          dataBytes,
          sha256,
          stagingQueue: deps.stagingQueue,
        });
        const onDisk = await alreadyStaged(local, a);
        if (onDisk) {
          staged.push(stagedArtifact(onDisk.size, onDisk.dataBytes, a.sha256));
          continue;
        }
        await mkdir(path.dirname(local), { recursive: true });
        // Until the new attempt reports, the details keep the old resume state: a death now must not lose it.
        const resume = details?.index === index ? details.progress : undefined;
        heartbeat(
          { index, bytesDone: resume?.bytesDone ?? 0, total: resume?.dataBytes ?? 0, progress: resume },
          true,
        );
        const result = await fetchFile(ssh, a.remotePath, local, {
          signal,
          expectedSha256: a.sha256 || undefined,
          expectedSparseSha256: a.sparseSha256,
          resume,
          openSession: connect,
          pieceBytes: deps.pieceBytes,
          onProgress: (progress) =>
            heartbeat({
              index,
              bytesDone: progress.bytesDone,
              total: progress.dataBytes,
              progress,
            }),
        }).catch(async (err: unknown) => {
          const failure = classify(err, input, a, deps.stagingDir);
          // A full disk is not retried: give the space of the partial file back.
          if (failure !== err) await rm(`${local}.part`, { force: true });
          throw failure;
        });
        // The checksum file vouches for the data: it must not reach the disk before the data does (a machine
        // crash would otherwise leave a "verified" file with lost pages).
        await datasync(local);
        await writeFile(
          checksumFile(local),
          `${result.sha256}  ${path.basename(local)}\n# size=${result.size} dataBytes=${result.dataBytes}\n`,
        );
        activityLog(
          `${input.arch}: fetched ${a.type} ${a.remotePath} to ${local}: ${result.dataBytes} data bytes of ${result.size}, ` +
            `${result.bytesFetched} this attempt, ${result.piecesSkipped} pieces resumed, sha256 ${result.sha256} ` +
            `(verified by ${result.verifiedBy}; receive window ${result.receiveWindow >> 20} MiB per stream)`,
        );
        staged.push(stagedArtifact(result.size, result.dataBytes, result.sha256));
      }
      heartbeat({ index: input.artifacts.length, bytesDone: 0, total: 0 }, true);
      return staged;
    } finally {
      ssh?.close();
    }
  }

  return {
    async fetchArtifacts(input: FetchArtifactsInput): Promise<StagedArtifact[]> {
      // Keeps the attempt alive while nothing moves on the wire: the final hash, the builder's sha256.
      return await withHeartbeats(() => fetchAll(input), interval);
    },
  };
}

async function datasync(file: string): Promise<void> {
  const fh = await open(file, 'r');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** A full staging disk will not empty itself on retry: say where and what to change. */
function classify(err: unknown, input: FetchArtifactsInput, a: BuiltArtifact, stagingDir: string): unknown {
  if ((err as NodeJS.ErrnoException)?.code === 'ENOSPC') {
    const need =
      err instanceof StagingSpaceError
        ? `${err.needBytes} bytes of data to fetch, ${err.freeBytes} free`
        : `${a.size} bytes apparent`;
    return ApplicationFailure.nonRetryable(
      `${input.arch}: no space left in the worker's staging directory ${stagingDir} for ${a.type} ${path.posix.basename(a.remotePath)} ` +
        `(${need}); free space there or point BOOTC_RELEASE_STAGING at a larger disk`,
      FailureType.StagingFull,
    );
  }
  return err;
}
