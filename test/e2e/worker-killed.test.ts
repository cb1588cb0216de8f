// Durability on the real Temporal server: a worker process is SIGKILLed in the middle of a build and another one
// (same worker id: same staging queue and directories, as a restarted host) finishes the release with one VM and one
// build; killed in the middle of a fetch, the next one sends only what the last heartbeat did not record; a cancelled
// release leaves no instance and no volume. AWS builders run on moto, mapped to rig SSH hosts.
import { type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { EC2Client, RegisterImageCommand } from '@aws-sdk/client-ec2';
import { defaultPayloadConverter } from '@temporalio/common';
import type { FetchHeartbeat } from '../../activities/fetch/activities';
import { decodeIndexes } from '../../activities/fetch/fetch-plan';
import { sha256Of, tcpRelay } from '../integration/fetch-helpers';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import {
  alive,
  killWorker,
  releaseAwsResources,
  connectRig,
  rigDefinition,
  spawnWorkerProcess,
  waitForStage,
  waitUntil,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-killed');
const taskQueue = `e2e-killed-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const host = rig.sshHosts[3]!;
const region = 'us-east-1';
const ec2 = new EC2Client({
  region,
  endpoint: rig.motoEndpoint,
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
});
let conn: Awaited<ReturnType<typeof connectRig>>;
const workers: ChildProcess[] = [];
let workerCount = 0;

const MiB = 1024 * 1024;
const PIECE = 4 * MiB;

function startWorker(): ChildProcess {
  const child = spawnWorkerProcess(rig, {
    taskQueue,
    workerId: 'killable',
    dirs,
    logFile: path.join(base, `worker-${++workerCount}.log`),
    overrides: {
      aws: { defaultAddress: { address: host.address, port: host.port } },
      builder: { pollIntervalMs: 500 },
      fetch: { pieceBytes: PIECE, heartbeatIntervalMs: 200 },
    },
  });
  workers.push(child);
  return child;
}

const kill = killWorker;

/** Every bootc-image-builder start the stand-in recorded under a builder work dir. */
function buildStarts(dir: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'bib-standin.starts')
        n += readFileSync(p, 'utf8').trim().split('\n').filter(Boolean).length;
    }
  };
  walk(dir);
  return n;
}

async function awsDefinition(name: string, seconds: number) {
  const ami = await ec2.send(
    new RegisterImageCommand({ Name: `builder-base-${randomUUID()}`, Architecture: 'x86_64' }),
  );
  const def = rigDefinition(rig, {
    name,
    arches: [{ arch: 'x86_64', host, types: ['qcow2'] }],
    builderDir: path.join(base, name),
    imagesDir: path.join(base, name, 'images'),
    imageMapPath: path.join(base, name, 'image-map.yaml'),
    engine: standinEngine(path.join(base, name, 'engine'), { seconds, diskSize: '256M', dataMiB: 4 }, [
      rig.registry,
    ]),
    bibImage: ensureBibStandinImage(),
    heartbeat: '5s',
  });
  const arch = def.architectures!.x86_64!;
  arch.builder = {
    provider: 'aws',
    region,
    instanceType: 't3.micro',
    ami: ami.ImageId!,
    credentials: { endpoint: rig.motoEndpoint },
    ssh: { privateKeyPath: rig.privateKeyPath },
    workDir: path.join(base, name, 'work'),
  } as never;
  return def;
}

const awsResources = (releaseId: string) => releaseAwsResources(ec2, releaseId);

beforeAll(async () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  for (const w of workers) if (alive(w)) w.kill('SIGKILL');
  await conn?.close();
});

describe('a release whose worker is killed', () => {
  it('resumes the build on a new worker with one VM and one build, and finishes', async () => {
    const w1 = startWorker();
    const def = await awsDefinition('killed-build', 8);
    const id = await conn.releases.startFromDefinition(def);
    await waitUntil('the build to start on the builder', async () => {
      const s = await conn.releases.status(id).catch(() => undefined);
      return (
        s?.arches.x86_64?.stage === 'building-image' &&
        buildStarts(path.join(base, 'killed-build', 'work')) === 1
      );
    });
    await kill(w1);
    expect((await awsResources(id)).live).toBe(1);

    startWorker();
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 120_000);
    expect(ready.error).toBeUndefined();
    expect(ready.stage).toBe('awaiting-approval');
    expect(buildStarts(path.join(base, 'killed-build', 'work'))).toBe(1);
    expect(await awsResources(id)).toEqual({ all: 1, live: 0, volumes: 0 });
    const [candidate] = ready.candidates;
    expect(statSync(candidate!.imageId).size).toBe(candidate!.size);
    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');
  });

  it('resumes a fetch on a new worker from its last heartbeat, without sending the recorded pieces again', async () => {
    if (!workers.some(alive)) startWorker();
    // The builder is reached through a 16 MiB/s link that counts what it carries: the fetch takes seconds.
    const link = await tcpRelay(host, { bytesPerSecond: 16 * MiB });
    try {
      const name = 'killed-fetch';
      const def = rigDefinition(rig, {
        name,
        arches: [
          { arch: 'x86_64', host: { ...host, address: link.address, port: link.port }, types: ['raw'] },
        ],
        builderDir: path.join(base, name),
        imagesDir: path.join(base, name, 'images'),
        imageMapPath: path.join(base, name, 'image-map.yaml'),
        engine: standinEngine(path.join(base, name, 'engine'), { seconds: 1, diskSize: '1G', dataMiB: 128 }, [
          rig.registry,
        ]),
        bibImage: ensureBibStandinImage(),
        heartbeat: '2s',
      });
      const id = await conn.releases.startFromDefinition(def);
      const archBuild = conn.client.workflow.getHandle(`${id}.build.x86_64`);
      const recorded = async (): Promise<FetchHeartbeat | undefined> => {
        const d = await archBuild.describe().catch(() => undefined);
        const fetch = d?.raw.pendingActivities?.find((a) => a.activityType?.name === 'fetchArtifacts');
        const payload = fetch?.heartbeatDetails?.payloads?.[0];
        return payload ? defaultPayloadConverter.fromPayload<FetchHeartbeat>(payload) : undefined;
      };
      // Kill right after Temporal records a heartbeat with a good part of the pieces done, so little is in flight.
      let previous = '';
      let fresh = false;
      await waitUntil(
        'a fetch heartbeat with 12 pieces done',
        async () => {
          const done = (await recorded())?.progress?.piecesDone ?? '';
          fresh = done !== previous && decodeIndexes(done).size >= 12;
          previous = done;
          return fresh;
        },
        120_000,
      );
      await kill(workers.find(alive)!);
      const downAtKill = link.bytesDown;
      // What the next attempt starts from: the last heartbeat Temporal recorded before the worker died.
      const atKill = await recorded();
      const total = atKill!.progress!.dataBytes;
      const recordedBytes = decodeIndexes(atKill!.progress!.piecesDone).size * PIECE;
      expect(recordedBytes).toBeLessThan(total);

      startWorker();
      const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 120_000);
      expect(ready.error).toBeUndefined();
      expect(ready.stage).toBe('awaiting-approval');
      // What crossed the link after the kill: the pieces the heartbeat did not record, plus what was in flight or
      // done since (at most a few pieces at 32 MiB/s), plus SSH framing. A fetch from scratch would be `total` again.
      const resent = link.bytesDown - downAtKill;
      expect(resent).toBeGreaterThanOrEqual(total - recordedBytes);
      expect(resent).toBeLessThan(total - recordedBytes + 4 * PIECE);
      expect(resent).toBeLessThan(total);
      const [candidate] = ready.candidates;
      expect(sha256Of(candidate!.imageId)).toBe(candidate!.sha256);
      await conn.releases.reject(id, { by: 'copr-admin', reason: 'test done' });
    } finally {
      await link.close();
    }
  });

  it('tears the VM down when the release is cancelled mid-build, even if the worker dies during the cancel', async () => {
    if (!workers.some(alive)) startWorker();
    const def = await awsDefinition('cancelled-build', 30);
    const id = await conn.releases.startFromDefinition(def);
    await waitUntil(
      'the build to start',
      async () =>
        (await conn.releases.status(id).catch(() => undefined))?.arches.x86_64?.stage === 'building-image',
    );
    expect((await awsResources(id)).live).toBe(1);
    await conn.releases.cancel(id);
    // Kill the worker that is handling the cancellation; the next one completes the teardown.
    for (const w of workers) await kill(w);
    startWorker();
    const closed = await waitForStage(conn.releases, id, ['cancelled', 'failed'], 120_000);
    expect(closed.stage).toBe('cancelled');
    await waitUntil('teardown', async () => (await awsResources(id)).live === 0, 60_000);
    expect(await awsResources(id)).toEqual({ all: 1, live: 0, volumes: 0 });
  });
});
