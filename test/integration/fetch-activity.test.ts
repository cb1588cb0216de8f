import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { describe, expect, inject, it } from 'vitest';
import { Builder } from '../../config/schema';
import { decodeIndexes } from '../../activities/fetch/fetch-plan';
import {
  createFetchActivities,
  type FetchArtifactsInput,
  type FetchHeartbeat,
} from '../../activities/fetch/activities';
import type { BuiltArtifact, StagedArtifact } from '../../activities/types';
import { hostOf } from './builder-fixtures';
import { makeSparseFile, MiB, sha256Of, spreadExtents, testDir } from './fetch-helpers';

describe('fetchArtifacts activity', () => {
  const rig = inject('rig');
  const ssh = rig.sshHosts[3];
  const host = hostOf(ssh);
  const builder = Builder.parse({
    provider: 'static',
    hosts: [{ address: ssh.address, port: ssh.port }],
    ssh: { privateKeyPath: rig.privateKeyPath },
  });

  /** A bib output directory on the builder: a sparse raw disk and a dense qcow2. */
  function buildOutput(dir: string): BuiltArtifact[] {
    const raw = path.join(dir, 'output', 'image', 'disk.raw');
    const qcow2 = path.join(dir, 'output', 'qcow2', 'disk.qcow2');
    for (const f of [raw, qcow2]) mkdirSync(path.dirname(f), { recursive: true });
    makeSparseFile(raw, 160 * MiB, spreadExtents(160 * MiB, 8, 2 * MiB));
    writeFileSync(qcow2, randomBytes(6 * MiB));
    return [
      { type: 'qcow2', remotePath: qcow2, size: 6 * MiB, sha256: sha256Of(qcow2) },
      { type: 'raw', remotePath: raw, size: 160 * MiB, sha256: sha256Of(raw) },
    ];
  }

  const run = async (
    env: MockActivityEnvironment,
    stagingDir: string,
    artifacts: BuiltArtifact[],
  ): Promise<StagedArtifact[]> => {
    const { fetchArtifacts } = createFetchActivities({
      stagingDir,
      stagingQueue: 'bootc-release@w1',
      heartbeatIntervalMs: 0,
      pieceBytes: 2 * MiB,
    });
    const input: FetchArtifactsInput = { releaseId: 'rel-7', arch: 'x86_64', host, builder, artifacts };
    return await env.run(() => fetchArtifacts(input));
  };

  it('stages every artifact under <stagingDir>/<release>/<arch>/<type>/<basename>, verified, with small heartbeats', async () => {
    const dir = testDir(rig, 'activity-stage');
    const artifacts = buildOutput(dir);
    const stagingDir = path.join(dir, 'staging');
    const env = new MockActivityEnvironment();
    const beats: FetchHeartbeat[] = [];
    env.on('heartbeat', (d: FetchHeartbeat) => beats.push(d));
    const staged = await run(env, stagingDir, artifacts);

    expect(staged).toEqual([
      {
        arch: 'x86_64',
        type: 'qcow2',
        path: path.join(stagingDir, 'rel-7/x86_64/qcow2/disk.qcow2'),
        size: 6 * MiB,
        dataBytes: 6 * MiB,
        sha256: artifacts[0].sha256,
        stagingQueue: 'bootc-release@w1',
      },
      {
        arch: 'x86_64',
        type: 'raw',
        path: path.join(stagingDir, 'rel-7/x86_64/raw/disk.raw'),
        size: 160 * MiB,
        dataBytes: 16 * MiB,
        sha256: artifacts[1].sha256,
        stagingQueue: 'bootc-release@w1',
      },
    ]);
    for (const [i, s] of staged.entries())
      expect(readFileSync(s.path).equals(readFileSync(artifacts[i].remotePath))).toBe(true);
    expect(statSync(staged[1].path).blocks * 512).toBeLessThanOrEqual(16 * MiB + 8 * 4096);
    expect(beats.some((b) => b.index === 1 && b.bytesDone > 0 && b.total === 16 * MiB)).toBe(true);
    expect(Math.max(...beats.map((b) => JSON.stringify(b).length))).toBeLessThan(2048);

    // A retry after the last heartbeat was lost finds the verified files and fetches nothing.
    const again = new MockActivityEnvironment();
    const beats2: FetchHeartbeat[] = [];
    again.on('heartbeat', (d: FetchHeartbeat) => beats2.push(d));
    expect(await run(again, stagingDir, artifacts)).toEqual(staged);
    expect(beats2.every((b) => !b.progress)).toBe(true);
  });

  it('resumes after the worker restarts from the heartbeat details, without fetching finished artifacts or pieces again', async () => {
    const dir = testDir(rig, 'activity-resume');
    const artifacts = buildOutput(dir);
    const stagingDir = path.join(dir, 'staging');

    const first = new MockActivityEnvironment();
    let last: FetchHeartbeat | undefined;
    first.on('heartbeat', (d: FetchHeartbeat) => {
      last = structuredClone(d);
      if (d.index === 1 && d.progress && decodeIndexes(d.progress.piecesDone).size >= 3)
        first.cancel('CANCELLED');
    });
    await expect(run(first, stagingDir, artifacts)).rejects.toBeInstanceOf(CancelledFailure);
    expect(last).toMatchObject({ index: 1 });
    const resumedBytes = last!.bytesDone;
    expect(resumedBytes).toBeGreaterThan(0);
    expect(resumedBytes).toBeLessThan(16 * MiB);

    const second = new MockActivityEnvironment({ heartbeatDetails: last });
    const beats: FetchHeartbeat[] = [];
    second.on('heartbeat', (d: FetchHeartbeat) => beats.push(d));
    const staged = await run(second, stagingDir, artifacts);
    expect(staged.map((s) => s.sha256)).toEqual(artifacts.map((a) => a.sha256));
    expect(beats.some((b) => b.index === 0 && b.progress)).toBe(false);
    // Its first progress already counts the pieces the first attempt finished.
    expect(beats.find((b) => b.index === 1 && b.progress)!.bytesDone).toBeGreaterThanOrEqual(3 * 2 * MiB);
    expect(sha256Of(staged[1].path)).toBe(artifacts[1].sha256);
  });

  it('stops promptly when cancelled, leaving the partial file for the next attempt', async () => {
    const dir = testDir(rig, 'activity-cancel');
    const artifacts = buildOutput(dir);
    const stagingDir = path.join(dir, 'staging');
    const env = new MockActivityEnvironment();
    let cancelledAt = 0;
    env.on('heartbeat', (d: FetchHeartbeat) => {
      if (!cancelledAt && d.index === 1 && d.bytesDone > 0) {
        cancelledAt = Date.now();
        env.cancel('CANCELLED');
      }
    });
    await expect(run(env, stagingDir, artifacts)).rejects.toBeInstanceOf(CancelledFailure);
    expect(Date.now() - cancelledAt).toBeLessThan(2000);
    expect(statSync(path.join(stagingDir, 'rel-7/x86_64/raw/disk.raw.part')).size).toBe(160 * MiB);
  });

  it('fails at once, not retried, when the staging disk cannot hold the data still to fetch', async () => {
    const dir = testDir(rig, 'activity-full');
    const artifacts = buildOutput(path.join(dir, 'builder'));
    // A 12 MiB filesystem: the 6 MiB qcow2 fits, the raw's 16 MiB of data do not (its 160 MiB of holes would).
    const stagingDir = path.join(dir, 'staging');
    mkdirSync(stagingDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12M', 'tmpfs', stagingDir]);
    try {
      const failure = await run(new MockActivityEnvironment(), stagingDir, artifacts).catch(
        (e: unknown) => e,
      );
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect(failure).toMatchObject({ type: 'StagingFull', nonRetryable: true });
      expect((failure as Error).message).toMatch(
        new RegExp(
          `staging directory ${stagingDir} for raw disk.raw \\(16777216 bytes of data to fetch, \\d+ free\\).*BOOTC_RELEASE_STAGING`,
        ),
      );
      // Refused before the transfer: no partial file took the space, and the qcow2 before it is staged.
      expect(existsSync(path.join(stagingDir, 'rel-7/x86_64/raw/disk.raw.part'))).toBe(false);
      expect(sha256Of(path.join(stagingDir, 'rel-7/x86_64/qcow2/disk.qcow2'))).toBe(artifacts[0].sha256);
    } finally {
      execFileSync('umount', [stagingDir]);
    }
  });
});
