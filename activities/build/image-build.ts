// Running bootc-image-builder on a builder: each run detached in `<workDir>/<releaseId>/<arch>/<run>/`, polled over
// SSH with small progress reports, re-attached (never started twice) after a retry, a worker restart or a dropped
// connection, killed with its container on cancellation, and classified when it fails.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Arch, Builder, ImageType } from '../../config/schema';
import type { BuilderHost, BuiltArtifact } from '../types';
import { SshCommandError, shellCommand, shellQuote, type SshSession } from '../ssh/connection';
import { bibRuns, type BibRun, type ImageBuilderConfig } from './bib-runs';
import { archiveFailedAttempt, DETACHED_FILES, driveDetached, killDetached, parseFields } from '../ssh/detached';
import { BuilderLink } from '../ssh/link';
import { countManifestStages, lastLines, noSpaceLine, progressMessage, progressScript } from './progress';
import { buildDigestCommand, parseDigests } from '../fetch/remote-file';
import { withHeartbeats } from '../runtime/heartbeat';
import { FailureType } from '../failures';

export interface RunImageBuildInput {
  releaseId: string;
  arch: Arch;
  host: BuilderHost;
  builder: Builder;
  imageBuilder: ImageBuilderConfig;
  /** The source image in the builder's container storage (prepareContainerImage's imageRef). */
  imageRef: string;
  types: ImageType[];
}

/** What a heartbeat carries: a few short fields, never log text beyond one line. */
export interface BuildProgress {
  run: string;
  /** 1-based index of the run and how many there are (ami and raw are two runs). */
  runIndex: number;
  runs: number;
  phase: 'starting' | 'building' | 'checksumming' | 'reconnecting' | 'done';
  /** Stages begun so far and the manifest's total, when known. */
  step: number;
  total?: number;
  message: string;
}

export interface ImageBuildResult {
  artifacts: BuiltArtifact[];
  /** Full build logs on the worker, one per run: `<stagingDir>/<releaseId>/<arch>/build-<run>.log`. */
  logs: string[];
}

export interface RunImageBuildOptions {
  /** The worker's staging directory; logs are copied under it. */
  stagingDir: string;
  signal?: AbortSignal;
  onProgress?: (p: BuildProgress) => void;
  pollIntervalMs?: number;
  reconnectWindowMs?: number;
  /** Seconds between SIGTERM (podman forwards it into the container) and SIGKILL on cancellation. */
  killGraceSeconds?: number;
}

/** A failed run whose filesystem has less than this left ran out of space, whatever its log managed to say. */
const FULL_BELOW_BYTES = 16 << 20;

export const releaseWorkDir = (builder: Pick<Builder, 'workDir'>, releaseId: string, arch: Arch) =>
  path.posix.join(builder.workDir, releaseId, arch);

export async function runImageBuild(
  input: RunImageBuildInput,
  opts: RunImageBuildOptions,
): Promise<ImageBuildResult> {
  const { releaseId, arch, host, builder, imageBuilder } = input;
  const workDir = releaseWorkDir(builder, releaseId, arch);
  const configPath = imageBuilder.config ? path.posix.join(workDir, 'config.toml') : undefined;
  const runs = bibRuns(imageBuilder, { types: input.types, imageRef: input.imageRef, workDir, configPath });
  let current: Omit<BuildProgress, 'phase' | 'message' | 'step'> & { step: number } = {
    run: runs[0]?.name ?? '',
    runIndex: 1,
    runs: runs.length,
    step: 0,
  };
  const report = (phase: BuildProgress['phase'], message: string, extra: Partial<BuildProgress> = {}) =>
    opts.onProgress?.({ ...current, ...extra, phase, message });
  const link = new BuilderLink(host, builder, {
    signal: opts.signal,
    reconnectWindowMs: opts.reconnectWindowMs,
    onReconnect: ({ attempt, error }) =>
      report('reconnecting', `reconnecting to ${host.address} (attempt ${attempt}): ${error}`.slice(0, 160)),
  });
  let active: BibRun | undefined;
  try {
    if (imageBuilder.config) {
      const config = await readFile(imageBuilder.config);
      await link.run((ssh) =>
        ssh.exec(
          `mkdir -p ${shellQuote(workDir)} && cat > ${shellQuote(`${configPath}.tmp`)} && mv ${shellQuote(`${configPath}.tmp`)} ${shellQuote(configPath!)}`,
          {
            stdin: config,
            signal: opts.signal,
          },
        ),
      );
    }
    const artifacts: BuiltArtifact[] = [];
    const logs: string[] = [];
    for (const [i, run] of runs.entries()) {
      current = { run: run.name, runIndex: i + 1, runs: runs.length, step: 0 };
      active = run;
      const log = await driveRun(run);
      active = undefined;
      logs.push(log);
      for (const a of run.artifacts) {
        report('checksumming', `sha256 of ${path.posix.relative(run.outputDir, a.path)}`);
        // One long remote command (sha256 of 40 GB): the activity stays alive on its last report.
        const described = await withHeartbeats(
          () => link.run((ssh) => describeArtifact(ssh, run, a.path, opts.signal)),
          Math.min(opts.pollIntervalMs ?? 10_000, 10_000),
        );
        artifacts.push({ type: a.type, remotePath: a.path, ...described });
      }
    }
    report('done', `${artifacts.length} artifact(s) built`);
    return { artifacts, logs };
  } catch (err) {
    if (opts.signal?.aborted && active) await cancelRun(active).catch(() => undefined);
    throw err;
  } finally {
    link.drop();
  }

  async function driveRun(run: BibRun): Promise<string> {
    let total: number | undefined;
    const code = await driveDetached(link, run.runDir, run.argv, {
      signal: opts.signal,
      pollIntervalMs: opts.pollIntervalMs,
      prepare: `rm -rf ${shellQuote(run.outputDir)} ${shellQuote(`${run.runDir}/sha256sums`)} && mkdir -p ${shellQuote(run.outputDir)}`,
      pollScript: progressScript(`${run.runDir}/${DETACHED_FILES.log}`, run.outputDir),
      onStart: (previous) =>
        report(
          'starting',
          previous === 'lost'
            ? 'the build process vanished; starting it again'
            : 'starting bootc-image-builder',
        ),
      onPoll: async (fields, state, ssh) => {
        const bytes = Number(fields.manifestBytes);
        if (total === undefined && fields.manifest && bytes > 0 && bytes < 32 << 20)
          total = countManifestStages(
            (await ssh.exec(['cat', fields.manifest], { signal: opts.signal })).stdout,
          );
        current.step = Number(fields.stages) || 0;
        if (state.state === 'running') report('building', progressMessage(fields.last), { total });
      },
    });
    await mkdir(path.join(opts.stagingDir, releaseId, arch), { recursive: true });
    const logPath = await link.run((ssh) => copyLog(ssh, run));
    if (code !== 0) await fail(run, code, logPath);
    return logPath;
  }

  async function copyLog(ssh: SshSession, run: BibRun): Promise<string> {
    const local = path.join(opts.stagingDir, releaseId, arch, `build-${run.name}.log`);
    const sftp = await ssh.sftp();
    try {
      await new Promise<void>((resolve, reject) =>
        sftp.fastGet(`${run.runDir}/${DETACHED_FILES.log}`, local, (err) => (err ? reject(err) : resolve())),
      );
    } finally {
      sftp.end();
    }
    return local;
  }

  async function fail(run: BibRun, code: number, logPath: string): Promise<never> {
    const { tail, free } = await link.run(async (ssh) => {
      // When the run's own filesystem is full, the error line (and the exit status) may never have reached the log.
      const df = await ssh.exec(`df -P -B1 ${shellQuote(run.runDir)} | awk 'NR == 2 { print $4 }'`, {
        signal: opts.signal,
      });
      return { tail: await archiveFailedAttempt(ssh, run.runDir), free: Number.parseInt(df.stdout, 10) };
    });
    const where = `${arch}: bootc-image-builder (${run.name}) on builder ${host.address}`;
    const full = `full log: ${logPath}`;
    const enospc =
      noSpaceLine(tail) ?? (free < FULL_BELOW_BYTES ? `${run.runDir} has ${free} bytes free` : undefined);
    if (enospc)
      throw ApplicationFailure.nonRetryable(
        `${where} ran out of space: "${enospc}"; give architectures.${arch}.builder.dataVolume more space ` +
          `(a bigger device or sizeGiB), raise its tmpfs sizes, or put builder.workDir on it; ${full}`,
        FailureType.NoSpaceLeft,
      );
    throw new Error(`${where} exited ${code}: ${lastLines(tail, 8)}; ${full}`);
  }

  async function cancelRun(run: BibRun): Promise<void> {
    // A fresh connection: the link's one is tied to the aborted signal.
    const cleanup = new BuilderLink(host, builder, { reconnectWindowMs: 60_000 });
    try {
      await cleanup.run((ssh) =>
        killDetached(ssh, run.runDir, {
          graceSeconds: opts.killGraceSeconds ?? 10,
          after: removeContainersScript(imageBuilder, run),
        }),
      );
    } finally {
      cleanup.drop();
    }
  }
}

/**
 * A killed `podman run` client can leave its container running (bib as the container's PID 1 may ignore SIGTERM):
 * remove every container that mounts this run's output directory.
 */
function removeContainersScript(imageBuilder: ImageBuilderConfig, run: BibRun): string {
  const engine = shellCommand(imageBuilder.engine);
  return [
    `for c in $(${engine} ps -q --no-trunc 2>/dev/null); do`,
    `  if ${engine} inspect --format '{{range .Mounts}}{{.Source}} {{end}}' "$c" 2>/dev/null | grep -qF -- ${shellQuote(`${run.outputDir} `)}; then`,
    `    ${engine} rm -f "$c" >/dev/null 2>&1 || true; fi`,
    'done',
  ].join('\n');
}

/**
 * Size and digests on the builder: sha256, plus sparse-sha256 where python3 computes both in one pass over the data
 * extents (the fetch then hashes data only; see docs/fetch.md). Cached next to the run, so a re-attach does not hash
 * 10 GiB again.
 */
async function describeArtifact(
  ssh: SshSession,
  run: BibRun,
  file: string,
  signal?: AbortSignal,
): Promise<{ size: number; sha256: string; sparseSha256?: string }> {
  const f = shellQuote(file);
  const sums = shellQuote(`${run.runDir}/sha256sums`);
  const script = [
    `[ -f ${f} ] || { echo "bootc-image-builder exited 0 but ${file} is missing" >&2; exit 3; }`,
    // A cache line is "<sha256>[ sparse-sha256=<hex>]  <file>" (an older one has no sparse part: the fetch then hashes the whole file).
    `d=$(grep -F -- ${shellQuote(`  ${file}`)} ${sums} 2>/dev/null | tail -n 1 | sed 's/  .*//')`,
    'if [ -z "$d" ]; then',
    // python3 reads only the data extents; OpenSSL's SHA-256 is several times faster than some coreutils builds
    // (measured: 18 s against 92 s for 10 GiB).
    `  d=$(${buildDigestCommand(file)}) || exit 4`,
    `  echo "$d  ${file.replace(/["$`\\]/g, '')}" >> ${sums}`,
    'fi',
    `echo "size=$(stat -c %s ${f})"`,
    'echo "digests=$d"',
  ].join('\n');
  const { stdout } = await ssh.exec(script, { signal }).catch((err: unknown) => {
    if (err instanceof SshCommandError && err.result.code === 3)
      throw ApplicationFailure.nonRetryable(err.result.stderr.trim(), FailureType.ArtifactMissing);
    throw err;
  });
  const fields = parseFields(stdout);
  const digests = parseDigests(fields.digests ?? '');
  if (!digests)
    throw ApplicationFailure.retryable(`${ssh.label}: no sha256 for ${file}: ${stdout.slice(0, 200)}`);
  return { size: Number(fields.size), ...digests };
}
