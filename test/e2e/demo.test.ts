// `npm run demo` as a user meets it: `tsx scripts/demo.ts` from the repository root (on free ports), up to a
// release awaiting approval with candidates on every local target, approved with the command it prints, then Ctrl-C:
// the demo exits, every port it listened on is free and no process it started is left, within 10 s. A second run
// right after works too, approved with the JSON it prints for the Web UI's "Send a Signal" dialog. And each
// candidate, read back from its server, holds the bytes built for its own architecture.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { EBSClient, GetSnapshotBlockCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { Candidate } from '../../activities/types';
import { connectClient, ReleaseClient } from '../../client/release-client';
import { identityHeaders } from '../../scripts/servers/glance';
import { startLibvirtd, virsh, type Libvirtd } from '../../scripts/servers/libvirtd';
import { tool } from '../../scripts/servers/tools';
import { alive } from '../../scripts/demo-stop';
import { candidateRows, canListen, DemoRun, pickPorts, portEnv, repo, type DemoPortsEnv } from './demo-harness';

const ARCHES = ['x86_64', 'aarch64'] as const;
const marker = (arch: string) => Buffer.from(`BIB-STANDIN-ARCH=${arch};`);
let ports: DemoPortsEnv;
let libvirtd: Libvirtd;
const runs: DemoRun[] = [];

beforeAll(async () => {
  ports = await pickPorts();
  // libvirtd is one per machine: started here (or reused) like other suites do, so the demo takes the reuse path
  // and the daemon is no child of the demo when its processes are counted.
  libvirtd = await startLibvirtd(path.join(repo, '.rig', 'demo-test-libvirtd'));
});

afterAll(async () => {
  for (const run of runs) run.kill();
  await libvirtd?.stop();
});

/** The effective definition the demo wrote: where its moto, glance-api and pool are. */
function demoTargets() {
  const def = parseYaml(readFileSync(path.join(repo, '.demo/definitions/demo.yaml'), 'utf8'));
  return {
    moto: def.targets['aws-local'].credentials.endpoint as string,
    glance: def.targets['glance-local'].imageUrl as string,
    project: def.targets['glance-local'].testIdentityHeaders.projectId as string,
    pool: def.targets.hypervisor.pool as string,
  };
}

async function startAndWait(): Promise<{ run: DemoRun; id: string }> {
  const run = new DemoRun(portEnv(ports));
  runs.push(run);
  await run.waitFor(/Ctrl-C stops everything\.\n/, 400_000);
  const id = run.output.match(/Release (\S+) is awaiting approval\./)![1]!;
  return { run, id };
}

/** Ctrl-C (or another way to end it), then within 10 s: the demo has exited, its ports are free, none of its processes is left. */
async function interruptAndCheck(run: DemoRun, extraPorts: { host: string; port: number }[], interrupt = () => run.interrupt()) {
  const tree = run.tree();
  const listened = [
    { host: '127.0.0.1', port: ports.temporal },
    { host: '127.0.0.1', port: ports.ui },
    { host: '127.0.0.30', port: ports.registry },
    ...['127.0.0.30', '127.0.0.31', '127.0.0.32'].map((host) => ({ host, port: ports.ssh })),
    ...extraPorts,
  ];
  for (const l of listened) expect(await canListen(l.host, l.port), `${l.host}:${l.port} in use while the demo runs`).toBe(false);
  const t0 = Date.now();
  interrupt();
  const code = await Promise.race([run.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))]);
  expect(code, run.output.slice(-3000)).not.toBe('hung');
  const stillBusy = async () => (await Promise.all(listened.map(async (l) => ((await canListen(l.host, l.port)) ? [] : [`${l.host}:${l.port}`])))).flat();
  const stillAlive = () => tree.filter((p) => alive(p.pid)).map((p) => `${p.comm}(${p.pid})`);
  while ((Date.now() - t0 < 10_000 && (await stillBusy()).length) || stillAlive().length) {
    if (Date.now() - t0 >= 10_000) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect({ busyPorts: await stillBusy(), leftProcesses: stillAlive() }).toEqual({ busyPorts: [], leftProcesses: [] });
}

async function readCandidateBytes(c: Candidate, t: ReturnType<typeof demoTargets>): Promise<Buffer> {
  if (c.kind === 'directory') {
    // A raw disk starts with the marker; a qcow2 file holds it in its first data cluster.
    const buf = readFileSync(c.imageId);
    return c.type === 'qcow2' ? buf : buf.subarray(0, 1 << 16);
  }
  if (c.kind === 'aws') {
    const ebs = new EBSClient({ region: c.region ?? 'us-east-1', endpoint: t.moto, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    const snapshotId = c.resources!.find((r) => r.kind === 'snapshot')!.id;
    const blocks = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId }));
    const first = blocks.Blocks!.find((b) => b.BlockIndex === 0)!;
    const got = await ebs.send(new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: 0, BlockToken: first.BlockToken }));
    return Buffer.from(await got.BlockData!.transformToByteArray());
  }
  if (c.kind === 'libvirt') {
    const name = c.imageId.slice(c.imageId.lastIndexOf('/') + 1);
    const out = path.join(repo, '.demo', `${name}.head`);
    await virsh('vol-download', '--pool', t.pool, name, out, '--offset', '0', '--length', String(1 << 16));
    return readFileSync(out);
  }
  if (c.kind === 'openstack') {
    const res = await fetch(`${t.glance}/v2/images/${c.imageId}/file`, { headers: identityHeaders(t.project) });
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  }
  throw new Error(`no reader for ${c.kind}`);
}

describe('npm run demo', () => {
  let first: { run: DemoRun; id: string };

  it('leaves a release awaiting approval with an AMI, a libvirt volume, a Glance image and files for both architectures', async () => {
    first = await startAndWait();
    const out = first.run.output;
    expect(out).toMatch(/Temporal Web UI: http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\//);
    const rows = candidateRows(out);
    for (const arch of ARCHES) {
      const of = (target: string) => rows.filter((r) => r[0] === arch && r[1] === target).map((r) => r[3]);
      expect(of('aws-local'), out).toEqual([expect.stringMatching(/^ami-[0-9a-f]+$/)]);
      expect(of('hypervisor')).toEqual([expect.stringMatching(new RegExp(`^127\\.0\\.0\\.30:bootc-rig-demo-[0-9a-f]+/demo-${arch}-`))]);
      expect(of('glance-local')).toEqual([expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)]);
      expect(of('local')).toEqual(expect.arrayContaining([expect.stringMatching(/\/\.demo\/images\/demo-.*\.qcow2$/)]));
    }
    expect(out).toMatch(/AMIs on moto: .* ec2 describe-images --image-ids ami-/);
    expect(out).toMatch(/libvirt volumes: +virsh -c qemu:\/\/\/system vol-list --pool bootc-rig-demo-/);
    expect(out).toMatch(/Glance images: +curl .*\/v2\/images/);
  }, 420_000);

  it('every candidate, read back from its server, holds the bytes built for its own architecture', async () => {
    const t = demoTargets();
    const client = await connectClient({ address: `127.0.0.1:${ports.temporal}`, namespace: 'default', taskQueue: 'bootc-release' });
    try {
      const status = await new ReleaseClient(client, 'bootc-release').status(first.id);
      expect(new Set(status.candidates.map((c) => c.kind))).toEqual(new Set(['directory', 'aws', 'libvirt', 'openstack']));
      const found: Record<string, string[]> = {};
      const expected: Record<string, string[]> = {};
      for (const c of status.candidates) {
        const bytes = await readCandidateBytes(c, t);
        const key = `${c.arch} ${c.target} ${c.type} ${c.imageId}`;
        found[key] = ARCHES.filter((a) => bytes.includes(marker(a)));
        expected[key] = [c.arch];
      }
      expect(found).toEqual(expected);
    } finally {
      await client.connection.close();
    }
  }, 120_000);

  it('the printed approve command activates the release; Ctrl-C then stops everything within 10 s', async () => {
    const cmd = first.run.output.match(/^\s*((?:TEMPORAL_ADDRESS=\S+ )?npm run -s cli -- release approve \S+ --by \S+)$/m)![1]!;
    execFileSync('sh', ['-c', cmd], { cwd: repo, stdio: 'pipe', timeout: 120_000 });
    await first.run.waitFor(new RegExp(`release ${first.id} ended: activated`), 60_000);
    // The printed channel commands promote the release from staging to production.
    await first.run.waitFor(/channel rollback production/, 10_000);
    const channelCmd = (what: string) => first.run.output.match(new RegExp(`^\\s*((?:TEMPORAL_ADDRESS=\\S+ )?npm run -s cli -- channel ${what}.*)$`, 'm'))![1]!;
    for (const what of ['mark-tested staging', 'promote staging production'])
      execFileSync('sh', ['-c', channelCmd(what)], { cwd: repo, stdio: 'pipe', timeout: 120_000 });
    const production = parseYaml(readFileSync(path.join(repo, '.demo/image-map-production.yaml'), 'utf8'));
    expect(production).toEqual(parseYaml(readFileSync(path.join(repo, '.demo/image-map.yaml'), 'utf8')));
    expect(execFileSync('sh', ['-c', channelCmd('show production')], { cwd: repo, timeout: 120_000 }).toString()).toContain(first.id);
    const t = demoTargets();
    await interruptAndCheck(first.run, [new URL(t.moto), new URL(t.glance)].map((u) => ({ host: u.hostname, port: Number(u.port) })));
    expect((await virsh('pool-list', '--all', '--name')).split('\n').map((l) => l.trim())).not.toContain(t.pool);
  }, 240_000);

  it('a second run right after works, and takes the approve signal with the JSON printed for the Web UI', async () => {
    const second = await startAndWait();
    const json = second.run.output.match(/paste as input:\n\s*(\{.*\})\n/)![1]!;
    execFileSync(
      tool('temporal'),
      ['workflow', 'signal', '--address', `127.0.0.1:${ports.temporal}`, '--workflow-id', second.id, '--name', 'approve', '--input', json],
      { stdio: 'pipe', timeout: 30_000 },
    );
    await second.run.waitFor(new RegExp(`release ${second.id} ended: activated`), 60_000);
    const t = demoTargets();
    await interruptAndCheck(second.run, [new URL(t.moto), new URL(t.glance)].map((u) => ({ host: u.hostname, port: Number(u.port) })));
  }, 480_000);

  it('a demo killed outright (as tsx does when its event loop is slow to answer Ctrl-C) still leaves nothing behind', async () => {
    const run = new DemoRun(portEnv(ports));
    runs.push(run);
    await run.waitFor(/release \S+ started/, 300_000);
    const demo = run.tree().find((p) => p.comm === 'node' && readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes('scripts/demo.ts'))!;
    const t = demoTargets();
    await interruptAndCheck(run, [new URL(t.moto), new URL(t.glance)].map((u) => ({ host: u.hostname, port: Number(u.port) })), () =>
      process.kill(demo.pid, 'SIGKILL'),
    );
    expect(run.output).toContain('process(es) the demo left running');
  }, 360_000);

  it('a port already taken stops the demo before it starts anything, with a message naming the port', async () => {
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(ports.registry, '127.0.0.30', () => r()));
    try {
      const run = new DemoRun(portEnv(ports));
      runs.push(run);
      const code = await run.exited;
      expect(code).not.toBe(0);
      expect(run.output).toContain(`port ${ports.registry} on 127.0.0.30 (for the container registry) is already in use`);
      expect(run.output).toContain('BOOTC_RELEASE_DEMO_REGISTRY_PORT');
      expect(await canListen('127.0.0.1', ports.temporal)).toBe(true);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  }, 60_000);
});
