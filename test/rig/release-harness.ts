// End-to-end harness: real workers (in this process or as a child process that a test may SIGKILL) on the rig's
// Temporal server, each test file on a task queue of its own, and release definitions that use the rig's SSH hosts,
// registry and the bootc-image-builder stand-in. Everything a file runs through it is scanned for the file's secrets
// when the file ends (./secret-scan.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { DescribeInstancesCommand, DescribeVolumesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { codecDataConverter, payloadCodec } from '../../config/codec';
import type { ReleaseDefinitionInput } from '../../config/schema';
import { ReleaseClient } from '../../client/release-client';
import { createWorkers } from '../../worker/run';
import { createActivityDeps, type WiringOverrides } from '../../worker/wiring';
import type { ReleaseStage, ReleaseStatus } from '../../workflows/messages';
import type { SshHost } from '../../scripts/servers/sshd';
import { ensureBibStandinImage, standinEngine, type StandinKnobs } from '../standins/bootc-image-builder/image';
import { KEYSTONE_ADMIN } from '../../scripts/servers/keystone';
import { fileScan, logEntryMaterials, scanSecretsWhenTheFileEnds, type LogEntry } from './secret-scan';

scanSecretsWhenTheFileEnds();

export interface RigInfo {
  temporalAddress: string;
  /** The dev server's Web UI, http://127.0.0.1:PORT */
  temporalUi: string;
  motoEndpoint: string;
  sshHosts: SshHost[];
  privateKeyPath: string;
  dir: string;
  registry: string;
  sourceImage: string;
  workflowBundlePath: string;
}

export interface WorkerDirs {
  definitionsDir: string;
  stagingDir: string;
  stateDir: string;
}

export function workerDirs(base: string): WorkerDirs {
  const dirs = {
    definitionsDir: path.join(base, 'definitions'),
    stagingDir: path.join(base, 'staging'),
    stateDir: path.join(base, 'state'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  return dirs;
}

/** A client of the rig's Temporal, with the payload codec when given its key file (config/codec.ts). */
export async function connectRig(rig: RigInfo, taskQueue: string, opts: { codecKeyFile?: string } = {}) {
  watchForSecrets(rig, taskQueue, opts.codecKeyFile);
  const connection = await Connection.connect({ address: rig.temporalAddress });
  const client = new Client({ connection, dataConverter: codecDataConverter(opts.codecKeyFile) });
  return { client, releases: new ReleaseClient(client, taskQueue), close: () => connection.close() };
}

let runtimeInstalled = false;
/** Everything the in-process workers logged, at INFO and above: the secret scan reads it. */
const workerLog: LogEntry[] = [];

const codecKeys = new Set<string>();

/** The workflows on this queue, and the rig's private keys, go to the file's secret scan (which decodes with the codec). */
function watchForSecrets(rig: RigInfo, taskQueue: string, codecKeyFile?: string) {
  fileScan.watchQueue(rig.temporalAddress, taskQueue);
  fileScan.watchKeyFiles(rig.dir);
  fileScan.secrets.add("the rig Keystone's admin password", KEYSTONE_ADMIN.password);
  if (codecKeyFile && !codecKeys.has(codecKeyFile)) {
    codecKeys.add(codecKeyFile);
    fileScan.codecs.push(payloadCodec(codecKeyFile));
    fileScan.secrets.addFile('the payload codec key', codecKeyFile);
  }
}

/** Prints what the default logger would at WARN and above; keeps every entry for the scan. */
function recordWorkerLog(entry: LogEntry & { timestampNanos: bigint }) {
  workerLog.push({ level: entry.level, message: entry.message, meta: entry.meta });
  if (entry.level !== 'WARN' && entry.level !== 'ERROR') return;
  const at = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  process.stderr.write(`${at} [${entry.level}] ${entry.message}${entry.meta === undefined ? '' : ` ${inspect(entry.meta)}`}\n`);
}

/** A worker in this process, wired exactly as production wires it, plus the test's overrides. */
export async function startInProcessWorker(
  rig: RigInfo,
  opts: {
    taskQueue: string;
    workerId?: string;
    dirs: WorkerDirs;
    overrides?: WiringOverrides;
    /**
     * Tests start releases from definitions they build (startFromDefinition), so their workers allow inline
     * definitions explicitly; production's default (off) is tested with false.
     */
    allowInlineDefinitions?: boolean;
    /** Encrypt payloads with the key in this file, as BOOTC_RELEASE_CODEC_KEY_FILE does. */
    codecKeyFile?: string;
  },
) {
  if (!runtimeInstalled) {
    // Workers log every activity at INFO; a test run prints their warnings and errors only, and the scan reads all.
    Runtime.install({ logger: new DefaultLogger('INFO', recordWorkerLog) });
    runtimeInstalled = true;
    fileScan.watchLog(() => logEntryMaterials(workerLog, 'worker log'));
  }
  fileScan.watchWorkerOverrides(opts.overrides);
  fileScan.watchLogFiles(opts.dirs.stagingDir, `staging of worker ${opts.workerId ?? 'w1'}`);
  const connection = await NativeConnection.connect({ address: rig.temporalAddress });
  const { client, close } = await connectRig(rig, opts.taskQueue, { codecKeyFile: opts.codecKeyFile });
  const stagingQueue = `${opts.taskQueue}@${opts.workerId ?? 'w1'}`;
  const settings = { ...opts.dirs, stagingQueue, allowInlineDefinitions: opts.allowInlineDefinitions ?? true };
  const workers = await createWorkers(
    connection,
    { namespace: 'default', taskQueue: opts.taskQueue, stagingQueue, workflowBundle: rig.workflowBundlePath, codecKeyFile: opts.codecKeyFile },
    createActivities(
      createActivityDeps(settings, client, {
        builder: { pollIntervalMs: 500 },
        // The rig's registry speaks plain HTTP, as the builders' registries.conf says too.
        registry: { plainHttp: [rig.registry] },
        ...opts.overrides,
      }),
    ),
  );
  const running = workers.run();
  return {
    stagingQueue,
    async stop() {
      workers.shutdown();
      await running;
      await connection.close();
      await close();
    },
  };
}

/**
 * A worker as its own process (test/rig/worker-process.ts), so a test can SIGKILL it mid-step and start another
 * with the same id (the same staging queue and directories), as a restarted worker host would.
 */
export function spawnWorkerProcess(
  rig: RigInfo,
  opts: {
    taskQueue: string;
    workerId: string;
    dirs: WorkerDirs;
    overrides?: object;
    logFile: string;
    /** More environment: keys the definition names by variable, a PATH with gated commands first. */
    env?: Record<string, string>;
  },
): ChildProcess {
  watchForSecrets(rig, opts.taskQueue);
  fileScan.watchWorkerOverrides(opts.overrides);
  // Variables handed to the worker (keys the definition names by variable) are secrets too; PATH is no secret.
  const { PATH: _path, ...handed } = opts.env ?? {};
  fileScan.watchWorkerOverrides({ env: handed }, 'worker environment');
  fileScan.watchLogFiles(opts.logFile);
  fileScan.watchLogFiles(opts.dirs.stagingDir, `staging of worker ${opts.workerId}`);
  // The worker's own log (the Temporal runtime's, at INFO) goes to its log file, for the scan to read.
  mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const log = openSync(opts.logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'worker-process.ts')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: rig.temporalAddress,
      BOOTC_RELEASE_TASK_QUEUE: opts.taskQueue,
      BOOTC_RELEASE_WORKER_ID: opts.workerId,
      BOOTC_RELEASE_DEFINITIONS: opts.dirs.definitionsDir,
      // As for in-process workers: tests start releases from the definitions they build.
      BOOTC_RELEASE_ALLOW_INLINE_DEFINITIONS: 'true',
      BOOTC_RELEASE_STAGING: opts.dirs.stagingDir,
      BOOTC_RELEASE_STATE: opts.dirs.stateDir,
      BOOTC_RELEASE_WORKFLOW_BUNDLE: rig.workflowBundlePath,
      BOOTC_RELEASE_TEST_OVERRIDES: JSON.stringify(opts.overrides ?? {}),
      BOOTC_RELEASE_TEST_LOG: opts.logFile,
      ...opts.env,
    },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  return child;
}

/** A SIGKILLed child has exitCode null too: its signalCode tells it is gone. */
export const alive = (w: ChildProcess) => w.exitCode === null && w.signalCode === null;

/** SIGKILL, as a crashed worker host would die; resolves once it is gone. */
export async function killWorker(child: ChildProcess): Promise<void> {
  if (!alive(child)) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** Instances and volumes moto holds for a release (by its tag), in any state. */
export async function releaseAwsResources(ec2: EC2Client, releaseId: string) {
  const filter = [{ Name: 'tag:bootc-release:release-id', Values: [releaseId] }];
  const reservations = (await ec2.send(new DescribeInstancesCommand({ Filters: filter }))).Reservations ?? [];
  const instances = reservations.flatMap((r) => r.Instances ?? []);
  const volumes = (await ec2.send(new DescribeVolumesCommand({ Filters: filter }))).Volumes ?? [];
  return {
    all: instances.length,
    live: instances.filter((i) => i.State?.Name !== 'terminated').length,
    volumes: volumes.length,
  };
}

export async function waitForStage(
  releases: ReleaseClient,
  releaseId: string,
  stages: ReleaseStage[],
  timeoutMs = 90_000,
): Promise<ReleaseStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: ReleaseStatus | undefined;
  for (;;) {
    try {
      last = await releases.status(releaseId);
      if (stages.includes(last.stage)) return last;
    } catch {
      // not started yet, or no worker to answer the query for a moment
    }
    if (Date.now() > deadline)
      throw new Error(
        `release ${releaseId} did not reach ${stages.join('/')} in ${timeoutMs} ms; last status: ${JSON.stringify(last)}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const waitUntil = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

export interface RigDefinitionOptions {
  name: string;
  arches: {
    arch: 'x86_64' | 'aarch64' | 'ppc64le' | 's390x';
    host: SshHost;
    types?: string[];
    dataVolumeDevice?: string;
  }[];
  /** Directory on "the builders" (this machine) for work dirs and mounts. */
  builderDir: string;
  imagesDir: string;
  imageMapPath: string;
  engine: string[];
  bibImage: string;
  approvalTimeout?: string;
  heartbeat?: string;
  onReject?: 'keep' | 'delete';
  /** Approver → SSH public keys (approval.keys). */
  approvalKeys?: Record<string, string[]>;
  /** Unsigned decisions count (default true: most tests are not about signatures). */
  allowUnsigned?: boolean;
}

/** A release definition for the rig: static builders on rig hosts, the stand-in bib, a directory target. */
export function rigDefinition(rig: RigInfo, o: RigDefinitionOptions): ReleaseDefinitionInput {
  return {
    name: o.name,
    source: { image: rig.sourceImage },
    imageBuilder: { image: o.bibImage, engine: o.engine, timeout: '10m' },
    architectures: Object.fromEntries(
      o.arches.map(({ arch, host, types, dataVolumeDevice }) => [
        arch,
        {
          builder: {
            provider: 'static',
            hosts: [{ address: host.address, port: host.port }],
            ssh: { privateKeyPath: rig.privateKeyPath },
            workDir: path.join(o.builderDir, arch, 'work'),
            ...(dataVolumeDevice
              ? {
                  dataVolume: {
                    device: dataVolumeDevice,
                    mountpoint: path.join(o.builderDir, arch, 'containers'),
                    minFreeGiB: 0.01,
                  },
                }
              : {}),
          },
          types: types ?? ['qcow2', 'raw'],
          targets: ['local'],
        },
      ]),
    ),
    targets: { local: { kind: 'directory', path: o.imagesDir } },
    approval: {
      timeout: o.approvalTimeout ?? '1h',
      approvers: ['copr-admin', 'release-manager'],
      onReject: o.onReject ?? 'keep',
      allowUnsigned: o.allowUnsigned ?? true,
      ...(o.approvalKeys ? { keys: o.approvalKeys } : {}),
      channel: 'staging',
    },
    channels: { staging: { activation: [{ kind: 'image-map-file', path: o.imageMapPath }] } },
    timeouts: { heartbeat: o.heartbeat ?? '15s', retryInitial: '1s', retryMax: '5s' },
  } as ReleaseDefinitionInput;
}

/**
 * rigDefinition with everything under one test directory `base` (builders, images, image map, the stand-in's engine
 * config) and the stand-in bootc-image-builder building for `build` seconds with a small disk: what most e2e files need.
 */
export function standinDefinition(
  rig: RigInfo,
  base: string,
  o: Omit<RigDefinitionOptions, 'builderDir' | 'imagesDir' | 'imageMapPath' | 'engine' | 'bibImage'> & { build?: StandinKnobs },
): ReleaseDefinitionInput {
  const { build, ...rest } = o;
  return rigDefinition(rig, {
    ...rest,
    builderDir: path.join(base, 'builders'),
    imagesDir: path.join(base, 'images'),
    imageMapPath: path.join(base, 'image-map.yaml'),
    engine: standinEngine(path.join(base, 'engine'), { seconds: 1, diskSize: '64M', dataMiB: 2, ...build }, [rig.registry]),
    bibImage: ensureBibStandinImage(),
  });
}
