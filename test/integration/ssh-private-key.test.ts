// Private keys are resolved on the worker from a path or an env var. A key that cannot be had is a configuration
// error: the step fails at once, not retried as a lost connection, and its text names the path or the variable's
// NAME, never the variable's value (which may be a mistyped key).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createBuilderActivities, type BuildProgress, type RunImageBuildInput } from '../../activities/build';
import { SshSession } from '../../activities/ssh/connection';
import { ImageBuilder } from '../../config/schema';
import { hostOf, staticBuilder, testDir } from './builder-fixtures';

const rig = inject('rig');
const host = hostOf(rig.sshHosts[3]!);
const KEY_ENV = 'BOOTC_TEST_SSH_KEY_ENV';
afterEach(() => {
  delete process.env[KEY_ENV];
});

/** Runs the image build step against a rig host; cancels it if it ever tries to reconnect (today's retry loop). */
async function buildWith(ssh: Record<string, unknown>) {
  const dir = testDir(rig, `key-${randomUUID().slice(0, 8)}`);
  const activities = createBuilderActivities({ stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 });
  const env = new MockActivityEnvironment();
  const beats: BuildProgress[] = [];
  let reconnected = false;
  env.on('heartbeat', (d: BuildProgress) => {
    beats.push(d);
    if (d?.phase === 'reconnecting' && !reconnected) {
      reconnected = true;
      env.cancel(); // the step took the key problem for a lost connection
    }
  });
  const builder = staticBuilder(rig, dir, { ssh });
  const input: RunImageBuildInput = {
    releaseId: 'k1',
    arch: 'x86_64',
    host,
    builder,
    imageBuilder: ImageBuilder.parse({}),
    imageRef: 'localhost/never-used:1',
    types: ['qcow2'],
  };
  const error = await env.run(activities.runImageBuild, input).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, beats, reconnected };
}

function expectConfigError(error: unknown): ApplicationFailure {
  expect(error).toBeInstanceOf(ApplicationFailure);
  const failure = error as ApplicationFailure;
  expect(failure.nonRetryable).toBe(true);
  expect(failure.type).toBe('ConfigError');
  return failure;
}

describe('private key resolution', () => {
  it('fails the step at once on a missing key file, naming the path (not retried as a lost connection)', async () => {
    const missing = `/nonexistent/bootc-release-${randomUUID()}/id_ed25519`;
    const { error, reconnected } = await buildWith({ privateKeyPath: missing });
    expect(reconnected).toBe(false);
    const failure = expectConfigError(error);
    expect(failure.message).toBe(`ssh: private key file ${missing} cannot be read on the worker (no such file); fix ssh.privateKeyPath`);
  });

  it('fails at once on an env var that holds neither a key nor a key path, naming the variable, never its value', async () => {
    const secret = `hunter2-${randomUUID()}`;
    process.env[KEY_ENV] = secret;
    const { error, beats, reconnected } = await buildWith({ privateKeyEnv: KEY_ENV });
    expect(reconnected).toBe(false);
    const failure = expectConfigError(error);
    expect(failure.message).toBe(
      `ssh: environment variable ${KEY_ENV} holds neither a private key (PEM or OpenSSH text) nor the absolute path of one; fix it on the worker or ssh.privateKeyEnv`,
    );
    expect(JSON.stringify({ message: failure.message, stack: failure.stack, beats })).not.toContain(secret);
  });

  it('fails at once on an env var naming a key file that is not there, without saying the path it holds', async () => {
    const secretPath = `/nonexistent/${randomUUID()}`;
    process.env[KEY_ENV] = secretPath;
    const { error, beats } = await buildWith({ privateKeyEnv: KEY_ENV });
    const failure = expectConfigError(error);
    expect(failure.message).toBe(`ssh: environment variable ${KEY_ENV} names a private key file that cannot be read on the worker (no such file)`);
    expect(JSON.stringify({ message: failure.message, beats })).not.toContain(secretPath);
  });

  it('fails at once on key text that is not a usable key, without echoing it', async () => {
    const secret = `-----BEGIN OPENSSH PRIVATE KEY-----\n${randomUUID()}\n-----END OPENSSH PRIVATE KEY-----\n`;
    process.env[KEY_ENV] = secret;
    const { error, beats, reconnected } = await buildWith({ privateKeyEnv: KEY_ENV });
    expect(reconnected).toBe(false);
    const failure = expectConfigError(error);
    expect(failure.message).toMatch(new RegExp(`^ssh: the private key in environment variable ${KEY_ENV} cannot be used: `));
    expect(JSON.stringify({ message: failure.message, beats })).not.toContain(secret.split('\n')[1]);
  });

  it('still takes the key text itself, or the path of a key, from the env var', async () => {
    for (const value of [readFileSync(rig.privateKeyPath, 'utf8'), rig.privateKeyPath]) {
      process.env[KEY_ENV] = value;
      const ssh = await SshSession.connect({ ...rig.sshHosts[3]! }, { privateKeyEnv: KEY_ENV });
      try {
        expect((await ssh.exec(['echo', 'ok'])).stdout.trim()).toBe('ok');
      } finally {
        ssh.close();
      }
    }
  });
});
