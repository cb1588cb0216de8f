// The janitor on the real Temporal server, moto and a real glance-api: AMIs, snapshots and Glance images that a
// cancelled release published and could not delete itself (its cleanup's worker lost) are found by their release tag
// and deleted; those of a release that is still running stay.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RegisterImageCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { WORKFLOW_TYPES } from '../../workflows/messages';
import type { JanitorReport } from '../../workflows/builder-janitor';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { identityHeaders, startGlance, type Glance } from '../../scripts/servers/glance';
import { connectRig, rigDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-janitor-published');
const taskQueue = `e2e-janitor-published-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const region = 'ap-south-1';
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const ec2 = new EC2Client({ region, endpoint: rig.motoEndpoint, credentials });
const PROJECT = 'copr';
let glance: Glance;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

/** What a publish to target `aws-x` leaves: a snapshot and an AMI with the release's tags. */
async function leftovers(releaseId: string) {
  const Tags = [
    { Key: 'bootc-release:release-id', Value: releaseId },
    { Key: 'bootc-release:arch', Value: 'x86_64' },
    { Key: 'bootc-release:target', Value: 'aws-x' },
    { Key: 'bootc-release:image-name', Value: `farm-x86_64-${releaseId}` },
  ];
  const volume = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${region}a`, Size: 1 }));
  const snapshot = await ec2.send(
    new CreateSnapshotCommand({ VolumeId: volume.VolumeId, TagSpecifications: [{ ResourceType: 'snapshot', Tags }] }),
  );
  const image = await ec2.send(new RegisterImageCommand({ Name: `farm-x86_64-${releaseId}`, Architecture: 'x86_64' }));
  await ec2.send(new CreateTagsCommand({ Resources: [image.ImageId!], Tags }));
  const res = await fetch(`${glance.address}/v2/images`, {
    method: 'POST',
    headers: { ...identityHeaders(PROJECT), 'Content-Type': 'application/json' },
    body: JSON.stringify({
      name: `farm-x86_64-${releaseId}`,
      disk_format: 'raw',
      container_format: 'bare',
      tags: ['bootc-release'],
      bootc_release_id: releaseId,
      bootc_release_arch: 'x86_64',
    }),
  });
  const glanceImage = (await res.json()) as { id: string };
  return { snapshotId: snapshot.SnapshotId!, imageId: image.ImageId!, glanceId: glanceImage.id };
}
const glanceImagesOf = async (releaseId: string) => {
  const res = await fetch(`${glance.address}/v2/images?limit=1000`, { headers: identityHeaders(PROJECT) });
  const { images } = (await res.json()) as { images: { id: string; bootc_release_id?: string }[] };
  return images.filter((i) => i.bootc_release_id === releaseId).map((i) => i.id);
};
const tagged = (releaseId: string) => [{ Name: 'tag:bootc-release:release-id', Values: [releaseId] }];
const snapshotsOf = async (releaseId: string) =>
  ((await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: tagged(releaseId) }))).Snapshots ?? []).map((s) => s.SnapshotId);
const amisOf = async (releaseId: string) =>
  ((await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: tagged(releaseId) }))).Images ?? []).map((i) => i.ImageId);

beforeAll(async () => {
  glance = await startGlance(mkdtempSync(path.join(os.tmpdir(), 'e2e-janitor-glance-')));
  writeFileSync(
    path.join(dirs.definitionsDir, 'farm.yaml'),
    stringify({
      name: 'farm',
      source: { image: 'quay.io/example/builder:latest' },
      architectures: {
        x86_64: {
          builder: {
            provider: 'static',
            hosts: [{ address: rig.sshHosts[1]!.address, port: rig.sshHosts[1]!.port }],
            ssh: { privateKeyPath: rig.privateKeyPath },
            workDir: path.join(base, 'farm-work'),
          },
          types: ['ami', 'raw'],
          targets: ['aws-x', 'osuosl'],
        },
      },
      targets: {
        'aws-x': { kind: 'aws', region, credentials: { endpoint: rig.motoEndpoint } },
        osuosl: { kind: 'openstack', imageUrl: glance.address, testIdentityHeaders: { userId: 'copr-bot', projectId: PROJECT } },
      },
      approval: { approvers: ['copr-admin'] },
    }),
  );
  worker = await startInProcessWorker(rig, { taskQueue, dirs, overrides: { aws: { credentials, pollIntervalMs: 100 } } });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
  await glance?.stop();
});

describe('the janitor and published leftovers', () => {
  it('deletes what a cancelled release left at aws and openstack targets, found by tag, and keeps what a running release has', async () => {
    // A real release, cancelled while it waits for approval: Temporal reports it CANCELLED.
    const def = rigDefinition(rig, {
      name: 'farm',
      arches: [{ arch: 'x86_64', host: rig.sshHosts[1]!, types: ['qcow2'] }],
      builderDir: path.join(base, 'builders'),
      imagesDir: path.join(base, 'images'),
      imageMapPath: path.join(base, 'image-map.yaml'),
      engine: standinEngine(path.join(base, 'engine'), { seconds: 1, diskSize: '64M', dataMiB: 2 }, [rig.registry]),
      bibImage: ensureBibStandinImage(),
    });
    const cancelled = await conn.releases.startFromDefinition(def);
    await waitForStage(conn.releases, cancelled, ['awaiting-approval'], 180_000);
    await conn.releases.cancel(cancelled);
    await conn.client.workflow.getHandle(cancelled).result().catch(() => undefined);
    expect((await conn.client.workflow.getHandle(cancelled).describe()).status.name).toBe('CANCELLED');
    const running = `running-${randomUUID().slice(0, 8)}`;
    await conn.client.workflow.start('builderJanitor', { workflowId: running, taskQueue: 'nobody-listens', args: [{}] });

    // The cancelled release's cleanup never ran for these (its worker was lost): the janitor has to find them.
    const lost = await leftovers(cancelled);
    const kept = await leftovers(running);

    const report: JanitorReport = await conn.client.workflow.execute(WORKFLOW_TYPES.janitor, {
      workflowId: `janitor-${randomUUID().slice(0, 8)}`,
      taskQueue,
      args: [{ ttl: '24h' }],
    });
    expect(report.failed).toEqual([]);
    expect(report.deleted).toContainEqual({ kind: 'published', id: 'aws-x/x86_64', releaseId: cancelled, reason: `release ${cancelled} was cancelled` });
    expect(report.deleted).toContainEqual({ kind: 'published', id: 'osuosl/x86_64', releaseId: cancelled, reason: `release ${cancelled} was cancelled` });
    expect(report.deleted.some((d) => d.releaseId === running)).toBe(false);
    expect(await snapshotsOf(cancelled)).toEqual([]);
    expect(await amisOf(cancelled)).toEqual([]);
    expect(await snapshotsOf(running)).toEqual([kept.snapshotId]);
    expect(await amisOf(running)).toEqual([kept.imageId]);
    expect(await glanceImagesOf(cancelled)).toEqual([]);
    expect(await glanceImagesOf(running)).toEqual([kept.glanceId]);
    expect(lost.snapshotId).toMatch(/^snap-/);
    await conn.client.workflow.getHandle(running).terminate('test done');
  }, 300_000);
});
