// One release's bootc-image-builder runs on one builder (runImageBuild's steps): each run driven detached and
// polled with small progress reports, its log copied to the worker, its failure classified, its artifacts described,
// and the run in progress killed with its container when the attempt is cancelled.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { BuiltArtifact } from '../types';
import { SshCommandError, shellCommand, shellQuote, type SshSession } from '../ssh/connection';
import type { BibRun, ImageBuilderConfig } from './bib-runs';
import { archiveFailedAttempt, DETACHED_FILES, driveDetached, killDetached, parseFields } from '../ssh/detached';
import { BuilderLink } from '../ssh/link';
import { countManifestStages, lastLines, noSpaceLine, progressMessage, progressScript } from './progress';
import { buildDigestCommand, parseDigests } from '../fetch/remote-file';
import { withHeartbeats } from '../runtime/heartbeat';
import { FailureType } from '../failures';
import type { BuildProgress, RunImageBuildInput, RunImageBuildOptions } from './image-build';

/** A failed run whose filesystem has less than this left ran out of space, whatever its log managed to say. */
const FULL_BELOW_BYTES = 16 << 20;

/** The fields every progress report repeats: which run, and how far its stages are. */
type RunPosition = Omit<BuildProgress, 'phase' | 'message' | 'step'> & { step: number };

/** The link to the builder, the position progress reports carry, and the run a cancellation must kill. */
export class BuildRuns {
  readonly link: BuilderLink;
  private current: RunPosition;
  /** The run being driven; unset once it exited 0. */
  private active?: BibRun;

  constructor(
    private readonly input: RunImageBuildInput,
    private readonly opts: RunImageBuildOptions,
    runs: BibRun[],
  ) {
    const { host, builder } = input;
    this.current = { run: runs[0]?.name ?? '', runIndex: 1, runs: runs.length, step: 0 };
    this.link = new BuilderLink(host, builder, {
      signal: opts.signal,
      reconnectWindowMs: opts.reconnectWindowMs,
      onReconnect: ({ attempt, error }) =>
        this.report('reconnecting', `reconnecting to ${host.address} (attempt ${attempt}): ${error}`.slice(0, 160)),
    });
  }

  report(phase: BuildProgress['phase'], message: string, extra: Partial<BuildProgress> = {}): void {
    this.opts.onProgress?.({ ...this.current, ...extra, phase, message });
  }

  /** Puts `imageBuilder.config` (a file on the worker) at configPath on the builder. */
  async uploadConfig(file: string, workDir: string, configPath: string): Promise<void> {
    const config = await readFile(file);
    await this.link.run((ssh) =>
      ssh.exec(
        `mkdir -p ${shellQuote(workDir)} && cat > ${shellQuote(`${configPath}.tmp`)} && mv ${shellQuote(`${configPath}.tmp`)} ${shellQuote(configPath)}`,
        {
          stdin: config,
          signal: this.opts.signal,
        },
      ),
    );
  }

  /** Runs (or re-attaches to) run number i+1 until it exits; returns the worker's copy of its log. */
  async drive(run: BibRun, i: number): Promise<string> {
    const { opts, input } = this;
    this.current = { run: run.name, runIndex: i + 1, runs: this.current.runs, step: 0 };
    this.active = run;
    let total: number | undefined;
    const code = await driveDetached(this.link, run.runDir, run.argv, {
      signal: opts.signal,
      pollIntervalMs: opts.pollIntervalMs,
      prepare: `rm -rf ${shellQuote(run.outputDir)} ${shellQuote(`${run.runDir}/sha256sums`)} && mkdir -p ${shellQuote(run.outputDir)}`,
      pollScript: progressScript(`${run.runDir}/${DETACHED_FILES.log}`, run.outputDir),
      onStart: (previous) =>
        this.report(
          'starting',
          previous === 'lost' ? 'the build process vanished; starting it again' : 'starting bootc-image-builder',
        ),
      onPoll: async (fields, state, ssh) => {
        const bytes = Number(fields.manifestBytes);
        if (total === undefined && fields.manifest && bytes > 0 && bytes < 32 << 20)
          total = countManifestStages((await ssh.exec(['cat', fields.manifest], { signal: opts.signal })).stdout);
        this.current.step = Number(fields.stages) || 0;
        if (state.state === 'running') this.report('building', progressMessage(fields.last), { total });
      },
    });
    await mkdir(path.join(opts.stagingDir, input.releaseId, input.arch), { recursive: true });
    const logPath = await this.link.run((ssh) => this.copyLog(ssh, run));
    if (code !== 0) await this.fail(run, code, logPath);
    this.active = undefined;
    return logPath;
  }

  /** Size and digests of the run's artifacts. */
  async describeArtifacts(run: BibRun): Promise<BuiltArtifact[]> {
    const artifacts: BuiltArtifact[] = [];
    for (const a of run.artifacts) {
      this.report('checksumming', `sha256 of ${path.posix.relative(run.outputDir, a.path)}`);
      // One long remote command (sha256 of 40 GB): the activity stays alive on its last report.
      const described = await withHeartbeats(
        () => this.link.run((ssh) => describeArtifact(ssh, run, a.path, this.opts.signal)),
        Math.min(this.opts.pollIntervalMs ?? 10_000, 10_000),
      );
      artifacts.push({ type: a.type, remotePath: a.path, ...described });
    }
    return artifacts;
  }

  /** Kills the run in progress, if any, and its container. */
  async cancelActive(): Promise<void> {
    const run = this.active;
    if (!run) return;
    const { host, builder, imageBuilder } = this.input;
    // A fresh connection: the link's one is tied to the aborted signal.
    const cleanup = new BuilderLink(host, builder, { reconnectWindowMs: 60_000 });
    try {
      await cleanup.run((ssh) =>
        killDetached(ssh, run.runDir, {
          graceSeconds: this.opts.killGraceSeconds ?? 10,
          after: removeContainersScript(imageBuilder, run),
        }),
      );
    } finally {
      cleanup.drop();
    }
  }

  private async copyLog(ssh: SshSession, run: BibRun): Promise<string> {
    const { releaseId, arch } = this.input;
    const local = path.join(this.opts.stagingDir, releaseId, arch, `build-${run.name}.log`);
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

  private async fail(run: BibRun, code: number, logPath: string): Promise<never> {
    const { arch, host } = this.input;
    const { tail, free } = await this.link.run(async (ssh) => {
      // When the run's own filesystem is full, the error line (and the exit status) may never have reached the log.
      const df = await ssh.exec(`df -P -B1 ${shellQuote(run.runDir)} | awk 'NR == 2 { print $4 }'`, {
        signal: this.opts.signal,
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
