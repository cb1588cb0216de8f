import path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  createBuilderActivities,
  type BuildProgress,
  type ImageBuildResult,
  type RunImageBuildInput,
} from '../../activities/build';
import {
  containersMounting,
  hostOf,
  makeSourceImage,
  processesMentioning,
  removeImage,
  standinImageBuilder,
  staticBuilder,
  testDir,
  waitFor,
} from './builder-fixtures';

describe('builder activities', () => {
  const rig = inject('rig');
  const host = hostOf(rig.sshHosts[3]);
  const base = testDir(rig, 'activities');
  const source = `localhost/bootc-release-test/activities:${process.pid}`;
  beforeAll(() => makeSourceImage(base, source));
  afterAll(() => removeImage(source));

  it('heartbeats small build progress and returns the artifacts and the log path on the worker', async () => {
    const dir = testDir(rig, 'activity-build');
    const activities = createBuilderActivities({
      stagingDir: path.join(dir, 'staging'),
      pollIntervalMs: 200,
    });
    const env = new MockActivityEnvironment();
    const beats: BuildProgress[] = [];
    env.on('heartbeat', (d: BuildProgress) => beats.push(d));
    const builder = staticBuilder(rig, dir);
    const input: RunImageBuildInput = {
      releaseId: 'a1',
      arch: 'aarch64',
      host,
      builder,
      imageBuilder: standinImageBuilder(dir, { seconds: 2 }),
      imageRef: source,
      types: ['qcow2', 'vmdk', 'vhd'],
    };
    const result = (await env.run(activities.runImageBuild, input)) as ImageBuildResult;
    expect(result.artifacts.map((a) => a.remotePath.slice(builder.workDir.length))).toEqual([
      '/a1/aarch64/qcow2-vmdk-vhd/output/qcow2/disk.qcow2',
      '/a1/aarch64/qcow2-vmdk-vhd/output/vmdk/disk.vmdk',
      '/a1/aarch64/qcow2-vmdk-vhd/output/vpc/disk.vhd',
    ]);
    expect(result.logs).toEqual([path.join(dir, 'staging', 'a1', 'aarch64', 'build-qcow2-vmdk-vhd.log')]);
    expect(beats.some((b) => b.phase === 'building' && b.total === 11)).toBe(true);
    expect(Math.max(...beats.map((b) => JSON.stringify(b).length))).toBeLessThan(400);
    expect(JSON.stringify(result).length).toBeLessThan(2000);
  });

  it('cancelling the activity kills the build on the builder', async () => {
    const dir = testDir(rig, 'activity-cancel');
    const activities = createBuilderActivities({
      stagingDir: path.join(dir, 'staging'),
      pollIntervalMs: 200,
      killGraceSeconds: 5,
    });
    const env = new MockActivityEnvironment();
    const builder = staticBuilder(rig, dir);
    const runDir = path.join(builder.workDir, 'a2', 'x86_64', 'raw');
    const input: RunImageBuildInput = {
      releaseId: 'a2',
      arch: 'x86_64',
      host,
      builder,
      imageBuilder: standinImageBuilder(dir, { seconds: 120 }),
      imageRef: source,
      types: ['raw'],
    };
    const build = env.run(activities.runImageBuild, input);
    await waitFor('the container to run', () => containersMounting(runDir).length === 1);
    env.cancel();
    await expect(build).rejects.toBeInstanceOf(CancelledFailure);
    await waitFor(
      'the build to end',
      () => processesMentioning(runDir).length === 0 && containersMounting(runDir).length === 0,
      10_000,
    );
  });
});
