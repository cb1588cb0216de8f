// The janitor on the real Temporal server: builder VMs (on moto) whose release is closed or unknown to Temporal are
// found by their release tag and terminated; a running release's builder is left alone.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { DescribeInstancesCommand, EC2Client, RegisterImageCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { createAwsBuilderProvider } from '../../activities/aws';
import { Builder } from '../../config/schema';
import { WORKFLOW_TYPES } from '../../workflows/messages';
import type { JanitorReport } from '../../workflows/builder-janitor';
import { connectRig, startInProcessWorker, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-janitor');
const taskQueue = `e2e-janitor-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const region = 'eu-west-1';
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials });
const host = rig.sshHosts[2]!;
const awsDeps = { credentials, pollIntervalMs: 100, addressOf: () => ({ address: host.address, port: host.port }) };
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;
let builder: Extract<Builder, { provider: 'aws' }>;

const stateOf = async (releaseId: string) => {
  const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:bootc-release:release-id', Values: [releaseId] }] }));
  return (r.Reservations ?? []).flatMap((x) => x.Instances ?? []).map((i) => i.State?.Name);
};

beforeAll(async () => {
  const ami = await ec2.send(new RegisterImageCommand({ Name: `janitor-base-${randomUUID()}`, Architecture: 'x86_64' }));
  builder = Builder.parse({
    provider: 'aws',
    region,
    instanceType: 't3.micro',
    ami: ami.ImageId,
    credentials: { endpoint: rig.motoEndpoint },
    ssh: { privateKeyPath: rig.privateKeyPath },
  }) as Extract<Builder, { provider: 'aws' }>;
  // The janitor finds builders through the definitions the worker knows.
  writeFileSync(
    path.join(dirs.definitionsDir, 'farm.yaml'),
    stringify({
      name: 'farm',
      source: { image: 'quay.io/example/builder:latest' },
      architectures: { x86_64: { builder, types: ['qcow2'], targets: ['local'] } },
      targets: { local: { kind: 'directory', path: path.join(dirs.definitionsDir, 'images') } },
      approval: { approvers: ['copr-admin'] },
    }),
  );
  worker = await startInProcessWorker(rig, { taskQueue, dirs, overrides: { aws: awsDeps } });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
});

describe('the builder janitor', () => {
  it('terminates builders of closed and unknown releases, keeps those of running ones, and reports what it did', async () => {
    const provider = createAwsBuilderProvider(awsDeps);
    // A release that ended without tearing down (e.g. terminated by hand), one Temporal never heard of, one running.
    const closed = `closed-${randomUUID().slice(0, 8)}`;
    await conn.client.workflow.start('builderJanitor', { workflowId: closed, taskQueue: 'nobody-listens', args: [{}] });
    await conn.client.workflow.getHandle(closed).terminate('simulated lost release');
    const ghost = `ghost-${randomUUID().slice(0, 8)}`;
    const running = `running-${randomUUID().slice(0, 8)}`;
    await conn.client.workflow.start('builderJanitor', { workflowId: running, taskQueue: 'nobody-listens', args: [{}] });
    for (const releaseId of [closed, ghost, running]) await provider.acquire(builder, { releaseId, arch: 'x86_64' });

    const dry: JanitorReport = await conn.releases.runJanitor({ dryRun: true });
    // Each builder is an instance plus its tagged root volume.
    const instances = (r: JanitorReport) => r.deleted.filter((d) => d.kind === 'instance');
    expect(instances(dry).map((d) => d.releaseId).sort()).toEqual([closed, ghost].sort());
    expect(dry.deleted.every((d) => d.releaseId !== running)).toBe(true);
    expect(await stateOf(ghost)).toEqual(['running']);

    const report: JanitorReport = await conn.client.workflow.execute(WORKFLOW_TYPES.janitor, {
      workflowId: `janitor-${randomUUID().slice(0, 8)}`,
      taskQueue,
      args: [{ ttl: '24h' }],
    });
    expect(report.failed).toEqual([]);
    expect(report.deleted.find((d) => d.releaseId === closed)?.reason).toMatch(/is closed/);
    expect(report.deleted.find((d) => d.releaseId === ghost)?.reason).toMatch(/unknown to Temporal/);
    expect(await stateOf(closed)).toEqual(['terminated']);
    expect(await stateOf(ghost)).toEqual(['terminated']);
    expect(await stateOf(running)).toEqual(['running']);
    await conn.client.workflow.getHandle(running).terminate('test done');
  });

  it('runs on a Temporal Schedule, which a second `janitor schedule` updates instead of duplicating', async () => {
    const id = await conn.releases.scheduleJanitor({ every: '2h', ttl: '12h' });
    const handle = conn.client.schedule.getHandle(id);
    try {
      const first = await handle.describe();
      expect(first.spec.intervals?.[0]?.every).toBe(2 * 3600_000);
      expect(first.action).toMatchObject({ type: 'startWorkflow', workflowType: WORKFLOW_TYPES.janitor, taskQueue, args: [{ ttl: '12h' }] });
      await conn.releases.scheduleJanitor({ every: '30m', ttl: '6h' });
      const second = await handle.describe();
      expect(second.spec.intervals?.[0]?.every).toBe(30 * 60_000);
      expect(second.action).toMatchObject({ args: [{ ttl: '6h' }] });
    } finally {
      await handle.delete();
    }
  });
});
