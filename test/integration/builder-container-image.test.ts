import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { builtImageTag, prepareContainerImage } from '../../activities/build/container-image';
import { runImageBuild } from '../../activities/build/image-build';
import { freePort, tool, waitForPort } from '../../scripts/servers/tools';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import {
  hostOf,
  makeSourceImage,
  removeImage,
  standinImageBuilder,
  staticBuilder,
  testDir,
} from './builder-fixtures';

const run = (cmd: string, args: string[], cwd?: string) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    .toString()
    .trim();
const git = (repo: string, ...args: string[]) =>
  run('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.org', ...args], repo);

describe('container image on a builder', () => {
  const rig = inject('rig');
  const host = hostOf(rig.sshHosts[2]);
  const base = testDir(rig, 'container-image');
  let registry: ChildProcess;
  let registryAddress = '';
  const cleanupTags: string[] = [];

  beforeAll(async () => {
    // A real registry (Debian's docker-registry, the CNCF distribution) on loopback: podman pulls over HTTP from it.
    const port = await freePort('127.0.0.1');
    registryAddress = `127.0.0.1:${port}`;
    const config = path.join(base, 'registry.yml');
    writeFileSync(
      config,
      `version: 0.1\nlog: { level: error }\nstorage: { filesystem: { rootdirectory: ${path.join(base, 'registry')} } }\nhttp: { addr: ${registryAddress} }\n`,
    );
    registry = spawn(tool('docker-registry'), ['serve', config], { stdio: 'ignore' });
    await waitForPort('127.0.0.1', port, 10_000, 'docker-registry');
  });
  afterAll(() => {
    registry?.kill();
    for (const t of cleanupTags) removeImage(t);
  });

  it('pulls source.image from its registry and records the digest, and a retry re-uses the finished pull', async () => {
    const dir = testDir(rig, 'pull');
    const engine = standinEngine(path.join(dir, 'engine'), {}, [registryAddress]);
    const local = makeSourceImage(dir, `localhost/bootc-release-test/pushed:${process.pid}`);
    const remote = `${registryAddress}/bootc-release-test/source:${process.pid}`;
    cleanupTags.push(local, remote);
    run('podman', ['push', '--tls-verify=false', local, `docker://${remote}`]);
    removeImage(remote);

    const builder = staticBuilder(rig, dir);
    const input = {
      releaseId: 'r1',
      arch: 'x86_64' as const,
      host,
      builder,
      source: { image: remote },
      imageBuilder: { engine },
    };
    const image = await prepareContainerImage(input, { pollIntervalMs: 200 });
    expect(image.imageRef).toBe(remote);
    expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(run('podman', ['image', 'inspect', '--format', '{{.Digest}}', remote])).toBe(image.digest);
    expect(await prepareContainerImage(input, { pollIntervalMs: 200 })).toEqual(image);
    // The finished pull is re-used only while its image is still in storage.
    removeImage(remote);
    expect(await prepareContainerImage(input, { pollIntervalMs: 200 })).toEqual(image);
  });

  it('fails non-retryably, naming source.image, when the registry does not have the image', async () => {
    const dir = testDir(rig, 'pull-missing');
    const engine = standinEngine(path.join(dir, 'engine'), {}, [registryAddress]);
    const err = await prepareContainerImage(
      {
        releaseId: 'r2',
        arch: 'x86_64',
        host,
        builder: staticBuilder(rig, dir),
        source: { image: `${registryAddress}/nope/missing:1` },
        imageBuilder: { engine },
      },
      { pollIntervalMs: 200 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toMatch(
      /pulling .*nope\/missing:1 failed: .*check source\.image/,
    );
  });

  it('clones source.git at its ref, builds it natively, rebuilds only for a new commit, and bib builds from the result', async () => {
    const dir = testDir(rig, 'git');
    const repo = path.join(dir, 'repo');
    mkdirSync(path.join(repo, 'files'), { recursive: true });
    git(dir, 'init', '-q', '-b', 'main', repo);
    writeFileSync(
      path.join(repo, 'Containerfile.bootc'),
      `FROM ${ensureBibStandinImage()}\nCOPY files/motd /etc/motd\nRUN echo built > /etc/built\n`,
    );
    writeFileSync(path.join(repo, 'files', 'motd'), 'first\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'first');
    const first = git(repo, 'rev-parse', 'HEAD');

    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir);
    const source = { git: `file://${repo}`, ref: 'main', containerfile: 'Containerfile.bootc', context: '.' };
    const input = { releaseId: 'r3', arch: 'x86_64' as const, host, builder, source, imageBuilder };
    const tag = builtImageTag('r3', 'x86_64');
    cleanupTags.push(tag);
    const built = await prepareContainerImage(input, { pollIntervalMs: 200 });
    expect(built).toMatchObject({ imageRef: tag, commit: first });
    cleanupTags.push(built.imageId); // the rebuild below leaves it untagged
    expect(built.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(
      run('podman', [
        'run',
        '--rm',
        '--runtime',
        'runc',
        '--ulimit',
        'nofile=20000:20000',
        '--ulimit',
        'nproc=1000:1000',
        '--entrypoint',
        'cat',
        tag,
        '/etc/motd',
      ]),
    ).toBe('first');

    expect(await prepareContainerImage(input, { pollIntervalMs: 200 })).toEqual(built);

    writeFileSync(path.join(repo, 'files', 'motd'), 'second\n');
    git(repo, 'commit', '-q', '-am', 'second');
    const rebuilt = await prepareContainerImage(input, { pollIntervalMs: 200 });
    expect(rebuilt.commit).toBe(git(repo, 'rev-parse', 'HEAD'));
    expect(rebuilt.imageId).not.toBe(built.imageId);
    const steps = readdirSync(path.join(builder.workDir, 'r3', 'x86_64')).filter((d) =>
      d.startsWith('build-'),
    );
    expect(steps.sort()).toEqual(
      [`build-${first.slice(0, 12)}`, `build-${rebuilt.commit!.slice(0, 12)}`].sort(),
    );

    const result = await runImageBuild(
      {
        releaseId: 'r3',
        arch: 'x86_64',
        host,
        builder,
        imageBuilder,
        imageRef: rebuilt.imageRef,
        types: ['qcow2'],
      },
      { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 },
    );
    expect(result.artifacts.map((a) => a.type)).toEqual(['qcow2']);
  });

  it('fails non-retryably, naming source.ref, when the ref does not exist', async () => {
    const dir = testDir(rig, 'git-missing-ref');
    const repo = path.join(dir, 'repo');
    git(dir, 'init', '-q', '-b', 'main', repo);
    writeFileSync(path.join(repo, 'Containerfile'), 'FROM scratch\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '-q', '-m', 'only');
    const err = await prepareContainerImage({
      releaseId: 'r4',
      arch: 'aarch64',
      host,
      builder: staticBuilder(rig, dir),
      source: { git: `file://${repo}`, ref: 'no-such-branch', containerfile: 'Containerfile', context: '.' },
      imageBuilder: standinImageBuilder(dir),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).message).toContain('ref no-such-branch not found');
  });
});
