// Releases at scale, shared by test/e2e/scale.test.ts (correctness) and test/bench/releases.ts (figures): every
// target kind the rig can run (a directory, AWS on moto, libvirt on the real libvirtd through a rig sshd, a real
// glance-api, the IBM Cloud stand-in with moto's S3 as COS), a release of four architectures onto them, many small
// releases at once, what a release leaves in Temporal's history, and a worker process's memory.
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import type { ReleaseDefinitionInput } from '../../config/schema';
import type { ReleaseClient } from '../../client/release-client';
import type { WiringOverrides } from '../../worker/wiring';
import { startGlance } from '../../scripts/servers/glance';
import { createPool, startLibvirtd } from '../../scripts/servers/libvirtd';
import { standinDefinition, type RigInfo } from '../rig/release-harness';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';

export const ARCHES = ['x86_64', 'aarch64', 'ppc64le', 's390x'] as const;
/** EC2 has instances of these only: an AMI of the other two cannot be registered. */
const AWS_ARCHES: readonly string[] = ['x86_64', 'aarch64'];
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const ibmEnv = { IBM_KEY: 'editor-key-for-tests', COS_AK: 'testing', COS_SK: 'testing' };

export interface Clouds {
  /** One target of each kind, by the name a definition gives it. */
  targets: Record<'images' | 'aws' | 'hypervisor' | 'glance' | 'ibm', object>;
  /** What a worker publishing to them needs: moto's keys, the IBM stand-in's keys, short polls. */
  overrides: WiringOverrides;
  stop(): Promise<void>;
}

/** Starts glance-api, a libvirt pool, the IBM stand-in and a COS bucket; moto and the SSH hosts are the rig's. */
export async function startClouds(rig: RigInfo, dir: string): Promise<Clouds> {
  mkdirSync(dir, { recursive: true });
  const stops: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const glance = await startGlance(path.join(dir, 'glance'));
    stops.push(() => glance.stop());
    const libvirtd = await startLibvirtd(path.join(dir, 'libvirtd'));
    stops.push(() => libvirtd.stop());
    const pool = await createPool(dir, 'scale');
    stops.push(() => pool.remove());
    const ibm = await IbmCloudStandin.start({ apiKeys: { [ibmEnv.IBM_KEY]: 'editor' }, regions: { 'us-east': {} } });
    stops.push(() => ibm.stop());
    const region = 'us-east-1';
    const bucket = `scale-${path.basename(dir).toLowerCase().replace(/[^a-z0-9-]/g, '-')}-${Date.now()}`.slice(0, 63);
    const s3 = new S3Client({ region, endpoint: rig.motoEndpoint, credentials, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const hypervisor = rig.sshHosts[0]!;
    return {
      targets: {
        images: { kind: 'directory', path: path.join(dir, 'images') },
        aws: { kind: 'aws', region, method: 'ebs-direct', credentials: { endpoint: rig.motoEndpoint } },
        hypervisor: {
          kind: 'libvirt',
          hosts: [hypervisor.address],
          ssh: { port: hypervisor.port, privateKeyPath: rig.privateKeyPath },
          pool: pool.name,
          format: 'qcow2',
        },
        glance: { kind: 'openstack', imageUrl: glance.address, testIdentityHeaders: { userId: 'copr-bot', projectId: 'copr' } },
        ibm: {
          kind: 'ibmcloud',
          regions: ['us-east'],
          cosBucket: bucket,
          cosEndpoint: rig.motoEndpoint,
          endpoint: ibm.endpoint,
          iamEndpoint: ibm.iamEndpoint,
          apiKeyEnv: 'IBM_KEY',
          cosAccessKeyEnv: 'COS_AK',
          cosSecretKeyEnv: 'COS_SK',
        },
      },
      overrides: {
        aws: { credentials, pollIntervalMs: 100 },
        ibmcloud: { env: ibmEnv, pollIntervalMs: 100 },
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Four architectures (one rig host each), each built by the stand-in in `buildSeconds` with a small disk and
 * published to `targets`; x86_64 and aarch64 also build an AMI when `aws` is among them (EC2 has no ppc64le or s390x).
 */
export function wideDefinition(
  rig: RigInfo,
  base: string,
  clouds: Clouds,
  o: { name: string; targets: (keyof Clouds['targets'])[]; buildSeconds?: number },
): ReleaseDefinitionInput {
  const def = standinDefinition(rig, base, {
    name: o.name,
    arches: ARCHES.map((arch, i) => ({ arch, host: rig.sshHosts[i % rig.sshHosts.length]!, types: ['qcow2'] })),
    build: { seconds: o.buildSeconds ?? 0, diskSize: '64M', dataMiB: 2 },
  });
  for (const arch of ARCHES) {
    const spec = def.architectures![arch]!;
    const aws = o.targets.includes('aws') && AWS_ARCHES.includes(arch);
    spec.types = aws ? ['ami', 'qcow2'] : ['qcow2'];
    spec.targets = o.targets.filter((t) => t !== 'aws' || aws);
  }
  def.targets = Object.fromEntries(o.targets.map((t) => [t, clouds.targets[t]])) as never;
  return def;
}

/** A one-architecture release to a directory, by default with a near-instant build: the lightest release there is. */
export function smallDefinition(rig: RigInfo, base: string, name: string, hostIndex: number, buildSeconds = 0): ReleaseDefinitionInput {
  return standinDefinition(rig, base, {
    name,
    arches: [{ arch: 'x86_64', host: rig.sshHosts[hostIndex % rig.sshHosts.length]!, types: ['qcow2'] }],
    build: { seconds: buildSeconds, diskSize: '16M', dataMiB: 1 },
  });
}

/**
 * Starts every release, approves each as it reaches awaiting approval and waits for all to end. Stages are read from
 * the server's visibility store (the stage search attribute), not by queries: 50 releases polled by query would
 * load the worker being measured. Resolves with each release's final stage.
 */
export async function runConcurrently(
  conn: { client: Client; releases: ReleaseClient },
  taskQueue: string,
  definitions: ReleaseDefinitionInput[],
  timeoutMs: number,
): Promise<Record<string, string>> {
  const ids = await Promise.all(definitions.map((d) => conn.releases.startFromDefinition(d)));
  const deadline = Date.now() + timeoutMs;
  const approved = new Set<string>();
  const approvals: Promise<unknown>[] = [];
  while (approved.size < ids.length) {
    if (Date.now() > deadline) throw new Error(`${ids.length - approved.size} of ${ids.length} releases did not reach awaiting approval in ${timeoutMs} ms`);
    const query = `TaskQueue = '${taskQueue}' AND BootcReleaseStage IN ('awaiting-approval', 'failed')`;
    for await (const w of conn.client.workflow.list({ query })) {
      if (!ids.includes(w.workflowId) || approved.has(w.workflowId)) continue;
      approved.add(w.workflowId);
      approvals.push(conn.releases.approve(w.workflowId, { by: 'copr-admin' }).catch((err: Error) => err));
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  await Promise.all(approvals);
  const results = await Promise.all(
    ids.map((id) =>
      conn.client.workflow
        .getHandle(id)
        .result()
        .then((r: { stage: string }) => r.stage, (err: Error) => `failed: ${err.message}`),
    ),
  );
  return Object.fromEntries(ids.map((id, i) => [id, results[i]!]));
}

export interface WorkflowHistory {
  workflowId: string;
  events: NonNullable<Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']>;
  /** The history's size as the server counts it against its limits (historySizeBytes). */
  bytes: number;
}

/** The release's history and those of its child workflows (and theirs), as the server keeps them. */
export async function releaseHistories(client: Client, releaseId: string): Promise<WorkflowHistory[]> {
  const out: WorkflowHistory[] = [];
  const visit = async (workflowId: string) => {
    const handle = client.workflow.getHandle(workflowId);
    const [history, description] = await Promise.all([handle.fetchHistory(), handle.describe()]);
    if (description.historySize === undefined) throw new Error(`the server does not report ${workflowId}'s history size`);
    const events = history.events ?? [];
    out.push({ workflowId, events, bytes: description.historySize });
    for (const e of events) {
      const child = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution?.workflowId;
      if (child) await visit(child);
    }
  };
  await visit(releaseId);
  return out;
}

export const historyTotals = (histories: WorkflowHistory[]) => ({
  workflows: histories.length,
  events: histories.reduce((n, h) => n + h.events.length, 0),
  bytes: histories.reduce((n, h) => n + h.bytes, 0),
});

/** A process's resident memory now (VmRSS) or at its peak so far (VmHWM), in MiB, from /proc/<pid>/status. */
export function memoryMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
  if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(m[1]) / 1024;
}
