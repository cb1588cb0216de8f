// The secret scan that ends every e2e test file (test/rig/secret-scan.ts) can fail: secrets planted where Temporal
// keeps them (a workflow's input, memo and search attributes; a running activity's heartbeat details) and in a
// worker's log are each found, named by workflow, place and the secret's label, and the report never holds a value.
// This file plants them through a scan of its own: the harness's scan of this file watches nothing, and passes.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createActivities } from '../../activities';
import { releasePlanOf } from '../../client/release-client';
import { createWorkers } from '../../worker/run';
import { createActivityDeps } from '../../worker/wiring';
import { WORKFLOW_TYPES } from '../../workflows/messages';
import { rigDefinition, waitUntil, workerDirs, type RigInfo } from '../rig/release-harness';
import { describeFindings, FileScan } from '../rig/secret-scan';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-secret-scan');
const token = `planted-${randomUUID()}`;
const referenced = `referenced-${randomUUID()}`;
const stops: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  delete process.env.BOOTC_TEST_PLANTED_TOKEN;
  delete process.env.PLANTED_BY_REFERENCE;
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
});

async function client(): Promise<Client> {
  const connection = await Connection.connect({ address: rig.temporalAddress });
  stops.push(() => connection.close());
  return new Client({ connection });
}

describe('the secret scan', () => {
  it('finds planted secrets in a history, a memo, a search attribute, heartbeat details and a log, naming each place and never the value', async () => {
    // A secret-named variable, and one that is a secret only because a plan references it by name.
    process.env.BOOTC_TEST_PLANTED_TOKEN = token;
    process.env.PLANTED_BY_REFERENCE = referenced;
    const scan = new FileScan();
    const c = await client();

    // A start input, memo and search attribute holding the secret, on a queue no worker serves.
    const quiet = `e2e-secret-scan-quiet-${randomUUID().slice(0, 8)}`;
    scan.watchQueue(rig.temporalAddress, quiet);
    const planted = `planted-${randomUUID().slice(0, 8)}`;
    await c.workflow.start(WORKFLOW_TYPES.release, {
      workflowId: planted,
      taskQueue: quiet,
      args: [{ definition: 'copr-builder', reason: `rebuild with ${token}` }],
      memo: { note: `token ${token}`, credentials: { apiKeyEnv: 'PLANTED_BY_REFERENCE' }, echo: referenced },
      searchAttributes: { BootcReleaseName: [token] },
    });
    stops.push(() => c.workflow.getHandle(planted).terminate());

    // A release whose allocator prints the secret as its ticket: the acquire step's heartbeat details carry it.
    const busy = `e2e-secret-scan-busy-${randomUUID().slice(0, 8)}`;
    scan.watchQueue(rig.temporalAddress, busy);
    const dirs = workerDirs(path.join(base, 'worker'));
    const allocator = path.join(base, 'allocator');
    mkdirSync(base, { recursive: true });
    writeFileSync(allocator, `#!/bin/sh\ncase "$1" in acquire) echo ${token} ;; wait) sleep 120 ;; esac\n`, { mode: 0o755 });
    Runtime.install({ logger: new DefaultLogger('WARN') });
    const native = await NativeConnection.connect({ address: rig.temporalAddress });
    const stagingQueue = `${busy}@w1`;
    const workers = await createWorkers(
      native,
      { namespace: 'default', taskQueue: busy, stagingQueue, workflowBundle: rig.workflowBundlePath },
      createActivities(createActivityDeps({ ...dirs, stagingQueue, allowInlineDefinitions: true }, c, { builder: { pollIntervalMs: 500 } })),
    );
    const running = workers.run();
    stops.push(async () => {
      workers.shutdown();
      await running;
      await native.close();
    });
    const def = rigDefinition(rig, {
      name: 'planted-ticket',
      arches: [{ arch: 'x86_64', host: rig.sshHosts[0]! }],
      builderDir: path.join(base, 'builders'),
      imagesDir: path.join(base, 'images'),
      imageMapPath: path.join(base, 'image-map.yaml'),
      engine: ['podman'],
      bibImage: 'localhost/never-used:1',
    });
    def.architectures!.x86_64!.builder = {
      provider: 'command',
      acquire: [allocator, 'acquire'],
      wait: [allocator, 'wait'],
      release: [allocator, 'release'],
      ssh: { privateKeyPath: rig.privateKeyPath },
    } as never;
    const plan = releasePlanOf(def);
    await c.workflow.start(WORKFLOW_TYPES.release, { workflowId: plan.releaseId, taskQueue: busy, args: [{ plan }] });
    stops.push(() => c.workflow.getHandle(plan.releaseId).cancel());
    const child = `${plan.releaseId}.build.x86_64`;
    await waitUntil('the acquire step to heartbeat its ticket', async () => {
      const d = await c.workflow.getHandle(child).describe().catch(() => undefined);
      return (d?.raw.pendingActivities ?? []).some((a) => (a.heartbeatDetails?.payloads ?? []).length > 0);
    });
    await new Promise((r) => setTimeout(r, 2500)); // the scan samples running activities each second

    // A worker log line.
    const log = path.join(base, 'worker.log');
    writeFileSync(log, `worker started\nacquired ticket ${token}\n`);
    scan.watchLogFiles(log, 'worker.log');

    const { findings, summary } = await scan.finish();
    const TOKEN = 'the value of BOOTC_TEST_PLANTED_TOKEN';
    expect(findings).toEqual(
      expect.arrayContaining([
        { workflowId: planted, place: 'history event 1 (WORKFLOW_EXECUTION_STARTED)', secret: TOKEN },
        { workflowId: planted, place: 'memo note', secret: TOKEN },
        { workflowId: planted, place: 'memo echo', secret: 'the value of PLANTED_BY_REFERENCE' },
        { workflowId: planted, place: 'search attribute BootcReleaseName', secret: TOKEN },
        { workflowId: child, place: expect.stringMatching(/^pending activity acquireBuilder \(id \d+, attempt 1\) heartbeat details$/), secret: TOKEN },
        { workflowId: undefined, place: 'worker.log line 2', secret: TOKEN },
      ]),
    );
    const report = `${summary}\n${describeFindings(findings)}`;
    expect(report).toContain(`workflow ${planted}: memo note holds the secret "${TOKEN}"`);
    expect(report).not.toContain(token);
    expect(report).not.toContain(referenced);
  }, 180_000);
});
