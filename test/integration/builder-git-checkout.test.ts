import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  builtImageTag,
  prepareContainerImage,
  type ContainerImageProgress,
} from '../../activities/build/container-image';
import { startDelayRelay } from '../rig/delay-relay-process';
import { freePort, waitForPort } from '../../scripts/servers/tools';
import { ensureBibStandinImage } from '../standins/bootc-image-builder/image';
import { hostOf, removeImage, standinImageBuilder, staticBuilder, testDir } from './builder-fixtures';

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.org', ...args], { cwd })
    .toString()
    .trim();

describe('git checkout of source.git on a builder', () => {
  const rig = inject('rig');
  const host = hostOf(rig.sshHosts[2]);
  const stops: (() => void)[] = [];
  afterAll(() => {
    for (const stop of stops) stop();
  });

  it('heartbeats while a slow clone runs, and a retry re-attaches to it instead of cloning again', async () => {
    const dir = testDir(rig, 'git-slow');
    const served = path.join(dir, 'served');
    const repo = path.join(served, 'source.git');
    mkdirSync(served, { recursive: true });
    const work = path.join(dir, 'work-tree');
    git(dir, 'init', '-q', '-b', 'main', work);
    writeFileSync(path.join(work, 'Containerfile'), `FROM ${ensureBibStandinImage()}\nRUN echo built > /etc/built\n`);
    git(work, 'add', '.');
    git(work, 'commit', '-q', '-m', 'only');
    git(dir, 'clone', '-q', '--bare', work, repo);

    // A real git daemon behind a relay that delays every byte by 400 ms each way: a clone of several round trips
    // takes seconds, like a large repository over a long link. The daemon logs each fetch it serves.
    const port = await freePort('127.0.0.1');
    const daemonLog: string[] = [];
    const daemon: ChildProcess = spawn(
      'git',
      ['daemon', '--verbose', '--export-all', `--base-path=${served}`, '--listen=127.0.0.1', `--port=${port}`, served],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    stops.push(() => daemon.kill());
    daemon.stderr!.on('data', (d: Buffer) => daemonLog.push(...d.toString().split('\n').filter(Boolean)));
    await waitForPort('127.0.0.1', port, 10_000, 'git daemon');
    const relay = await startDelayRelay({ address: '127.0.0.1', port }, 400);
    stops.push(relay.stop);
    const fetches = () => daemonLog.filter((l) => /Request upload-pack/.test(l)).length;

    const builder = staticBuilder(rig, dir);
    const source = { git: `git://127.0.0.1:${relay.port}/source.git`, ref: 'main', containerfile: 'Containerfile', context: '.' };
    const input = { releaseId: 'r5', arch: 'x86_64' as const, host, builder, source, imageBuilder: standinImageBuilder(dir) };
    stops.push(() => removeImage(builtImageTag('r5', 'x86_64')));

    // The first attempt's worker dies while the clone is on the wire (its signal aborts, nothing kills the clone).
    const progress: ContainerImageProgress[] = [];
    const dead = new AbortController();
    const first = prepareContainerImage(input, {
      signal: dead.signal,
      pollIntervalMs: 100,
      onProgress: (p) => progress.push(p),
    }).catch((e: unknown) => e);
    for (let i = 0; i < 200 && fetches() === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(fetches()).toBe(1);
    await new Promise((r) => setTimeout(r, 500));
    dead.abort(new Error('worker died'));
    await first;
    // While the clone ran, the attempt kept reporting: more than the one "cloning" message before it started.
    expect(progress.filter((p) => p.phase === 'cloning').length).toBeGreaterThan(2);

    const retried: ContainerImageProgress[] = [];
    const image = await prepareContainerImage(input, { pollIntervalMs: 100, onProgress: (p) => retried.push(p) });
    expect(image.commit).toBe(git(work, 'rev-parse', 'HEAD'));
    // One fetch in all: the retry waited for the first attempt's clone in the same directory.
    expect(fetches()).toBe(1);
  });
});
