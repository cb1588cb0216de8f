// Builder names of a definition whose name is long (36 characters), on the IBM Cloud stand-in with the janitor on the
// real Temporal server. Clouds allow 63 characters per name, so the release id cannot be written out whole: the names
// must still differ per architecture and per release, and the janitor must attribute each one to its full release
// id, keep a running release's builder, delete a closed release's, and leave alone what it cannot attribute.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { createIbmCloudBuilderProvider, type IbmCloudBuilder } from '../../activities/ibmcloud/builder-vm';
import { Builder } from '../../config/schema';
import { releaseIdFor } from '../../client/release-client';
import { WORKFLOW_TYPES } from '../../workflows/messages';
import type { JanitorReport } from '../../workflows/builder-janitor';
import { connectRig, startInProcessWorker, workerDirs, type RigInfo } from '../rig/release-harness';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';

const rig = inject('rig') as RigInfo;
const taskQueue = `e2e-janitor-names-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(rig.dir, 'e2e-janitor-names'));
const env = { IBM_KEY: 'editor-key-for-long-names' };
const definition = 'copr-builder-for-the-long-named-farm';
const host = rig.sshHosts[3]!;
const deps = { env, pollIntervalMs: 5, addressOf: () => ({ address: host.address, port: host.port }) };
let standin: IbmCloudStandin;
let builder: IbmCloudBuilder;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

// Four releases of the definition one second apart: their ids differ only in the last characters of the stamp.
const base = Date.now() - (Date.now() % 1000);
const [running, running2, closed, ghost] = [0, 1, 2, 3].map((s) => releaseIdFor(definition, new Date(base + s * 1000)));

beforeAll(async () => {
  standin = await IbmCloudStandin.start({
    apiKeys: { [env.IBM_KEY]: 'editor' },
    regions: {
      'us-east': {
        vpcs: ['r014-vpc-builders'],
        subnets: [{ id: '0757-subnet-1', zone: 'us-east-1', vpc: 'r014-vpc-builders' }],
        keys: ['r014-key-copr'],
        images: [{ id: 'r014-fedora-40', name: 'ibm-fedora-40' }],
      },
    },
  });
  builder = Builder.parse({
    provider: 'ibmcloud',
    region: 'us-east',
    zone: 'us-east-1',
    profile: 'bz2-4x16',
    image: 'r014-fedora-40',
    vpc: 'r014-vpc-builders',
    subnet: '0757-subnet-1',
    keys: ['r014-key-copr'],
    apiKeyEnv: 'IBM_KEY',
    endpoint: standin.endpoint,
    iamEndpoint: standin.iamEndpoint,
    ssh: { privateKeyPath: rig.privateKeyPath },
  }) as IbmCloudBuilder;
  writeFileSync(
    path.join(dirs.definitionsDir, 'long.yaml'),
    stringify({
      name: definition,
      source: { image: 'quay.io/example/builder:latest' },
      architectures: { s390x: { builder, types: ['qcow2'], targets: ['local'] }, x86_64: { builder, types: ['qcow2'], targets: ['local'] } },
      targets: { local: { kind: 'directory', path: '/var/tmp/bootc-release-janitor-long-names' } },
      approval: { approvers: ['copr-admin'] },
    }),
  );
  worker = await startInProcessWorker(rig, { taskQueue, dirs, overrides: { ibmcloud: deps } });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await worker?.stop();
  await conn?.close();
  await standin?.stop();
});

/** Instance id per `<release>/<arch>`, from the acquires of the first test. */
const hosts = new Map<string, string>();
const statusOf = (releaseId: string, arch = 's390x') =>
  standin.instances('us-east').find((i) => i.id === hosts.get(`${releaseId}/${arch}`))?.status ?? 'gone';

describe('builder names of a long-named definition', () => {
  it('give two arches and two releases builders of their own, with valid cloud names', async () => {
    const provider = createIbmCloudBuilderProvider(deps);
    for (const [releaseId, arch] of [[running, 's390x'], [running, 'x86_64'], [running2, 's390x'], [closed, 's390x'], [ghost, 's390x']] as const)
      hosts.set(`${releaseId}/${arch}`, (await provider.acquire(builder, { releaseId, arch })).id);
    expect(new Set(hosts.values()).size).toBe(5);
    const names = standin.instances('us-east').map((i) => i.name);
    expect(new Set(names).size).toBe(5);
    for (const name of names) expect(name).toMatch(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
  });

  it('the janitor maps them back to their full release ids, keeps the running releases, and deletes only the closed one', async () => {
    for (const id of [running, running2, closed]) await conn.client.workflow.start(WORKFLOW_TYPES.release, { workflowId: id, taskQueue: 'nobody-listens', args: [{}] });
    await conn.client.workflow.getHandle(closed).terminate('simulated lost release');

    const report: JanitorReport = await conn.client.workflow.execute(WORKFLOW_TYPES.janitor, {
      workflowId: `janitor-${randomUUID().slice(0, 8)}`,
      taskQueue,
      args: [{ ttl: '24h' }],
    });
    try {
      expect(report.failed).toEqual([]);
      expect(report.deleted.map((d) => [d.releaseId, d.reason])).toEqual([[closed, `release ${closed} is closed`]]);
      const kept = (report.kept ?? []).filter((k) => k.kind === 'instance');
      const keptFor = (releaseId: string) => kept.filter((k) => k.releaseId === releaseId).length;
      expect([keptFor(running), keptFor(running2)]).toEqual([2, 1]);
      // The ghost's name holds only the head of its id, and no workflow has that id: it cannot be attributed, so it stays.
      expect(kept.filter((k) => k.releaseId === undefined).map((k) => k.id)).toEqual([hosts.get(`${ghost}/s390x`)]);
      expect(kept.find((k) => k.releaseId === undefined)?.reason).toMatch(/no release known to Temporal has the shortened name/);
      expect([statusOf(running), statusOf(running, 'x86_64'), statusOf(running2), statusOf(ghost)]).toEqual(['running', 'running', 'running', 'running']);
      expect(statusOf(closed)).toMatch(/deleting|gone/);
    } finally {
      for (const id of [running, running2]) await conn.client.workflow.getHandle(id).terminate('test done');
    }
  });
});
