// A release tells its notification sinks when it awaits approval and when it is activated, and a sink that is down
// never holds it up (real Temporal dev server, rig builders, a real HTTP receiver on loopback).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectRig, standinDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';
import { freePort } from '../../scripts/servers/tools';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-notify');
const taskQueue = `e2e-notify-${randomUUID().slice(0, 8)}`;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;
const received: any[] = [];
let server: http.Server;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  worker = await startInProcessWorker(rig, {
    taskQueue,
    dirs: workerDirs(path.join(base, 'worker')),
    overrides: { notify: { uiAddress: rig.temporalUi } },
  });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
  await new Promise((r) => server?.close(r));
});

describe('release notifications', () => {
  it('are sent when the release awaits approval and when it is activated, while a sink that is down holds nothing up', async () => {
    const def = standinDefinition(rig, base, {
      name: 'notify',
      arches: [{ arch: 'aarch64', host: rig.sshHosts[3]!, types: ['qcow2'] }],
    });
    const hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    (def as any).notifications = [
      { kind: 'webhook', url: `http://127.0.0.1:${await freePort()}/nobody-listens` },
      { kind: 'webhook', url: hook },
    ];
    const id = await conn.releases.startFromDefinition(def, { reason: 'e2e notify' });
    expect((await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'])).stage).toBe('awaiting-approval');
    const done = await conn.releases.approve(id, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');
    // The release returns once its messages are out.
    await conn.client.workflow.getHandle(id).result();

    expect(received.map((m) => m.event)).toEqual(['awaiting-approval', 'activated']);
    expect(received[0]).toMatchObject({
      releaseId: id,
      definition: 'notify',
      arches: ['aarch64'],
      url: `${rig.temporalUi}/namespaces/default/workflows/${id}`,
    });
    expect(received[0].candidates.length).toBeGreaterThan(0);
    expect(received[1]).toMatchObject({ event: 'activated', by: 'copr-admin' });
  });
});
