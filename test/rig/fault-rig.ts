// The rig of the fault matrix (test/e2e/fault-*.test.ts), on top of the run's shared rig (Temporal, moto, registry):
// every builder provider and every target kind a release can use, each reachable through a fault-injecting proxy,
// each able to hold a step in flight, and a leak counter that asks each cloud what it still has.
//   builders   one gated sshd (test/rig/command-gates.ts: podman, mkfs.ext4, virsh, cp) is every builder VM and the
//              hypervisor; each provider reaches it through a TCP fault proxy of its own (a link to cut or stall):
//              aws on moto, libvirt on the real libvirtd (domains: test/standins/libvirt-domains.ts), ibmcloud on the
//              VPC stand-in, command through a resalloc stand-in whose ticket-wait can be held, static;
//   targets    directory, aws (EBS direct, moto), ibmcloud (COS on moto's S3, VPC images on the stand-in), libvirt
//              (a real pool), openstack (a real glance-api); moto, glance-api and the VPC API sit behind HTTP
//              fault proxies;
//   workers    child processes (test/rig/worker-process.ts) with the gated commands first on PATH, killable.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { EC2Client, RegisterImageCommand } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { defaultPayloadConverter } from '@temporalio/common';
import type { Arch, ReleaseDefinitionInput } from '../../config/schema';
import { channelWorkflowId } from '../../activities/channels';
import type { Candidate } from '../../activities/types';
import { ensureBibStandinImage, standinEngine, type StandinKnobs } from '../standins/bootc-image-builder/image';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';
import { StandinDomains } from '../standins/libvirt-domains';
import { CommandGates } from './command-gates';
import { FaultProxy } from './fault-proxy';
import { startGlance } from '../../scripts/servers/glance';
import { HttpFaultProxy } from './http-fault-proxy';
import { LeakCounter, type CloudResource, type ReleaseRef } from './leaks';
import { createPool, startLibvirtd, virsh } from '../../scripts/servers/libvirtd';
import { alive, connectRig, killWorker, spawnWorkerProcess, waitUntil, workerDirs, type RigInfo } from './release-harness';
import { SshServer } from '../../scripts/servers/sshd';

export type Provider = 'aws' | 'libvirt' | 'ibmcloud' | 'command' | 'static';
export type TargetKind = 'directory' | 'aws' | 'ibmcloud' | 'libvirt' | 'openstack';
export const PROVIDERS: Provider[] = ['aws', 'libvirt', 'ibmcloud', 'command', 'static'];
export const TARGET_KINDS: TargetKind[] = ['directory', 'aws', 'ibmcloud', 'libvirt', 'openstack'];
/** One architecture per provider that provisions (static has one host, and runs beside it in a release of its own). */
export const FLEET: Partial<Record<Arch, Provider>> = { x86_64: 'libvirt', aarch64: 'aws', ppc64le: 'ibmcloud', s390x: 'command' };

const REGION = 'ca-central-1';
const IBM_REGION = 'us-east';
const GLANCE_PROJECT = 'copr';
const MiB = 2 ** 20;
/** Keys the definitions name by variable; the workers get them in their environment. */
const KEYS = { FAULT_IBM_KEY: 'editor-key-for-faults', FAULT_COS_AK: 'testing', FAULT_COS_SK: 'testing', AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };

export interface ReleaseSpec {
  /** The provider of each architecture's builder. */
  builders: Partial<Record<Arch, Provider>>;
  targets: TargetKind[];
  types?: string[];
  build?: StandinKnobs;
  /** A data volume per architecture: a loop device, or the EBS volume `attached` for aws. */
  dataVolume?: boolean;
  /** A command hook after the image map, which can be held (FaultRig.hook). */
  hook?: boolean;
}

/** A release a fault test started, with the spec it was made from. */
export interface Started extends ReleaseRef {
  spec: ReleaseSpec;
}

/** Every start of the bootc-image-builder stand-in recorded under a work dir (it writes one line per start). */
export function buildStarts(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.name === 'bib-standin.starts') n += readFileSync(path.join(e.parentPath, e.name), 'utf8').split('\n').filter(Boolean).length;
  return n;
}

export interface FaultRig {
  rig: RigInfo;
  base: string;
  taskQueue: string;
  conn: Awaited<ReturnType<typeof connectRig>>;
  gates: CommandGates;
  /** The SSH link of each provider's builders. */
  links: Record<Provider, FaultProxy>;
  moto: HttpFaultProxy;
  glance: HttpFaultProxy;
  ibmApi: HttpFaultProxy;
  ibm: IbmCloudStandin;
  domains: StandinDomains;
  resalloc: { holdTickets(on: boolean): void; tickets(): string[]; closes(): string[] };
  hook: { hold(on: boolean): void; runs(): string[] };
  leaks: LeakCounter;
  definition(name: string, spec: ReleaseSpec): ReleaseDefinitionInput;
  /** Starts a release of `definition(name, spec)`. */
  start(name: string, spec: ReleaseSpec): Promise<Started>;
  /** True when every architecture of the release is at `stage`. */
  allAt(release: Started, stage: string): Promise<boolean>;
  /** The builder's work dir of one architecture of the release. */
  workDir(release: Started, arch: string): string;
  /** waitUntil, whose timeout says where each release and hold stood (`describe`). */
  waitFor(what: string, check: () => Promise<boolean> | boolean, releases: ReleaseRef | ReleaseRef[], timeoutMs?: number): Promise<void>;
  /**
   * Holds every target kind once its cloud has done the work (the AMI registered, the VPC image created, the Glance
   * upload stored, the libvirt volume written, the file copied): the answers wait until `release()`.
   */
  holdPublishes(): { allHeld(): boolean; release(): void };
  /** Everything a release still has, beyond what backs `candidates`, in every cloud and on every builder host. */
  leftBehind(release: ReleaseRef, candidates?: Candidate[]): Promise<CloudResource[]>;
  startWorker(): ChildProcess;
  killWorkers(): Promise<void>;
  /** Where releases stand, for a failure message: stages, pending activities, what the clouds hold, held steps. */
  describe(releases: ReleaseRef[]): Promise<string>;
  /** The pending activity of `type` in workflow `workflowId` (attempt, heartbeat details), if any. */
  pendingActivity(workflowId: string, type: string): Promise<{ attempt: number; details?: unknown } | undefined>;
  stop(): Promise<void>;
}

export async function startFaultRig(rig: RigInfo, name: string): Promise<FaultRig> {
  const base = path.join(rig.dir, name);
  mkdirSync(base, { recursive: true });
  const stops: (() => unknown)[] = [];
  const taskQueue = `${name}-${randomUUID().slice(0, 8)}`;
  const gates = new CommandGates(path.join(base, 'gates'), ['podman', 'mkfs.ext4', 'virsh', 'cp']);
  const publicKey = readFileSync(`${rig.privateKeyPath}.pub`, 'utf8').trim();
  const builderSsh = await SshServer.start(path.join(base, 'hosts'), '127.0.0.11', { privateKeyPath: rig.privateKeyPath, publicKey }, {
    env: { PATH: gates.path('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin') },
  });
  stops.push(() => builderSsh.stop());
  const linkList = await Promise.all(PROVIDERS.map(() => FaultProxy.start(builderSsh.host)));
  const links = Object.fromEntries(PROVIDERS.map((p, i) => [p, linkList[i]!])) as Record<Provider, FaultProxy>;
  stops.push(() => Promise.all(linkList.map((l) => l.close())));

  const [glanceServer, ibm, libvirtd] = await Promise.all([
    startGlance(mkdtempSync(path.join(os.tmpdir(), `${name}-glance-`))),
    IbmCloudStandin.start({
      apiKeys: { [KEYS.FAULT_IBM_KEY]: 'editor' },
      regions: {
        [IBM_REGION]: {
          vpcs: ['r014-vpc-builders'],
          subnets: [{ id: '0757-subnet-1', zone: 'us-east-1', vpc: 'r014-vpc-builders' }],
          keys: ['r014-key-copr'],
          images: [{ id: 'r014-fedora-40', name: 'ibm-fedora-40' }],
        },
      },
    }),
    startLibvirtd(path.join(rig.dir, 'libvirtd')),
  ]);
  stops.push(() => glanceServer.stop(), () => ibm.stop(), () => libvirtd.stop());
  const [moto, glance, ibmApi] = await Promise.all([
    HttpFaultProxy.start(rig.motoEndpoint),
    HttpFaultProxy.start(glanceServer.address),
    HttpFaultProxy.start(ibm.iamEndpoint),
  ]);
  stops.push(() => moto.close(), () => glance.close(), () => ibmApi.close());
  const builderPool = await createPool(base, 'fault-builders');
  const imagePool = await createPool(base, 'fault-images');
  stops.push(() => builderPool.remove(), () => imagePool.remove());
  await virsh('vol-create-as', '--pool', builderPool.name, '--name', 'base.raw', '--capacity', '64M', '--format', 'raw');
  const domains = new StandinDomains({ stateDir: path.join(base, 'domains'), vmAddress: links.libvirt.address });

  const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
  const ec2 = new EC2Client({ region: REGION, endpoint: rig.motoEndpoint, credentials });
  const ami = (await ec2.send(new RegisterImageCommand({ Name: `${name}-base-${randomUUID()}`, Architecture: 'x86_64' }))).ImageId!;
  ec2.destroy();
  const cosBucket = `${name}-cos-${randomUUID().slice(0, 8)}`;
  const s3 = new S3Client({ region: 'us-east-1', endpoint: rig.motoEndpoint, credentials, forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: cosBucket }));
  s3.destroy();

  const resalloc = resallocStandin(path.join(base, 'resalloc'));
  const hook = holdableHook(path.join(base, 'hook'));
  const imagesDir = path.join(base, 'images');
  const leaks = new LeakCounter({
    moto: { endpoint: rig.motoEndpoint, regions: [REGION], buckets: [{ name: cosBucket, region: 'us-east-1' }] },
    ibm,
    libvirt: { pools: [builderPool.name, imagePool.name] },
    glance: { address: glanceServer.address, project: GLANCE_PROJECT },
    directories: [imagesDir],
    claims: (release) => readdirSafe(path.join(base, release.definition)).map((arch) => path.join(base, release.definition, arch, 'work', '.claims')),
    tickets: { issued: resalloc.tickets, closed: resalloc.closes },
  });

  const dirs = workerDirs(path.join(base, 'worker'));
  const workers: ChildProcess[] = [];
  const conn = await connectRig(rig, taskQueue);
  stops.push(() => conn.close());

  const builderOf = (provider: Provider, arch: Arch, workDir: string, dataVolume: boolean, build: string) => {
    const ssh = { privateKeyPath: rig.privateKeyPath };
    const link = links[provider];
    const common = { workDir, ...(dataVolume ? { dataVolume: dataVolumeFor(provider, base, build, arch) } : {}) };
    switch (provider) {
      case 'aws':
        return { provider, region: REGION, instanceType: 't3.micro', ami, credentials: { endpoint: moto.url }, ssh, ...common };
      case 'libvirt':
        return {
          provider,
          host: builderSsh.host.address,
          hypervisorSsh: { port: builderSsh.host.port, privateKeyPath: rig.privateKeyPath },
          pool: builderPool.name,
          baseVolume: 'base.raw',
          memoryMiB: 1024,
          vcpus: 1,
          diskSizeGiB: 10,
          ssh: { ...ssh, port: link.port },
          ...common,
        };
      case 'ibmcloud':
        return {
          provider,
          region: IBM_REGION,
          zone: 'us-east-1',
          profile: 'bz2-4x16',
          image: 'r014-fedora-40',
          vpc: 'r014-vpc-builders',
          subnet: '0757-subnet-1',
          keys: ['r014-key-copr'],
          apiKeyEnv: 'FAULT_IBM_KEY',
          endpoint: ibmApi.endpoint('/{region}'),
          iamEndpoint: ibmApi.url,
          ssh,
          ...common,
        };
      case 'command':
        return {
          provider,
          acquire: [resalloc.script, 'ticket'],
          wait: [resalloc.script, 'ticket-wait'],
          release: [resalloc.script, 'ticket-close'],
          ssh: { ...ssh, port: link.port },
          ...common,
        };
      case 'static':
        return { provider, hosts: [{ address: link.address, port: link.port }], ssh, ...common };
    }
  };

  const targetsOf = (kinds: TargetKind[]) => {
    const all = {
      directory: { kind: 'directory', path: imagesDir },
      aws: { kind: 'aws', region: REGION, method: 'ebs-direct', credentials: { endpoint: moto.url } },
      ibmcloud: {
        kind: 'ibmcloud',
        regions: [IBM_REGION],
        cosBucket,
        cosEndpoint: moto.url,
        endpoint: ibmApi.endpoint('/{region}'),
        iamEndpoint: ibmApi.url,
        apiKeyEnv: 'FAULT_IBM_KEY',
        cosAccessKeyEnv: 'FAULT_COS_AK',
        cosSecretKeyEnv: 'FAULT_COS_SK',
      },
      libvirt: { kind: 'libvirt', hosts: [builderSsh.host.address], ssh: { port: builderSsh.host.port, privateKeyPath: rig.privateKeyPath }, pool: imagePool.name },
      openstack: { kind: 'openstack', imageUrl: glance.url, testIdentityHeaders: { userId: 'copr-bot', projectId: GLANCE_PROJECT } },
    };
    return Object.fromEntries(kinds.map((k) => [k, all[k]]));
  };

  const fr: FaultRig = {
    rig,
    base,
    taskQueue,
    conn,
    gates,
    links,
    moto,
    glance,
    ibmApi,
    ibm,
    domains,
    resalloc,
    hook,
    leaks,
    definition(defName, spec) {
      const build = path.join(base, defName);
      // EC2 has x86_64 and aarch64 instances only: the other architectures skip aws targets.
      const targetsFor = (arch: string) => spec.targets.filter((t) => t !== 'aws' || arch === 'x86_64' || arch === 'aarch64');
      const typesFor = (arch: string) => spec.types ?? (targetsFor(arch).includes('aws') ? ['ami', 'qcow2'] : ['qcow2']);
      const activation: object[] = [{ kind: 'image-map-file', path: path.join(build, 'image-map.yaml') }];
      if (spec.hook) activation.push({ kind: 'command', command: [hook.script], timeout: '10m' });
      return {
        name: defName,
        source: { image: rig.sourceImage },
        imageBuilder: {
          image: ensureBibStandinImage(),
          engine: standinEngine(path.join(build, 'engine'), { seconds: 1, diskSize: '64M', dataMiB: 2, ...spec.build }, [rig.registry]),
          timeout: '10m',
        },
        architectures: Object.fromEntries(
          Object.entries(spec.builders).map(([arch, provider]) => [
            arch,
            {
              builder: builderOf(provider!, arch as Arch, path.join(build, arch, 'work'), !!spec.dataVolume, build),
              types: typesFor(arch),
              targets: targetsFor(arch),
            },
          ]),
        ),
        targets: targetsOf(spec.targets),
        approval: { timeout: '1h', approvers: ['copr-admin'], allowUnsigned: true, channel: 'staging' },
        channels: { staging: { activation } },
        timeouts: { heartbeat: '5s', retryInitial: '1s', retryMax: '3s', stagingWait: '5m' },
      } as ReleaseDefinitionInput;
    },
    async start(name, spec) {
      return { id: await conn.releases.startFromDefinition(fr.definition(name, spec)), definition: name, spec };
    },
    async allAt(r, stage) {
      const s = await conn.releases.status(r.id).catch(() => undefined);
      return Object.keys(r.spec.builders).every((a) => s?.arches[a as Arch]?.stage === stage);
    },
    workDir: (r, arch) => path.join(base, r.definition, arch, 'work'),
    async waitFor(what, check, releases, timeoutMs = 120_000) {
      try {
        await waitUntil(what, check, timeoutMs);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${await fr.describe([releases].flat())}`);
      }
    },
    holdPublishes() {
      const holds = [
        moto.add({ match: { body: /Action=RegisterImage/ }, action: { holdResponse: true } }),
        ibmApi.add({ match: { method: 'POST', path: /\/v1\/images\?/ }, action: { holdResponse: true } }),
        glance.add({ match: { method: 'PUT', path: /\/v2\/images\/[^/]+\/file/ }, action: { holdResponse: true } }),
      ];
      gates.hold('virsh', ' vol-upload ');
      gates.hold('cp', '.');
      return {
        allHeld: () => holds.every((h) => h.held > 0) && gates.held('virsh') > 0 && gates.held('cp') > 0,
        release() {
          moto.clear();
          ibmApi.clear();
          glance.clear();
          gates.release('virsh');
          gates.release('cp');
        },
      };
    },
    leftBehind: (release, candidates = []) => leaks.leftBehind(release, candidates),
    startWorker() {
      const child = spawnWorkerProcess(rig, {
        taskQueue,
        workerId: 'faulty',
        dirs,
        logFile: path.join(base, `worker-${workers.length + 1}.log`),
        env: { ...KEYS, PATH: gates.path() },
        overrides: {
          aws: { defaultAddress: links.aws.endpoint, blockConcurrency: 2 },
          ibmcloud: { defaultAddress: links.ibmcloud.endpoint, cosPartSize: 5 * MiB },
          libvirtDomains: { stateDir: path.join(base, 'domains'), vmAddress: links.libvirt.address },
          builder: { pollIntervalMs: 500 },
          fetch: { pieceBytes: 4 * MiB, heartbeatIntervalMs: 500 },
        },
      });
      workers.push(child);
      return child;
    },
    async killWorkers() {
      for (const w of workers) if (alive(w)) await killWorker(w);
    },
    async describe(releases) {
      const lines: string[] = [];
      for (const r of releases) {
        const s = await conn.releases.status(r.id).catch((err: Error) => ({ stage: `status query failed: ${err.message}`, arches: {}, error: undefined }));
        lines.push(`${r.id}: ${s.stage}${s.error ? ` (${s.error})` : ''}; ${Object.entries(s.arches).map(([a, x]) => `${a} ${x?.stage}${x?.error ? ` (${x.error})` : ''}`).join(', ')}`);
        for (const wf of [r.id, ...Object.keys(s.arches).map((a) => `${r.id}.build.${a}`), channelWorkflowId(r.definition, 'staging')]) {
          const d = await conn.client.workflow.getHandle(wf).describe().catch(() => undefined);
          for (const a of d?.raw.pendingActivities ?? [])
            lines.push(`  ${wf}: ${a.activityType?.name} attempt ${a.attempt}${a.lastFailure?.message ? `, last failure: ${a.lastFailure.message}` : ''}`);
        }
        lines.push(`  resources: ${(await leaks.resources(r).catch(() => [])).map((x) => x.kind).join(' ') || 'none'}`);
      }
      lines.push(`held: ${gates.commands.map((c) => `${c} ${gates.held(c)}`).join(', ')}; hook runs ${hook.runs().length}`);
      return lines.join('\n');
    },
    async pendingActivity(workflowId, type) {
      const d = await conn.client.workflow.getHandle(workflowId).describe().catch(() => undefined);
      const a = d?.raw.pendingActivities?.find((p) => p.activityType?.name === type);
      if (!a) return undefined;
      const payload = a.heartbeatDetails?.payloads?.[0];
      return { attempt: a.attempt ?? 1, details: payload ? defaultPayloadConverter.fromPayload(payload) : undefined };
    },
    async stop() {
      gates.releaseAll();
      await fr.killWorkers();
      for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
      unmountUnder(base);
    },
  };
  return fr;
}

const readdirSafe = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
const readFileSafe = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

/** aws gets the EBS volume it attaches; the others a loop device of their own, formatted and mounted by the release. */
function dataVolumeFor(provider: Provider, base: string, build: string, arch: string) {
  const mountpoint = path.join(build, arch, 'containers');
  if (provider === 'aws') return { device: 'attached', sizeGiB: 8, mountpoint, minFreeGiB: 0.01 };
  const file = path.join(base, 'loops', `${path.basename(build)}-${arch}.img`);
  mkdirSync(path.dirname(file), { recursive: true });
  execFileSync('truncate', ['-s', '64M', file]);
  const device = execFileSync('losetup', ['--find', '--show', file]).toString().trim();
  return { device, mountpoint, minFreeGiB: 0.01 };
}

/** Unmounts what releases mounted under `base` and detaches the loop devices of its image files. */
function unmountUnder(base: string): void {
  for (const mount of execFileSync('findmnt', ['-rn', '-o', 'TARGET']).toString().split('\n').reverse())
    if (mount.startsWith(base)) execFileSync('umount', ['-l', mount]);
  for (const line of execFileSync('losetup', ['-a']).toString().split('\n')) {
    const m = /^(\/dev\/loop\d+):.*\((.*)\)$/.exec(line.trim());
    if (m && m[2]!.startsWith(base)) execFileSync('losetup', ['-d', m[1]!]);
  }
}

/**
 * STAND-IN for resalloc's client (`resalloc ticket` / `ticket-wait ID` / `ticket-close ID`, as activities/hosts/command.ts
 * runs them): ticket-wait prints the address of the host behind the ticket, and waits first while the test holds
 * tickets (a pool with no free machine yet).
 */
function resallocStandin(dir: string) {
  mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'resalloc');
  const tickets = path.join(dir, 'tickets.log');
  const closes = path.join(dir, 'closes.log');
  const hold = path.join(dir, 'hold');
  writeFileSync(
    script,
    `#!/bin/sh
set -eu
case "$1" in
  ticket) id="t$(date +%s%N)"; echo "$id $BOOTC_RELEASE_ID $BOOTC_RELEASE_ARCH" >> ${tickets}; echo "$id" ;;
  ticket-wait) grep -q "^$2 " ${tickets} || { echo "no ticket $2" >&2; exit 1; }; while [ -e ${hold} ]; do sleep 0.2; done; echo 127.0.0.1 ;;
  ticket-close) echo "$2" >> ${closes} ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
`,
  );
  chmodSync(script, 0o755);
  const lines = (f: string) => readFileSafe(f).split('\n').filter(Boolean);
  return {
    script,
    holdTickets: (on: boolean) => (on ? writeFileSync(hold, '') : rmSync(hold, { force: true })),
    tickets: () => lines(tickets),
    closes: () => lines(closes),
  };
}

/** An activation hook that records each run and then waits while the test holds it. */
function holdableHook(dir: string) {
  mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'hook.sh');
  const runs = path.join(dir, 'runs.log');
  const hold = path.join(dir, 'hold');
  writeFileSync(script, `#!/bin/sh\necho "run $$" >> ${runs}\nwhile [ -e ${hold} ]; do sleep 0.2; done\n`);
  chmodSync(script, 0o755);
  return {
    script,
    hold: (on: boolean) => (on ? writeFileSync(hold, '') : rmSync(hold, { force: true })),
    runs: () => readFileSafe(runs).split('\n').filter(Boolean),
  };
}
