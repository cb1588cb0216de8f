// The source container image on the builder, where bootc-image-builder reads it (local container storage only):
// `source.image` is pulled; `source.git` is cloned at its ref and built natively (no cross-arch emulation).
// Pulls and builds run detached like the image build, so a dropped connection or a retry re-attaches to them.
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { Arch, Builder, Source } from '../../config/schema';
import type { BuilderHost } from '../types';
import { shellCommand, shellQuote, type SshSession } from '../ssh/connection';
import type { ImageBuilderConfig } from './bib-runs';
import { archiveFailedAttempt, driveDetached, parseFields } from '../ssh/detached';
import { releaseWorkDir } from './image-build';
import { BuilderLink } from '../ssh/link';
import { lastLines } from './progress';
import { FailureType } from '../failures';

export interface PrepareContainerImageInput {
  releaseId: string;
  arch: Arch;
  host: BuilderHost;
  builder: Builder;
  source: Source;
  /** Only `engine` is used: the same container engine that runs bootc-image-builder. */
  imageBuilder: Pick<ImageBuilderConfig, 'engine'>;
}

export interface ContainerImage {
  /** What to hand to bootc-image-builder. */
  imageRef: string;
  /** Manifest digest as the engine reports it (sha256:...). */
  digest: string;
  imageId: string;
  /** The commit built, for git sources. */
  commit?: string;
}

export interface ContainerImageProgress {
  phase: 'pulling' | 'cloning' | 'building' | 'reconnecting';
  message: string;
}

/** The local tag a git source is built into; one per release and architecture. */
export const builtImageTag = (releaseId: string, arch: Arch) =>
  `localhost/bootc-release/source:${releaseId}-${arch}`;
const COMMIT_LABEL = 'org.bootc-release.source-commit';
/** Registry answers that no retry can change. */
const PERMANENT_PULL =
  /manifest unknown|name unknown|not found|unauthorized|authentication required|denied|invalid reference/i;

export interface ContainerImageOptions {
  signal?: AbortSignal;
  onProgress?: (p: ContainerImageProgress) => void;
  pollIntervalMs?: number;
}

type GitSource = Extract<Source, { git: string }>;

export async function prepareContainerImage(
  input: PrepareContainerImageInput,
  opts: ContainerImageOptions = {},
): Promise<ContainerImage> {
  const { releaseId, arch, source } = input;
  const builder = new OnBuilder(input, opts);
  try {
    if ('image' in source) return await pullImage(builder, source.image);
    return await buildFromGit(builder, builtImageTag(releaseId, arch), source);
  } finally {
    builder.link.drop();
  }
}

async function pullImage(builder: OnBuilder, image: string): Promise<ContainerImage> {
  const { engine, where } = builder;
  builder.progress('pulling', `pulling ${image}`);
  const tail = await builder.runStep('pull', [...engine, 'pull', image], 'pulling');
  if (tail !== undefined) {
    const message = `${where}: pulling ${image} failed: ${lastLines(tail, 5)}`;
    if (PERMANENT_PULL.test(tail))
      throw ApplicationFailure.nonRetryable(`${message}; check source.image`, FailureType.Config);
    throw new Error(message);
  }
  const pulled = await builder.inspect(image).catch(() => undefined);
  if (pulled) return { imageRef: image, ...pulled };
  // An earlier attempt's pull finished but the image is gone (storage reset, data volume mounted over it): pull again.
  await builder.removeJob('pull');
  const again = await builder.runStep('pull', [...engine, 'pull', image], 'pulling');
  if (again !== undefined) throw new Error(`${where}: pulling ${image} failed: ${lastLines(again, 5)}`);
  return { imageRef: image, ...(await builder.inspect(image)) };
}

/** Checks the ref out and builds it into `tag`, unless `tag` already holds that commit. */
async function buildFromGit(builder: OnBuilder, tag: string, source: GitSource): Promise<ContainerImage> {
  const srcDir = path.posix.join(builder.workDir, 'source');
  builder.progress('cloning', `fetching ${source.ref} of ${source.git}`);
  const commit = await checkout(builder, srcDir, source);
  if ((await builder.builtCommit(tag)) !== commit) {
    const argv = [
      ...builder.engine,
      'build',
      '-f',
      path.posix.join(srcDir, source.containerfile),
      '-t',
      tag,
      '--label',
      `${COMMIT_LABEL}=${commit}`,
      path.posix.join(srcDir, source.context),
    ];
    builder.progress('building', `building ${tag} from ${commit.slice(0, 12)}`);
    const tail = await builder.runStep(`build-${commit.slice(0, 12)}`, argv, 'building');
    if (tail !== undefined)
      throw new Error(
        `${builder.where}: building ${source.git}@${source.ref} (${commit.slice(0, 12)}) failed: ${lastLines(tail, 8)}`,
      );
  }
  return { imageRef: tag, commit, ...(await builder.inspect(tag)) };
}

/** What the steps share: one link to the builder, the release's work directory there, the container engine. */
class OnBuilder {
  readonly link: BuilderLink;
  readonly engine: string[];
  readonly workDir: string;
  /** How errors name the builder: `<arch>: builder <address>`. */
  readonly where: string;

  constructor(
    input: PrepareContainerImageInput,
    readonly opts: ContainerImageOptions,
  ) {
    const { releaseId, arch, host, builder } = input;
    this.engine = input.imageBuilder.engine;
    this.workDir = releaseWorkDir(builder, releaseId, arch);
    this.link = new BuilderLink(host, builder, {
      signal: opts.signal,
      onReconnect: ({ attempt }) =>
        opts.onProgress?.({
          phase: 'reconnecting',
          message: `reconnecting to ${host.address} (attempt ${attempt})`,
        }),
    });
    this.where = `${arch}: builder ${host.address}`;
  }

  progress(phase: ContainerImageProgress['phase'], message: string): void {
    this.opts.onProgress?.({ phase, message });
  }

  /** Runs argv detached in workDir/<name>; undefined on success, the log's tail on failure. */
  async runStep(name: string, argv: string[], phase: ContainerImageProgress['phase']): Promise<string | undefined> {
    const dir = path.posix.join(this.workDir, name);
    const code = await driveDetached(this.link, dir, argv, {
      signal: this.opts.signal,
      pollIntervalMs: this.opts.pollIntervalMs ?? 5_000,
      pollScript: `echo "last=$(tail -n 1 ${shellQuote(`${dir}/build.log`)} 2>/dev/null | cut -c1-160)"`,
      onPoll: (fields, state) => {
        if (state.state === 'running') this.progress(phase, fields.last || phase);
      },
    });
    if (code === 0) return undefined;
    return await this.link.run((ssh) => archiveFailedAttempt(ssh, dir, 30));
  }

  /** Forgets a finished job in workDir/<name>, so that the next runStep runs it again. */
  async removeJob(name: string): Promise<void> {
    await this.link.run((ssh) =>
      ssh.exec(`rm -rf ${shellQuote(path.posix.join(this.workDir, name))}`, { signal: this.opts.signal }),
    );
  }

  async inspect(ref: string): Promise<{ digest: string; imageId: string }> {
    const { stdout } = await this.link.run((ssh) =>
      ssh.exec(shellCommand([...this.engine, 'image', 'inspect', '--format', '{{.Digest}} {{.Id}}', ref]), {
        signal: this.opts.signal,
      }),
    );
    const [digest = '', imageId = ''] = stdout.trim().split(/\s+/);
    return { digest, imageId };
  }

  /** The commit the image `tag` was built from (its label); undefined when there is no such image. */
  async builtCommit(tag: string): Promise<string | undefined> {
    const existing = await this.link.run((ssh) =>
      ssh.exec(
        shellCommand([...this.engine, 'image', 'inspect', '--format', `{{index .Labels "${COMMIT_LABEL}"}}`, tag]),
        { signal: this.opts.signal, allowFailure: true },
      ),
    );
    return existing.code === 0 ? existing.stdout.trim() : undefined;
  }
}

/**
 * Fetches the ref into dir as a detached job in workDir/checkout: a long clone heartbeats through the polls, and
 * a retry (another worker, a dropped link) re-attaches to the running clone under the job's lock instead of
 * starting a second git into the same directory. A finished checkout is read and put aside, so the next call
 * fetches again and sees a new commit.
 */
async function checkout(builder: OnBuilder, dir: string, src: GitSource): Promise<string> {
  const { link, opts, where } = builder;
  const jobDir = path.posix.join(builder.workDir, 'checkout');
  const code = await driveDetached(link, jobDir, ['sh', '-c', checkoutScript(dir, src)], {
    signal: opts.signal,
    pollIntervalMs: opts.pollIntervalMs ?? 5_000,
    onPoll: (_fields, state) => {
      if (state.state === 'running') builder.progress('cloning', `fetching ${src.ref} of ${src.git}`);
    },
  });
  const j = shellQuote(jobDir);
  const output = await link.run((ssh: SshSession) =>
    code === 0
      ? ssh.exec(`tail -n 30 ${j}/build.log; rm -f ${j}/exit-code ${j}/pid`, { signal: opts.signal }).then((r) => r.stdout)
      : archiveFailedAttempt(ssh, jobDir, 30),
  );
  if (code !== 0) throw checkoutFailure(where, src, code, lastLines(output, 4));
  const commit = parseFields(output).commit;
  if (!/^[0-9a-f]{40,64}$/.test(commit ?? '')) throw new Error(`${where}: could not read the checked-out commit`);
  return commit!;
}

function checkoutScript(dir: string, src: GitSource): string {
  const d = shellQuote(dir);
  const url = shellQuote(src.git);
  const ref = shellQuote(src.ref);
  return [
    'set -e',
    'command -v git >/dev/null 2>&1 || { echo "git is not installed on the builder" >&2; exit 3; }',
    `[ -d ${d}/.git ] || { rm -rf ${d}; git init -q ${d}; }`,
    `cd ${d}`,
    // A branch or tag fetches shallow; a commit id may need the full history on servers that refuse it by id.
    `if git fetch -q --depth 1 ${url} ${ref}; then git checkout -q -f FETCH_HEAD;`,
    `else git fetch -q ${url} '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*' && git checkout -q -f ${ref}; fi`,
    'echo "commit=$(git rev-parse HEAD)"',
  ].join('\n');
}

/** A missing git or ref is the configuration's to fix; anything else may pass on a retry. */
function checkoutFailure(where: string, src: GitSource, code: number, why: string): Error {
  if (code === 3)
    return ApplicationFailure.nonRetryable(`${where}: ${why}; install git in the builder image`, FailureType.Config);
  if (/couldn't find remote ref|not a valid|did not match any|pathspec/i.test(why))
    return ApplicationFailure.nonRetryable(
      `${where}: ref ${src.ref} not found in ${src.git}: ${why}; check source.ref`,
      FailureType.Config,
    );
  return new Error(`${where}: fetching ${src.git} failed: ${why}`);
}
