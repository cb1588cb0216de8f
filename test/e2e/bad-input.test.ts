// The bad input corpus: definitions and start inputs a person could send, each refused with the path of the field at
// fault, the way they would send it (the CLI's `validate` and `release start FILE`, the Temporal UI's short input
// naming a definition in the worker's directory, a whole plan pasted into the UI), before any resource exists. The
// valid definition every case starts from reaches all the real peers of the rig (moto in a region no other test
// uses, a libvirt pool and a glance-api of its own, the IBM stand-in, the rig's SSH hosts, a command allocator), and
// after all the cases each of them is counted: nothing, not even a request to the IBM API.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { WORKFLOW_TYPES } from '../../workflows/messages';
import { IbmCloudStandin } from '../standins/ibm-cloud-api';
import { identityHeaders, startGlance, type Glance } from '../../scripts/servers/glance';
import { createPool, startLibvirtd, virsh, type Libvirtd, type RigPool } from '../../scripts/servers/libvirtd';
import { connectRig, startInProcessWorker, workerDirs, type RigInfo } from '../rig/release-harness';

const rig = inject('rig') as RigInfo;
const repo = path.resolve(__dirname, '../..');
const tag = `bad-${randomUUID().slice(0, 4)}`;
const base = path.join(rig.dir, 'e2e-bad-input');
const taskQueue = `e2e-bad-input-${randomUUID().slice(0, 8)}`;
const dirs = workerDirs(path.join(base, 'worker'));
const REGION = 'ap-northeast-3'; // no other test uses it: everything moto holds there is this file's
const BUCKET = `${tag}-images`;
const PROJECT = 'bad-input';
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const ec2 = new EC2Client({ region: REGION, endpoint: rig.motoEndpoint, credentials });
const s3 = new S3Client({ region: REGION, endpoint: rig.motoEndpoint, credentials, forcePathStyle: true });
const ibmKey = `ibm-editor-${randomUUID()}`;
let glance: Glance;
let ibm: IbmCloudStandin;
let libvirtd: Libvirtd;
let pool: RigPool;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;
const stops: (() => Promise<unknown>)[] = [];

/** A valid definition reaching every peer: aws, static, libvirt and ibmcloud builders; aws, ibm, libvirt, glance and directory targets. */
function valid(name: string): any {
  const [h0, h1, h2] = rig.sshHosts;
  const ssh = { privateKeyPath: rig.privateKeyPath };
  return {
    name,
    source: { image: rig.sourceImage },
    imageBuilder: { image: 'localhost/bootc-release/bib-standin:bad-input', engine: ['podman'], timeout: '10m' },
    architectures: {
      x86_64: {
        builder: {
          provider: 'aws',
          region: REGION,
          instanceType: 'c7i.xlarge',
          ami: 'ami-0a1b2c3d4e5f60718',
          subnet: 'subnet-0123456789abcdef0',
          credentials: { endpoint: rig.motoEndpoint },
          ssh: { ...ssh, user: 'fedora' },
        },
        types: ['ami', 'raw'],
        targets: ['aws', 'local'],
      },
      aarch64: {
        builder: { provider: 'static', hosts: [{ address: h0!.address, port: h0!.port }], ssh, workDir: path.join(base, 'aarch64', 'work') },
        types: ['qcow2'],
        targets: ['glance', 'hypervisors'],
      },
      ppc64le: {
        builder: {
          provider: 'libvirt',
          host: h1!.address,
          hypervisorSsh: { ...ssh, port: h1!.port },
          ssh,
          pool: pool.name,
          baseVolume: 'fedora-42-ppc64le-base',
          memoryMiB: 8192,
        },
        types: ['raw'],
        targets: ['hypervisors', 'local'],
      },
      s390x: {
        builder: {
          provider: 'ibmcloud',
          region: 'us-east',
          zone: 'us-east-1',
          profile: 'bz2-4x16',
          image: 'r014-base',
          vpc: 'r014-vpc',
          subnet: '0757-subnet',
          keys: ['r014-key'],
          endpoint: ibm.endpoint,
          iamEndpoint: ibm.iamEndpoint,
          apiKeyEnv: 'BAD_INPUT_IBM_KEY',
          ssh,
        },
        types: ['qcow2'],
        targets: ['ibm'],
      },
    },
    targets: {
      aws: { kind: 'aws', region: REGION, method: 's3-import', bucket: BUCKET, credentials: { endpoint: rig.motoEndpoint } },
      ibm: {
        kind: 'ibmcloud',
        regions: ['us-east'],
        cosBucket: BUCKET,
        cosEndpoint: rig.motoEndpoint,
        endpoint: ibm.endpoint,
        iamEndpoint: ibm.iamEndpoint,
        apiKeyEnv: 'BAD_INPUT_IBM_KEY',
      },
      hypervisors: { kind: 'libvirt', hosts: [h2!.address], ssh: { ...ssh, port: h2!.port }, pool: pool.name },
      glance: { kind: 'openstack', imageUrl: glance.address, testIdentityHeaders: { userId: 'copr-bot', projectId: PROJECT } },
      local: { kind: 'directory', path: path.join(base, 'images') },
    },
    approval: { approvers: ['copr-admin', 'release-manager'], allowUnsigned: true, channel: 'staging' },
    channels: { staging: { activation: [{ kind: 'image-map-file', path: path.join(base, 'image-map.yaml') }] } },
  };
}

const DELETE = Symbol('delete');
/** Sets (or deletes) the value at a dotted path; `/run`-like keys and list indexes are plain segments. */
const set =
  (where: string, value: unknown) =>
  (d: any): void => {
    const keys = where.split('.');
    const last = keys.pop()!;
    const parent = keys.reduce((o, k) => o[k], d);
    if (value === DELETE) delete parent[last];
    else parent[last] = value;
  };
const del = (where: string) => set(where, DELETE);
const allocator = () => path.join(base, 'allocator');
const baseFile = () => path.join(dirs.definitionsDir, `${tag}-base.yaml`);
const commandBuilder = (extra: object) =>
  set('architectures.aarch64.builder', { provider: 'command', acquire: [allocator(), 'acquire'], release: [allocator(), 'release'], ...extra });
const gitMap = (extra: object) =>
  set('channels.staging.activation', [{ kind: 'image-map-git', repository: path.join(base, 'inventory.git'), file: 'group_vars/all.yaml', ...extra }]);

type DefinitionCase = [what: string, edit: (d: any) => void, at: string, words: string];
// One line per case: what is wrong, the edit to the valid definition, the field path the refusal names, words it says.
const definitionCases: DefinitionCase[] = [
  // missing fields
  ['no source', del('source'), 'source', 'required'],
  ['no builder region', del('architectures.s390x.builder.region'), 'architectures.s390x.builder.region', 'required'],
  ['no approval', del('approval'), 'approval', 'required'],
  ['an architecture without targets', del('architectures.x86_64.targets'), 'architectures.x86_64.targets', 'required'],
  ['an s3-import target without its bucket', del('targets.aws.bucket'), 'targets.aws.bucket', 'required when method is s3-import'],
  // unknown fields
  ['a misspelt top-level key', set('aprovers', ['copr-admin']), '(top level)', 'unknown key "aprovers"'],
  ['a misspelt builder key', set('architectures.x86_64.builder.instancetype', 'c7i.large'), 'architectures.x86_64.builder', 'unknown key "instancetype"'],
  ['an API key pasted into a target', set('targets.ibm.apiKey', 'pasted-secret-value'), 'targets.ibm', 'unknown key "apiKey"'],
  // wrong types
  ['a duration as a number', set('approval.timeout', 90), 'approval.timeout', 'expected string'],
  ['memory as a size string', set('architectures.ppc64le.builder.memoryMiB', '16G'), 'architectures.ppc64le.builder.memoryMiB', 'expected number'],
  ['types as one string', set('architectures.x86_64.types', 'ami'), 'architectures.x86_64.types', 'expected array'],
  ['a port as a string', set('architectures.aarch64.builder.hosts.0.port', '2222'), 'architectures.aarch64.builder.hosts.0.port', 'expected number'],
  ['yes for a boolean', set('approval.allowUnsigned', 'yes'), 'approval.allowUnsigned', 'expected boolean'],
  // unknown targets, architectures, providers, kinds, channels
  ['an unknown target', set('architectures.x86_64.targets', ['aws', 'nowhere']), 'architectures.x86_64.targets.1', 'unknown target "nowhere"'],
  ['an unknown architecture', set('architectures.riscv64', { builder: { provider: 'static', hosts: [{ address: 'h' }] }, types: ['raw'], targets: ['local'] }), 'architectures', 'unknown key "riscv64"'],
  ['an unknown provider', set('architectures.x86_64.builder.provider', 'gcp'), 'architectures.x86_64.builder.provider', "'static' | 'aws'"],
  ['an unknown target kind', set('targets.aws.kind', 'azure'), 'targets.aws.kind', "'directory' | 'aws'"],
  ['an unknown approval channel', set('approval.channel', 'production'), 'approval.channel', 'unknown channel "production"'],
  // shell metacharacters and newlines in strings that reach commands
  ['a name with a shell command', set('name', 'copr;reboot'), 'name', 'must be 1-63 lowercase letters'],
  ['a source image with a command after it', set('source.image', 'quay.io/copr/builder:1;reboot'), 'source.image', 'must be a container image reference'],
  ['a git source with a command in it', set('source', { git: 'https://pagure.io/copr/builder.git;reboot' }), 'source.git', 'no spaces, quotes or shell metacharacters'],
  ['a git ref that is an option', set('source', { git: 'https://pagure.io/copr/builder.git', ref: '--upload-pack' }), 'source.ref', 'not starting with "-"'],
  ['a Containerfile outside the checkout', set('source', { git: 'https://pagure.io/copr/builder.git', containerfile: '../../etc/shadow' }), 'source.containerfile', 'without ".."'],
  ['a bib image with an extra option', set('imageBuilder.image', 'quay.io/centos-bootc/bootc-image-builder --privileged'), 'imageBuilder.image', 'must be a container image reference'],
  ['an engine word with a command substitution', set('imageBuilder.engine', ['podman', '--log-level=$(reboot)']), 'imageBuilder.engine.1', 'no spaces, quotes or shell metacharacters'],
  ['a bib argument with a newline', set('imageBuilder.extraArgs', ['--verbose\nreboot']), 'imageBuilder.extraArgs.0', 'must be a plain argument'],
  ['a bib config path with a command', set('imageBuilder.config', '/etc/bib.toml;reboot'), 'imageBuilder.config', 'must be an absolute path'],
  ['a work dir with a command substitution', set('architectures.aarch64.builder.workDir', '/var/tmp/$(reboot)'), 'architectures.aarch64.builder.workDir', 'must be an absolute path'],
  ['an ssh user with a command', set('architectures.x86_64.builder.ssh.user', 'fedora;reboot'), 'architectures.x86_64.builder.ssh.user', 'must be a user name'],
  ['a static host user with a newline', set('architectures.aarch64.builder.hosts.0.user', 'root\nreboot'), 'architectures.aarch64.builder.hosts.0.user', 'must be a user name'],
  ['a host key with a second line', set('architectures.aarch64.builder.hosts.0.hostKey', 'ssh-ed25519 AAAAC3Nz\n* ssh-rsa AAAAB3Nz'), 'architectures.aarch64.builder.hosts.0.hostKey', 'one host key line'],
  ['a host address with a command', set('architectures.aarch64.builder.hosts.0.address', '127.0.0.11;reboot'), 'architectures.aarch64.builder.hosts.0.address', 'must be a host name'],
  ['a data volume device with a command', set('architectures.aarch64.builder.dataVolume', { device: '/dev/vdb;reboot' }), 'architectures.aarch64.builder.dataVolume.device', 'must be an absolute path'],
  ['a tmpfs size with a command', set('architectures.aarch64.builder.dataVolume', { tmpfs: { '/run': '3G;reboot' } }), 'architectures.aarch64.builder.dataVolume.tmpfs./run', 'must be a size like 3G'],
  ['a libvirt URI with a command', set('architectures.ppc64le.builder.uri', 'qemu:///system;reboot'), 'architectures.ppc64le.builder.uri', 'no spaces, quotes or shell metacharacters'],
  ['a base volume with a space', set('architectures.ppc64le.builder.baseVolume', 'base vol'), 'architectures.ppc64le.builder.baseVolume', 'must be 1-63 lowercase letters'],
  ['an allocator argument with a newline', commandBuilder({ acquire: ['resalloc', 'ticket\nreboot'] }), 'architectures.aarch64.builder.acquire.1', 'no newlines'],
  ['an allocator program that is an option', commandBuilder({ release: ['-rf', 'ticket-close'] }), 'architectures.aarch64.builder.release.0', 'must be a program name or path'],
  ['a task queue with a newline', set('architectures.aarch64.builder.taskQueue', 'site-a\nsite-b'), 'architectures.aarch64.builder.taskQueue', 'must be a task queue name'],
  ['a libvirt pool with a command', set('targets.hypervisors.pool', 'images;reboot'), 'targets.hypervisors.pool', 'must be 1-63 lowercase letters'],
  ['a hypervisor with a command', set('targets.hypervisors.hosts', ['vmhost-01 reboot']), 'targets.hypervisors.hosts.0', 'must be a host name'],
  ['a directory target with a command', set('targets.local.path', '/srv/images;reboot'), 'targets.local.path', 'no spaces, quotes or shell metacharacters'],
  ['an image map path with a newline', set('channels.staging.activation.0.path', 'inventory.yaml\nrm'), 'channels.staging.activation.0.path', 'no spaces, quotes or shell metacharacters'],
  ['an inventory repository that is a git option', gitMap({ repository: '--upload-pack=touch /tmp/pwned' }), 'channels.staging.activation.0.repository', 'must be a git URL'],
  ['an inventory branch that is an option', gitMap({ branch: '-f' }), 'channels.staging.activation.0.branch', 'not starting with "-"'],
  ['an inventory file outside the repository', gitMap({ file: '../../etc/cron.d/x' }), 'channels.staging.activation.0.file', 'without ".."'],
  ['a hook argument with a newline', set('channels.staging.activation', [{ kind: 'command', command: ['/usr/local/bin/hook', 'a\nreboot'] }]), 'channels.staging.activation.0.command.1', 'no newlines'],
  // huge numbers and durations
  ['an approval timeout of 270000 years', set('approval.timeout', '100000000d'), 'approval.timeout', 'must be at most 90d'],
  ['a heartbeat past what a number holds', set('timeouts', { heartbeat: '99999999999999999999999h' }), 'timeouts.heartbeat', 'must be at most 1h'],
  ['a petabyte of memory', set('architectures.ppc64le.builder.memoryMiB', 1e12), 'architectures.ppc64le.builder.memoryMiB', 'Too big'],
  ['a million vcpus', set('architectures.ppc64le.builder.vcpus', 1_000_000), 'architectures.ppc64le.builder.vcpus', 'Too big'],
  ['keeping 2^53 releases', set('retention', { keep: 2 ** 53 }), 'retention.keep', 'Too big'],
  ['a billion attempts', set('timeouts', { maxAttempts: 1e9 }), 'timeouts.maxAttempts', 'Too big'],
  ['an infinite free space', set('architectures.aarch64.builder.dataVolume', { minFreeGiB: Infinity }), 'architectures.aarch64.builder.dataVolume.minFreeGiB', 'expected number'],
  ['a port past 65535', set('architectures.aarch64.builder.hosts.0.port', 70_000), 'architectures.aarch64.builder.hosts.0.port', 'Too big'],
  // duplicate list entries
  ['a type twice', set('architectures.x86_64.types', ['ami', 'ami']), 'architectures.x86_64.types.1', '"ami" is listed twice'],
  ['a region twice', set('targets.ibm.regions', ['us-east', 'us-east']), 'targets.ibm.regions.1', '"us-east" is listed twice'],
  ['an approver twice', set('approval.approvers', ['copr-admin', 'copr-admin']), 'approval.approvers.1', '"copr-admin" is listed twice'],
  ['a static host twice', set('architectures.aarch64.builder.hosts', [{ address: 'b1' }, { address: 'b1', port: 22 }]), 'architectures.aarch64.builder.hosts.1', 'listed twice'],
  ['a target twice', set('architectures.x86_64.targets', ['aws', 'local', 'aws']), 'architectures.x86_64.targets.2', '"aws" is listed twice'],
  // raw images to IBM
  ['raw images to IBM Cloud', set('architectures.s390x.types', ['raw']), 'architectures.s390x.targets.0', 'takes qcow2 or vhd images'],
  ['AMIs to IBM Cloud', set('architectures.x86_64.targets', ['ibm']), 'architectures.x86_64.targets.0', 'takes qcow2 or vhd images'],
  // URLs with credentials
  ['a git source with a token', set('source', { git: 'https://bot:ghp_0123456789@github.com/copr/builder.git' }), 'source.git', 'must not carry user info'],
  ['a Glance URL with a password', set('targets.glance.imageUrl', 'http://admin:hunter2@127.0.0.1:9292'), 'targets.glance.imageUrl', 'must not carry user info'],
  ['an IBM endpoint with a key', set('targets.ibm.endpoint', 'https://apikey:0123456789@us-east.iaas.cloud.ibm.com'), 'targets.ibm.endpoint', 'must not carry user info'],
  ['a libvirt URI with a password', set('targets.hypervisors.uri', 'qemu+ssh://root:hunter2@vmhost/system'), 'targets.hypervisors.uri', 'must not carry user info'],
  ['a webhook with a token', set('notifications', [{ kind: 'webhook', url: 'https://bot:xoxb-0123@hooks.example.org/x' }]), 'notifications.0.url', 'must not carry user info'],
  ['an inventory repository with a token', gitMap({ repository: 'https://oauth2:glpat-0123@git.example.org/inv.git' }), 'channels.staging.activation.0.repository', 'must not carry user info'],
];

type StartCase = [what: string, input: () => unknown, at: string, words: string];
const STAMP = '20260101_000000';
const plan = (extra: object = {}, edit: (d: any) => void = () => {}) => {
  const definition = valid(`${tag}-base`);
  edit(definition);
  return { plan: { releaseId: '{id}', definition, arches: ['s390x'], stamp: STAMP, ...extra } };
};
// Start inputs as typed into the Temporal UI's start dialog (the short form, or a whole plan).
const startCases: StartCase[] = [
  ['an unknown architecture', () => ({ definition: `${tag}-base`, arches: ['riscv64'] }), 'input.arches.0', 'expected one of'],
  ['an architecture twice', () => ({ definition: `${tag}-base`, arches: ['s390x', 's390x'] }), 'input.arches.1', '"s390x" is listed twice'],
  ['a misspelt key', () => ({ definition: `${tag}-base`, arch: ['s390x'] }), 'input', 'unknown key "arch"'],
  ['a definition given as a number', () => ({ definition: 42 }), 'input.definition', 'expected string'],
  ['no definition at all', () => ({ reason: 'rebuild' }), 'input.definition', 'required'],
  ['a definition name with a command', () => ({ definition: `${tag}-base;reboot` }), 'input.definition', 'must be 1-63 lowercase letters'],
  ['a reason of a megabyte', () => ({ definition: `${tag}-base`, reason: 'x'.repeat(2 ** 20) }), 'input.reason', 'Too big'],
  ['a definition the worker does not know', () => ({ definition: `${tag}-nowhere` }), 'definition', `unknown release definition "${tag}-nowhere"`],
  ['a bare string', () => 'copr-builder', 'input', 'must be an object'],
  ['a plan next to a name', () => ({ ...plan(), definition: `${tag}-base` }), 'input', 'unknown key "definition"'],
  ['an inline plan for another release', () => plan({ releaseId: 'someone-elses-release' }), 'input.plan', 'releaseId: "someone-elses-release" differs from the workflow id'],
  ['an inline plan with an unknown architecture', () => plan({ arches: ['riscv64'] }), 'input.plan: arches.0', 'expected one of'],
  ['an inline plan with a bad stamp', () => plan({ stamp: 'now;reboot' }), 'input.plan: stamp', 'Invalid string'],
  ['an inline plan of a megabyte', () => plan({ reason: 'x'.repeat(2 ** 20) }), 'input.plan: reason', 'Too big'],
  ['an inline plan naming an architecture it lacks', () => plan({ arches: ['s390x'] }, del('architectures.s390x')), 'input.plan.arches', 's390x not in the definition'],
  ['an inline plan differing from the known definition', () => plan({}, set('approval.approvers', ['mallory'])), 'input.plan.definition', 'differs at approval.approvers.0'],
  ['an inline plan the worker does not know', () => plan({}, set('name', `${tag}-unknown`)), 'input.plan.definition', `it has none named "${tag}-unknown"`],
];

/** The CLI as a user runs it (the package's bin), against the rig's Temporal: had the input passed, it would start. */
const cli = (...args: string[]) =>
  new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [path.join(repo, 'client/bin.cjs'), ...args],
      { cwd: repo, env: { ...process.env, TEMPORAL_ADDRESS: rig.temporalAddress, BOOTC_RELEASE_TASK_QUEUE: taskQueue, NO_COLOR: '1' } },
      (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code) : 0, stderr }),
    ),
  );

/** Runs fn over items, `limit` at a time (the CLI is a process each). */
async function pooled<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Everything of this file's at every peer, by peer. Each peer is this file's own, or a region/bucket only it uses. */
async function resources(): Promise<Record<string, number>> {
  const instances = ((await ec2.send(new DescribeInstancesCommand({}))).Reservations ?? []).flatMap((r) => r.Instances ?? []);
  const glanceImages = (await (await fetch(`${glance.address}/v2/images?limit=1000`, { headers: identityHeaders(PROJECT, ['admin']) })).json()) as {
    images: unknown[];
  };
  const domains = (await virsh('list', '--all', '--name')).split('\n').filter((d) => d.includes(tag));
  const entries = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).length : 0);
  return {
    'moto instances': instances.length,
    'moto volumes': (await ec2.send(new DescribeVolumesCommand({}))).Volumes?.length ?? 0,
    'moto AMIs': (await ec2.send(new DescribeImagesCommand({ Owners: ['self'] }))).Images?.length ?? 0,
    'moto snapshots': (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }))).Snapshots?.length ?? 0,
    'S3 multipart uploads': (await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads?.length ?? 0,
    'S3 objects': (await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).KeyCount ?? 0,
    'libvirt volumes': (await pool.volumes()).length,
    'libvirt domains': domains.length,
    'Glance images': glanceImages.images.length,
    'IBM instances': ibm.instances().length,
    'IBM images': ibm.images().length,
    'IBM floating IPs': ibm.floatingIps().length,
    'IBM API requests': ibm.requests.length,
    'static builder work dir': entries(path.join(base, 'aarch64', 'work')),
    'command allocator calls': entries(path.join(base, 'allocator-calls')),
    'directory target': entries(path.join(base, 'images')),
    'image map': existsSync(path.join(base, 'image-map.yaml')) ? 1 : 0,
    'worker staging': entries(dirs.stagingDir),
    'worker state': entries(dirs.stateDir),
  };
}
const nothing = (counts: Record<string, number>) => Object.fromEntries(Object.keys(counts).map((k) => [k, 0]));

beforeAll(async () => {
  mkdirSync(base, { recursive: true });
  writeFileSync(allocator(), `#!/bin/sh\nmkdir -p ${base}/allocator-calls && touch ${base}/allocator-calls/"$1"\necho ticket-1\n`, { mode: 0o755 });
  glance = await startGlance(mkdtempSync(path.join(os.tmpdir(), 'e2e-bad-input-glance-')));
  stops.push(() => glance.stop());
  ibm = await IbmCloudStandin.start({ apiKeys: { [ibmKey]: 'editor' }, regions: { 'us-east': {} } });
  stops.push(() => ibm.stop());
  libvirtd = await startLibvirtd(path.join(rig.dir, 'libvirtd'));
  pool = await createPool(base, 'bad-input');
  stops.push(async () => {
    await pool.remove();
    await libvirtd.stop();
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET, CreateBucketConfiguration: { LocationConstraint: REGION } }));
  // The production default: only definitions in the worker's directory run, whole definitions only if equal to them.
  worker = await startInProcessWorker(rig, {
    taskQueue,
    dirs,
    allowInlineDefinitions: false,
    overrides: { aws: { credentials }, ibmcloud: { env: { BAD_INPUT_IBM_KEY: ibmKey } } },
  });
  stops.push(() => worker.stop());
  conn = await connectRig(rig, taskQueue);
  stops.push(() => conn.close());
}, 180_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
});

describe('the bad input corpus', () => {
  it('has a valid definition to start from, which the counters would see resources of', async () => {
    writeFileSync(baseFile(), stringify(valid(`${tag}-base`)));
    expect(await cli('validate', baseFile())).toMatchObject({ code: 0 });
    expect(await resources()).toEqual(nothing(await resources()));

    // Each counter counts: one thing planted at every peer it reads shows up, then goes again.
    const volume = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${REGION}a`, Size: 1 }));
    const snapshot = await ec2.send(new CreateSnapshotCommand({ VolumeId: volume.VolumeId! }));
    const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'planted' }));
    await virsh('vol-create-as', pool.name, 'planted', '1M');
    const image = (await (
      await fetch(`${glance.address}/v2/images`, {
        method: 'POST',
        headers: { ...identityHeaders(PROJECT), 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'planted', disk_format: 'raw', container_format: 'bare' }),
      })
    ).json()) as { id: string };
    await fetch(`${ibm.endpoint.replace('{region}', 'us-east')}/v1/images?version=2024-01-01&generation=2`);
    const files = [path.join(base, 'aarch64', 'work', 'planted'), path.join(base, 'images', 'planted'), path.join(base, 'image-map.yaml')];
    for (const f of [...files, path.join(dirs.stagingDir, 'planted'), path.join(dirs.stateDir, 'planted')]) {
      mkdirSync(path.dirname(f), { recursive: true });
      writeFileSync(f, '');
    }
    await new Promise((resolve) => execFile(allocator(), ['acquire'], resolve));
    // Instances, AMIs, VPC resources and domains are not planted: moto keeps terminated instances listed, the IBM
    // stand-in is counted by its requests (none at all is the claim), and libvirtd here cannot define a VM.
    expect(await resources()).toMatchObject({
      'moto volumes': 1,
      'moto snapshots': 1,
      'S3 multipart uploads': 1,
      'libvirt volumes': 1,
      'Glance images': 1,
      'IBM API requests': 1,
      'static builder work dir': 1,
      'command allocator calls': 1,
      'directory target': 1,
      'image map': 1,
      'worker staging': 1,
      'worker state': 1,
    });
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshot.SnapshotId! }));
    await ec2.send(new DeleteVolumeCommand({ VolumeId: volume.VolumeId! }));
    await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'planted', UploadId: upload.UploadId! }));
    await virsh('vol-delete', '--pool', pool.name, 'planted');
    await fetch(`${glance.address}/v2/images/${image.id}`, { method: 'DELETE', headers: identityHeaders(PROJECT) });
    ibm.requests.length = 0;
    for (const f of [...files, path.join(dirs.stagingDir, 'planted'), path.join(dirs.stateDir, 'planted')]) rmSync(f);
    rmSync(path.join(base, 'aarch64'), { recursive: true });
    rmSync(path.join(base, 'images'), { recursive: true });
    rmSync(path.join(base, 'allocator-calls'), { recursive: true });
    expect(await resources()).toEqual(nothing(await resources()));
  });

  it(`refuses ${definitionCases.length} definitions from the CLI and the Temporal UI, and ${startCases.length} start inputs, naming the field, before any resource exists`, async () => {
    expect(definitionCases.length + startCases.length).toBeGreaterThanOrEqual(40);
    const named = definitionCases.map(([what, edit, at, words], i) => {
      const name = `${tag}-${String(i).padStart(2, '0')}`;
      const definition = valid(name);
      edit(definition);
      const file = path.join(dirs.definitionsDir, `${name}.yaml`);
      writeFileSync(file, stringify(definition));
      return { what, at, words, name: typeof definition.name === 'string' ? definition.name : name, definition, file };
    });

    // The Temporal UI: the short input naming each file in the worker's directory, and the whole definition pasted as a plan.
    const started: { what: string; id: string; at: string; words: string }[] = [];
    const start = async (what: string, input: unknown, at: string, words: string) => {
      const id = `${tag}-${randomUUID().slice(0, 8)}`;
      const args = [JSON.parse(JSON.stringify(input ?? null).replace(/\{id\}/g, id))];
      await conn.client.workflow.start(WORKFLOW_TYPES.release, { workflowId: id, taskQueue, args });
      started.push({ what, id, at, words });
    };
    for (const c of named) {
      // A name the short form cannot even carry is refused there, as the start input's own field.
      const byName = c.at === 'name' ? 'input.definition' : c.at;
      await start(`${c.what} (started by name)`, { definition: c.name }, byName, c.words);
      const asPlan = { plan: { releaseId: '{id}', definition: c.definition, arches: ['s390x'], stamp: STAMP } };
      await start(`${c.what} (pasted as a plan)`, asPlan, c.at === '(top level)' ? 'definition' : `definition.${c.at}`, c.words);
    }
    for (const [what, input, at, words] of startCases) await start(what, input(), at, words);

    // The CLI, as a person runs it: `validate FILE`, `release start FILE`, and start options it checks itself.
    const cliRuns = await pooled(
      [
        ...named.flatMap((c) => [
          { what: `validate: ${c.what}`, args: ['validate', c.file], line: `${c.file}: ${c.at}: `, words: c.words },
          { what: `release start: ${c.what}`, args: ['release', 'start', c.file], line: `${c.file}: ${c.at}: `, words: c.words },
        ]),
        { what: 'an unknown --arch', args: ['release', 'start', baseFile(), '--arch', 'riscv64'], line: '--arch: ', words: 'unknown architecture riscv64' },
        { what: 'an --id with a command', args: ['release', 'start', baseFile(), '--id', 'r1;reboot'], line: 'releaseId: ', words: 'must be letters, digits' },
        { what: 'a --reason of 100 kB', args: ['release', 'start', baseFile(), '--reason', 'x'.repeat(100_000)], line: 'reason: ', words: 'Too big' },
        { what: 'an unknown --arch by name', args: ['release', 'start', '--name', `${tag}-base`, '--arch', 'nope,x86_64'], line: '--arch: ', words: 'unknown architecture nope' },
      ],
      3,
      async (run) => ({ ...run, ...(await cli(...run.args)) }),
    );
    const cliProblems = cliRuns
      .filter((r) => r.code !== 2 || !r.stderr.split('\n').some((l) => l.includes(r.line) && l.includes(r.words)))
      .map((r) => `${r.what}: exit ${r.code}, ${JSON.stringify(r.stderr.slice(0, 400))}`);

    // Every workflow fails at its first activity, with the path in its error; none took a second step.
    const uiProblems: string[] = [];
    await Promise.all(started.map((s) => conn.client.workflow.getHandle(s.id).result().catch(() => undefined)));
    for (const s of started) {
      const handle = conn.client.workflow.getHandle(s.id);
      const events = (await handle.fetchHistory()).events ?? [];
      const activities = events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
      const children = events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes);
      const failed = events.find((e) => e.workflowExecutionFailedEventAttributes)?.workflowExecutionFailedEventAttributes?.failure;
      const error = `${failed?.message ?? ''} ${failed?.cause?.message ?? ''}`;
      const status = await conn.releases.status(s.id).catch((err: Error) => ({ stage: `unqueryable: ${err.message}`, error: '' }));
      const bad = [
        ...(status.stage === 'failed' ? [] : [`stage ${status.stage}`]),
        ...(JSON.stringify(activities) === '["resolvePlan"]' ? [] : [`activities ${JSON.stringify(activities)}`]),
        ...(children.length ? [`${children.length} child workflows`] : []),
        ...(error.includes(`${s.at}: `) || error.includes(`${s.at} `) ? [] : [`error does not name ${s.at}`]),
        ...(error.includes(s.words) && (status.error ?? '').includes(s.words) ? [] : [`error does not say "${s.words}"`]),
      ];
      if (bad.length) uiProblems.push(`${s.what}: ${bad.join(', ')}: ${error.slice(0, 300)}`);
    }
    expect({ cli: cliProblems, ui: uiProblems }).toEqual({ cli: [], ui: [] });

    expect(await resources()).toEqual(nothing(await resources()));
  }, 600_000);
});
