// Teardown on the real Temporal server, counted through the APIs and the builder's process list:
// - aws on moto (instances mapped to rig SSH hosts): a release cancelled at each stage of its architecture leaves no
//   live instance, no volume and no process of its build;
// - static and command builders: a worker SIGKILLed mid-build is replaced by one with the same id, which finishes with
//   one host (one claim, one ticket, given back once) and one build.
import { type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  DescribeInstancesCommand,
  EC2Client,
  RegisterImageCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ReleaseDefinitionInput } from '../../config/schema';
import { containersMounting, processesMentioning } from '../integration/builder-fixtures';
import {
  ensureBibStandinImage,
  standinEngine,
  type StandinKnobs,
} from '../standins/bootc-image-builder/image';
import {
  killWorker,
  releaseAwsResources,
  connectRig,
  rigDefinition,
  spawnWorkerProcess,
  waitForStage,
  waitUntil,
  workerDirs,
  type RigInfo,
} from '../rig/release-harness';
import { freePort } from '../../scripts/servers/tools';
import { tcpRelay } from '../integration/fetch-helpers';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-teardown');
const region = 'us-west-2';
const ec2 = new EC2Client({
  region,
  endpoint: rig.motoEndpoint,
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
});
const awsQueue = `e2e-teardown-aws-${randomUUID().slice(0, 8)}`;
const volumeReleaseId = `teardown-volume-${randomUUID().slice(0, 8)}`;
const fetchReleaseId = `teardown-fetch-${randomUUID().slice(0, 8)}`;
const conns: Awaited<ReturnType<typeof connectRig>>[] = [];
const workers: ChildProcess[] = [];
const closers: (() => Promise<void>)[] = [];
const awsReleases: string[] = [];
let ami: string;

const kill = killWorker;

function startWorker(taskQueue: string, workerId: string, overrides: object): ChildProcess {
  const child = spawnWorkerProcess(rig, {
    taskQueue,
    workerId,
    dirs: workerDirs(path.join(base, `worker-${workerId}`)),
    logFile: path.join(base, `worker-${workerId}-${workers.length + 1}.log`),
    overrides: { builder: { pollIntervalMs: 500 }, ...overrides },
  });
  workers.push(child);
  return child;
}

async function connect(taskQueue: string) {
  const conn = await connectRig(rig, taskQueue);
  conns.push(conn);
  return conn;
}

/**
 * Watches a builder directory while a release runs: every bootc-image-builder start the stand-in records (its
 * `bib-standin.starts` files are hard-linked aside, since a static builder's teardown deletes the work dir) and every
 * `podman run` of a build seen in the process list.
 */
function watchBuilds(dir: string) {
  const kept = path.join(base, 'kept-starts', randomUUID());
  mkdirSync(kept, { recursive: true });
  const inodes = new Set<number>();
  const buildPids = new Set<string>();
  const scan = (d: string) => {
    for (const e of existsSync(d) ? readdirSync(d, { withFileTypes: true }) : []) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) scan(p);
      else if (e.name === 'bib-standin.starts') {
        const { ino } = statSync(p, { throwIfNoEntry: false }) ?? { ino: -1 };
        if (ino < 0 || inodes.has(ino)) continue;
        inodes.add(ino);
        linkSync(p, path.join(kept, String(ino)));
      }
    }
  };
  const timer = setInterval(() => {
    try {
      scan(dir);
      for (const line of processesMentioning(dir)) {
        const [pid, , ...args] = line.trim().split(/\s+/);
        if (args[0] === 'podman' && args[1] === 'run') buildPids.add(pid!);
      }
    } catch {
      // a directory vanished between readdir and stat: the next round sees the new state
    }
  }, 150);
  return {
    starts: () =>
      readdirSync(kept).reduce(
        (n, f) => n + readFileSync(path.join(kept, f), 'utf8').split('\n').filter(Boolean).length,
        0,
      ),
    buildPids,
    stop: () => clearInterval(timer),
  };
}

function definition(name: string, knobs: StandinKnobs): ReleaseDefinitionInput {
  return rigDefinition(rig, {
    name,
    arches: [{ arch: 'x86_64', host: rig.sshHosts[1]!, types: ['qcow2'] }],
    builderDir: path.join(base, name),
    imagesDir: path.join(base, name, 'images'),
    imageMapPath: path.join(base, name, 'image-map.yaml'),
    engine: standinEngine(path.join(base, name, 'engine'), { diskSize: '256M', dataMiB: 4, ...knobs }, [
      rig.registry,
    ]),
    bibImage: ensureBibStandinImage(),
    heartbeat: '5s',
  });
}

const awsResources = (releaseId: string) => releaseAwsResources(ec2, releaseId);

/** A TCP relay to `to` that accepts one connection and then stops listening (later connections are refused). */
async function answersOnce(to: { address: string; port: number }) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    server.close();
    const upstream = net.connect(to.port, to.address);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => client.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  const port = await freePort('127.0.0.1');
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    address: '127.0.0.1',
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * moto's instances are running at once. This proxy in front of it reports running instances as `pending`, as a
 * booting EC2 instance is, so the release stays in `provisioning` with its instance launched.
 */
async function bootingEc2() {
  const upstream = new URL(rig.motoEndpoint);
  const server = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      const up = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (c: Buffer) => parts.push(c));
          answer.on('end', () => {
            let text = Buffer.concat(parts).toString();
            text = text.replaceAll(
              '<code>16</code><name>running</name>',
              '<code>0</code><name>pending</name>',
            );
            res.writeHead(answer.statusCode ?? 500, {
              ...answer.headers,
              'content-length': Buffer.byteLength(text),
            });
            res.end(text);
          });
        },
      );
      up.on('error', (err) => res.destroy(err));
      up.end(Buffer.concat(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` };
}

/** A registry that accepts connections and never answers: a pull that hangs (TLS handshake, then HTTP) until closed. */
async function silentRegistry() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  closers.push(close);
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, close };
}

beforeAll(async () => {
  mkdirSync(base, { recursive: true });
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  ami = (
    await ec2.send(
      new RegisterImageCommand({ Name: `teardown-base-${randomUUID()}`, Architecture: 'x86_64' }),
    )
  ).ImageId!;
  const host = rig.sshHosts[1]!;
  // The preparing-volume release's instance answers SSH once, at acquire, where its host key is pinned; then
  // nothing listens there any more, so the data volume's preparation keeps retrying.
  const unreachable = await answersOnce(host);
  closers.push(() => unreachable.close());
  // The fetching release reaches its builder over a 16 MiB/s link, so that fetching lasts a few seconds.
  const slow = await tcpRelay(host, { bytesPerSecond: 16 << 20 });
  closers.push(() => slow.close());
  startWorker(awsQueue, 'teardown-aws', {
    aws: {
      defaultAddress: { address: host.address, port: host.port },
      releaseAddresses: {
        [volumeReleaseId]: unreachable,
        [fetchReleaseId]: { address: slow.address, port: slow.port },
      },
    },
  });
});

afterAll(async () => {
  // A leak the tests found must not outlive the run: the janitor tests count instances too.
  for (const id of awsReleases) {
    const filter = [{ Name: 'tag:bootc-release:release-id', Values: [id] }];
    const found = (await ec2.send(new DescribeInstancesCommand({ Filters: filter }))).Reservations ?? [];
    const live = found.flatMap((r) => r.Instances ?? []).filter((i) => i.State?.Name !== 'terminated');
    if (live.length)
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: live.map((i) => i.InstanceId!) }));
  }
  for (const w of workers) await kill(w);
  for (const c of conns) await c.close();
  for (const close of closers) await close().catch(() => undefined);
});

interface CancelCase {
  stage: 'provisioning' | 'preparing-volume' | 'preparing-image' | 'building-image' | 'fetching';
  /** Shapes the definition so the stage lasts; returns the check that the release is well inside it. */
  arrange(
    def: ReleaseDefinitionInput,
    name: string,
  ): Promise<{
    releaseId?: string;
    inStage: (id: string, workDir: string) => Promise<boolean>;
    /** After the release is cancelled, before its builder's processes are counted. */
    settle?: () => Promise<void>;
  }>;
}

const CANCEL_CASES: CancelCase[] = [
  {
    stage: 'provisioning',
    async arrange(def) {
      const booting = await bootingEc2();
      (def.architectures!.x86_64!.builder as { credentials: object }).credentials = {
        endpoint: booting.endpoint,
      };
      // Cancelled once the instance exists and acquire waits for it to run.
      return { inStage: async (id) => (await awsResources(id)).live === 1 };
    },
  },
  {
    stage: 'preparing-volume',
    async arrange(def, name) {
      (def.architectures!.x86_64!.builder as { dataVolume: object }).dataVolume = {
        device: 'attached',
        sizeGiB: 8,
        mountpoint: path.join(base, name, 'containers'),
        minFreeGiB: 0.01,
      };
      // The root and the data volume exist; the data volume's SSH preparation keeps retrying.
      return { releaseId: volumeReleaseId, inStage: async (id) => (await awsResources(id)).volumes === 2 };
    },
  },
  {
    stage: 'preparing-image',
    async arrange(def) {
      const registry = await silentRegistry();
      def.source = { image: `${registry.address}/bootc-release-rig/builder:latest` };
      def.imageBuilder!.engine = standinEngine(
        path.join(base, 'silent-registry-engine'),
        { diskSize: '256M' },
        [registry.address],
      );
      return {
        inStage: async (_id, workDir) =>
          processesMentioning(workDir).some((l) => l.includes(' pull ') && l.includes(registry.address)),
        // The pull is detached on the builder: a terminated instance takes it along, but the rig host mapped to the
        // instance outlives it, so the pull ends here when its registry goes away.
        settle: registry.close,
      };
    },
  },
  {
    stage: 'building-image',
    async arrange(def) {
      def.imageBuilder!.engine = standinEngine(
        path.join(base, 'slow-build-engine'),
        { seconds: 30, diskSize: '256M' },
        [rig.registry],
      );
      return { inStage: async (_id, workDir) => containersMounting(workDir).length === 1 };
    },
  },
  {
    stage: 'fetching',
    async arrange(def) {
      // 48 MiB of data over the slow link: about three seconds of fetching.
      def.architectures!.x86_64!.types = ['raw'];
      def.imageBuilder!.engine = standinEngine(
        path.join(base, 'data-engine'),
        { seconds: 1, diskSize: '256M', dataMiB: 48 },
        [rig.registry],
      );
      // Cancelled once data has arrived in the worker's staging directory.
      const staged = path.join(
        base,
        'worker-teardown-aws',
        'staging',
        fetchReleaseId,
        'x86_64',
        'raw',
        'disk.raw.part',
      );
      return {
        releaseId: fetchReleaseId,
        inStage: async () => (statSync(staged, { throwIfNoEntry: false })?.blocks ?? 0) > 0,
      };
    },
  },
];

describe('an aws release cancelled at each stage', () => {
  it.each(CANCEL_CASES)(
    'leaves no live instance, no volume and no build process when cancelled while $stage',
    async ({ stage, arrange }) => {
      const conn = await connect(awsQueue);
      const name = `cancel-${stage}`;
      const def = definition(name, {});
      const workDir = path.join(base, name, 'work');
      def.architectures!.x86_64!.builder = {
        provider: 'aws',
        region,
        instanceType: 't3.micro',
        ami,
        credentials: { endpoint: rig.motoEndpoint },
        ssh: { privateKeyPath: rig.privateKeyPath },
        workDir,
      } as never;
      const { releaseId, inStage, settle } = await arrange(def, name);
      const id = await conn.releases.startFromDefinition(def, { releaseId });
      awsReleases.push(id);
      const runDir = path.join(workDir, id);
      await waitUntil(
        `${stage} to be under way`,
        async () =>
          (await conn.releases.status(id).catch(() => undefined))?.arches.x86_64?.stage === stage &&
          (await inStage(id, runDir)),
        45_000,
      );
      await conn.releases.cancel(id);

      const closed = await waitForStage(
        conn.releases,
        id,
        ['cancelled', 'failed', 'awaiting-approval'],
        45_000,
      );
      expect(closed.stage).toBe('cancelled');
      expect(closed.arches.x86_64?.artifacts).toBeUndefined(); // cancelled before anything was fetched
      // One instance was launched, and it is terminated with every volume of the release (root and data) gone.
      expect(await awsResources(id)).toEqual({ all: 1, live: 0, volumes: 0 });
      await settle?.();
      // The build (and any pull or fetch) on the builder ends with it.
      await waitUntil(
        'the builder processes to end',
        () => processesMentioning(runDir).length === 0 && containersMounting(runDir).length === 0,
        30_000,
      );
    },
  );
});

/**
 * STAND-IN for resalloc's client (the documented `resalloc ticket` / `ticket-wait ID` / `ticket-close ID`, as
 * activities/hosts/command.ts runs them): a ticket prints its id, ticket-wait prints the address of the host
 * behind it (address only; the port is builder.ssh.port), ticket-close records the close.
 */
function fakeResalloc(dir: string, address: string): { script: string; tickets: string; closes: string } {
  mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'resalloc');
  const tickets = path.join(dir, 'tickets.log');
  const closes = path.join(dir, 'closes.log');
  writeFileSync(
    script,
    `#!/bin/sh
set -eu
case "$1" in
  ticket) id="t$(date +%s%N)"; echo "$id $BOOTC_RELEASE_ID $BOOTC_RELEASE_ARCH" >> ${tickets}; echo "Created ticket"; echo "$id" ;;
  ticket-wait) grep -q "^$2 " ${tickets} || { echo "no ticket $2" >&2; exit 1; }; echo ${address} ;;
  ticket-close) echo "$2" >> ${closes} ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
`,
  );
  chmodSync(script, 0o755);
  return { script, tickets, closes };
}

const lines = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

/**
 * Starts a release on a worker process, SIGKILLs it while bootc-image-builder runs, starts another with the same
 * worker id, and checks that the release awaits approval after one build. Returns the release id.
 */
async function killMidBuild(name: string, def: ReleaseDefinitionInput, workDir: string, onKill: () => void) {
  const taskQueue = `e2e-teardown-${name}-${randomUUID().slice(0, 8)}`;
  const workerId = `killable-${name}`;
  const first = startWorker(taskQueue, workerId, {});
  const conn = await connect(taskQueue);
  const builds = watchBuilds(workDir);
  try {
    const id = await conn.releases.startFromDefinition(def);
    await waitUntil(
      'the build to run on the builder',
      async () =>
        (await conn.releases.status(id).catch(() => undefined))?.arches.x86_64?.stage === 'building-image' &&
        builds.buildPids.size === 1,
      45_000,
    );
    onKill();
    await kill(first);
    startWorker(taskQueue, workerId, {});
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'], 90_000);
    expect(ready.error).toBeUndefined();
    expect(ready.stage).toBe('awaiting-approval');
    expect(ready.candidates).toHaveLength(1);
    // One build: started once, and the process that ran it survived the worker and was re-attached.
    expect(builds.starts()).toBe(1);
    expect(builds.buildPids.size).toBe(1);
    expect(processesMentioning(path.join(workDir, id))).toEqual([]);
    await conn.releases.reject(id, { by: 'copr-admin', reason: 'test done' });
    return id;
  } finally {
    builds.stop();
  }
}

describe('a release whose worker is SIGKILLed mid-build', () => {
  it('on a static builder, is finished by a new worker with one claim and one build, and gives the host back', async () => {
    const name = 'killed-static';
    const def = definition(name, { seconds: 12 });
    const workDir = path.join(base, name, 'x86_64', 'work');
    const claims = () => readdirSync(path.join(workDir, '.claims'));
    const host = rig.sshHosts[1]!;
    let claimedAtKill: string[] = [];
    await killMidBuild(name, def, workDir, () => (claimedAtKill = claims()));
    expect(claimedAtKill).toEqual([`${host.address}_${host.port}`]);
    expect(claims()).toEqual([]);
  });

  it('on a command builder, is finished by a new worker with one ticket, closed once, and one build', async () => {
    const name = 'killed-command';
    const host = rig.sshHosts[2]!;
    const resalloc = fakeResalloc(path.join(base, name, 'resalloc'), host.address);
    const def = definition(name, { seconds: 12 });
    const workDir = path.join(base, name, 'work');
    def.architectures!.x86_64!.builder = {
      provider: 'command',
      acquire: [resalloc.script, 'ticket'],
      wait: [resalloc.script, 'ticket-wait'],
      release: [resalloc.script, 'ticket-close'],
      ssh: { privateKeyPath: rig.privateKeyPath, port: host.port },
      workDir,
    } as never;
    let ticketsAtKill: string[] = [];
    const id = await killMidBuild(name, def, workDir, () => (ticketsAtKill = lines(resalloc.tickets)));
    expect(ticketsAtKill).toHaveLength(1);
    const [ticket, releaseId, arch] = ticketsAtKill[0]!.split(' ');
    expect([releaseId, arch]).toEqual([id, 'x86_64']);
    expect(lines(resalloc.tickets)).toHaveLength(1);
    expect(lines(resalloc.closes)).toEqual([ticket]);
  });
});
