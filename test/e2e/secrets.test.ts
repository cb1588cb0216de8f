// Secrets stay on the worker: a release whose builder key comes from an env var holding something that is not a key
// fails at once with the variable's NAME, and its value appears nowhere a person or Temporal keeps: not in the error,
// the status, the release's or its children's history, nor any pending activity's heartbeat or last failure.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { connectRig, rigDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-secrets');
const taskQueue = `e2e-secrets-${randomUUID().slice(0, 8)}`;
const KEY_ENV = 'BOOTC_TEST_E2E_BUILDER_KEY';
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

beforeAll(async () => {
  worker = await startInProcessWorker(rig, { taskQueue, dirs: workerDirs(path.join(base, 'worker')) });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  delete process.env[KEY_ENV];
  await worker?.stop();
  await conn?.close();
});

/** The history of a workflow and of every child it started, as JSON. */
async function histories(client: Client, workflowId: string): Promise<string> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const children = (history.events ?? [])
    .map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId)
    .filter((id): id is string => !!id);
  const json = [JSON.stringify(history)];
  for (const child of children) json.push(await histories(client, child));
  return json.join('\n');
}

describe('a builder key in an env var', () => {
  it('that is not a key fails the release naming the variable, and its value is nowhere in status, history or heartbeats', async () => {
    const secret = `hunter2-${randomUUID()}`;
    process.env[KEY_ENV] = secret;
    const def = rigDefinition(rig, {
      name: 'secret-key',
      arches: [{ arch: 'x86_64', host: rig.sshHosts[0]!, types: ['qcow2'] }],
      builderDir: path.join(base, 'builders'),
      imagesDir: path.join(base, 'images'),
      imageMapPath: path.join(base, 'inventory', 'copr.yaml'),
      engine: standinEngine(path.join(base, 'engine'), { seconds: 1, diskSize: '256M' }, [rig.registry]),
      bibImage: ensureBibStandinImage(),
    });
    (def.architectures!.x86_64!.builder as { ssh: object }).ssh = { privateKeyEnv: KEY_ENV };
    const id = await conn.releases.startFromDefinition(def);
    const handle = conn.client.workflow.getHandle(id);

    // Everything pending activities expose while the release runs (heartbeat details, last failure).
    const pending: string[] = [];
    const watch = (async () => {
      for (;;) {
        const d = await handle.describe().catch(() => undefined);
        if (d) pending.push(JSON.stringify(d.raw.pendingActivities ?? []));
        if (!d || d.status.name !== 'RUNNING') return;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const done = await waitForStage(conn.releases, id, ['failed', 'awaiting-approval']);
    await watch;

    expect(done.stage).toBe('failed');
    expect(done.error).toContain(`environment variable ${KEY_ENV} holds neither a private key`);
    const everything = [JSON.stringify(done), await histories(conn.client, id), ...pending].join('\n');
    expect(everything).not.toContain(secret);
    expect(everything).toContain(KEY_ENV);
  });

  it('a missing key file fails the release in preflight, naming the path, before a builder is taken', async () => {
    const dir = path.join(base, 'missing-key');
    mkdirSync(dir, { recursive: true });
    const allocator = path.join(dir, 'allocator');
    writeFileSync(allocator, `#!/bin/sh\necho "$*" >> ${dir}/calls\necho t1\n`);
    chmodSync(allocator, 0o755);
    const missing = path.join(dir, `no-such-key-${randomUUID().slice(0, 8)}`);
    const def = rigDefinition(rig, {
      name: 'missing-key',
      arches: [{ arch: 'x86_64', host: rig.sshHosts[0]!, types: ['qcow2'] }],
      builderDir: path.join(base, 'builders'),
      imagesDir: path.join(base, 'images'),
      imageMapPath: path.join(base, 'inventory', 'copr.yaml'),
      engine: ['podman'],
      bibImage: 'localhost/never-used:1',
    });
    def.architectures!.x86_64!.builder = {
      provider: 'command',
      acquire: [allocator, 'acquire'],
      release: [allocator, 'release'],
      ssh: { privateKeyPath: missing },
    } as never;
    const id = await conn.releases.startFromDefinition(def);
    const done = await waitForStage(conn.releases, id, ['failed', 'awaiting-approval']);
    expect(done.stage).toBe('failed');
    expect(done.error).toContain(
      `architectures.x86_64.builder.ssh: ssh: private key file ${missing} cannot be read on the worker (no such file)`,
    );
    expect(existsSync(path.join(dir, 'calls'))).toBe(false);
  });
});
