import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runImageBuild, type BuildProgress } from '../../activities/build/image-build';
import { standinEngine } from '../standins/bootc-image-builder/image';
import {
  containersMounting,
  hostOf,
  makeSourceImage,
  processesMentioning,
  removeImage,
  standinImageBuilder,
  staticBuilder,
  testDir,
  waitFor,
} from './builder-fixtures';

const sha256File = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });

const startsIn = (outputDir: string) => {
  const file = path.join(outputDir, 'bib-standin.starts');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').length : 0;
};

/** The build's process group leader: a second build would have another (a fresh start also empties output/). */
const pidOf = (runDir: string) => readFileSync(path.join(runDir, 'pid'), 'utf8').trim();

describe('image build on a builder', () => {
  const rig = inject('rig');
  const host = hostOf(rig.sshHosts[0]);
  const base = testDir(rig, 'image-build');
  const source = `localhost/bootc-release-test/image-build:${process.pid}`;
  beforeAll(() => makeSourceImage(base, source));
  afterAll(() => removeImage(source));

  it('builds ami and raw in separate runs, finds every type at its contract path, and checksums on the builder', async () => {
    const dir = testDir(rig, 'contract');
    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir);
    const progress: BuildProgress[] = [];
    const result = await runImageBuild(
      {
        releaseId: 'r1',
        arch: 'x86_64',
        host,
        builder,
        imageBuilder,
        imageRef: source,
        types: ['ami', 'raw', 'qcow2'],
      },
      { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200, onProgress: (p) => progress.push(p) },
    );
    const runDir = path.join(builder.workDir, 'r1', 'x86_64');
    expect(result.artifacts.map((a) => [a.type, a.remotePath])).toEqual([
      ['ami', `${runDir}/ami-qcow2/output/image/disk.raw`],
      ['qcow2', `${runDir}/ami-qcow2/output/qcow2/disk.qcow2`],
      ['raw', `${runDir}/raw/output/image/disk.raw`],
    ]);
    for (const a of result.artifacts) {
      expect(a.size).toBe(statSync(a.remotePath).size);
      expect(a.sha256).toBe(await sha256File(a.remotePath));
      // The builder has python3: the same pass gives the sparse digest the fetch checks data-only against.
      expect(a.sparseSha256).toMatch(/^[0-9a-f]{64}$/);
    }
    const [ami, , raw] = result.artifacts;
    expect(ami.size).toBe(256 << 20);
    // Sparse, and the same source image gives the same disk.
    expect(statSync(raw.remotePath).blocks * 512).toBeLessThan(16 << 20);
    expect(raw.sha256).toBe(ami.sha256);
    expect(raw.sparseSha256).toBe(ami.sparseSha256);
    expect(existsSync(`${runDir}/ami-qcow2/output/manifest-ami-qcow2.json`)).toBe(true);

    expect(result.logs).toEqual([
      path.join(dir, 'staging', 'r1', 'x86_64', 'build-ami-qcow2.log'),
      path.join(dir, 'staging', 'r1', 'x86_64', 'build-raw.log'),
    ]);
    expect(readFileSync(result.logs[0], 'utf8')).toMatch(/^Pipeline build: [0-9a-f]{64}$/m);

    const building = progress.filter((p) => p.phase === 'building');
    expect(building.length).toBeGreaterThan(0);
    expect(building.some((p) => p.total === 9 && p.step > 0 && p.message.startsWith('org.osbuild.'))).toBe(
      true,
    );
    for (const p of progress) expect(JSON.stringify(p).length).toBeLessThan(400);
    expect(progress.at(-1)).toMatchObject({ phase: 'done', runIndex: 2, runs: 2 });
  });

  it('re-attaches to the running build on a second call instead of starting another', async () => {
    const dir = testDir(rig, 'reattach');
    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir, { seconds: 3 });
    const input = {
      releaseId: 'r2',
      arch: 'aarch64' as const,
      host,
      builder,
      imageBuilder,
      imageRef: source,
      types: ['qcow2' as const],
    };
    const runDir = path.join(builder.workDir, 'r2', 'aarch64', 'qcow2');
    const first = runImageBuild(input, { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 });
    await waitFor('the build to start', () => startsIn(path.join(runDir, 'output')) === 1);
    const pid = pidOf(runDir);
    const second = await runImageBuild(input, { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 });
    expect(await first).toEqual(second);
    expect(startsIn(path.join(runDir, 'output'))).toBe(1);
    expect(pidOf(runDir)).toBe(pid);
    // Once finished, a third call only reads the results.
    expect(
      await runImageBuild(input, { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 }),
    ).toEqual(second);
    expect(pidOf(runDir)).toBe(pid);
  });

  it('re-attaches after the worker process is killed mid-build, without a second build', async () => {
    const dir = testDir(rig, 'worker-killed');
    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir, { seconds: 4 });
    const input = {
      releaseId: 'r7',
      arch: 'x86_64' as const,
      host,
      builder,
      imageBuilder,
      imageRef: source,
      types: ['qcow2' as const],
    };
    const runDir = path.join(builder.workDir, 'r7', 'x86_64', 'qcow2');
    const script = path.join(dir, 'worker.ts');
    writeFileSync(
      script,
      `import { runImageBuild } from ${JSON.stringify(path.resolve(__dirname, '../../activities/build/image-build'))};\n` +
        `runImageBuild(JSON.parse(process.env.INPUT!), { stagingDir: ${JSON.stringify(path.join(dir, 'staging'))}, pollIntervalMs: 200 });\n`,
    );
    const worker = spawn(path.resolve(__dirname, '../../node_modules/.bin/tsx'), [script], {
      env: { ...process.env, INPUT: JSON.stringify(input) },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => worker.once('exit', r));
    try {
      await waitFor('the build to start', () => startsIn(path.join(runDir, 'output')) === 1);
    } finally {
      worker.kill('SIGKILL');
      await exited;
    }
    expect(containersMounting(runDir)).toHaveLength(1);
    const pid = pidOf(runDir);
    const result = await runImageBuild(input, { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 });
    expect(result.artifacts.map((a) => a.type)).toEqual(['qcow2']);
    expect(startsIn(path.join(runDir, 'output'))).toBe(1);
    expect(pidOf(runDir)).toBe(pid);
  });

  it('kills the remote process group and its container when the activity is cancelled', async () => {
    const dir = testDir(rig, 'cancel');
    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir, { seconds: 120 });
    const runDir = path.join(builder.workDir, 'r3', 'x86_64', 'qcow2');
    const abort = new AbortController();
    const build = runImageBuild(
      { releaseId: 'r3', arch: 'x86_64', host, builder, imageBuilder, imageRef: source, types: ['qcow2'] },
      {
        stagingDir: path.join(dir, 'staging'),
        pollIntervalMs: 200,
        signal: abort.signal,
        killGraceSeconds: 5,
      },
    );
    await waitFor('the container to run', () => containersMounting(runDir).length === 1);
    expect(processesMentioning(runDir).length).toBeGreaterThan(0);
    abort.abort(new Error('cancelled by test'));
    await expect(build).rejects.toThrow('cancelled by test');
    await waitFor('the process group to end', () => processesMentioning(runDir).length === 0, 10_000);
    expect(containersMounting(runDir)).toEqual([]);
    expect(existsSync(path.join(runDir, 'pid'))).toBe(false);
  });

  it('fails fast and non-retryably with the data volume hint when the build runs out of space', async () => {
    const dir = testDir(rig, 'enospc');
    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir, { fail: 'enospc' });
    const started = Date.now();
    const err = await runImageBuild(
      { releaseId: 'r4', arch: 's390x', host, builder, imageBuilder, imageRef: source, types: ['qcow2'] },
      { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    const failure = err as ApplicationFailure;
    expect(failure.nonRetryable).toBe(true);
    expect(failure.type).toBe('NoSpaceLeft');
    expect(failure.message).toMatch(/No space left on device/);
    expect(failure.message).toContain('architectures.s390x.builder.dataVolume');
    expect(failure.message).toContain(path.join(dir, 'staging', 'r4', 's390x', 'build-qcow2.log'));
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('reports other failures as retryable with the last log lines, and the retry runs a fresh build', async () => {
    const dir = testDir(rig, 'retry');
    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir, { fail: 'exit:3' });
    const input = {
      releaseId: 'r5',
      arch: 'ppc64le' as const,
      host,
      builder,
      imageBuilder,
      imageRef: source,
      types: ['raw' as const],
    };
    const opts = { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200 };
    const err = await runImageBuild(input, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect((err as Error).message).toMatch(/exited 3: .*stand-in failure injected/);
    // The cause went away (same engine config path, no failure knob): the retry builds again and succeeds.
    standinEngine(path.join(dir, 'engine'), { diskSize: '256M', seconds: 1 });
    const result = await runImageBuild(input, opts);
    expect(result.artifacts).toHaveLength(1);
    expect(result.artifacts[0].size).toBe(256 << 20);
  });

  it('survives a dropped SSH connection during the build and re-attaches on the next poll', async () => {
    const dir = testDir(rig, 'drop');
    const builder = staticBuilder(rig, dir);
    const imageBuilder = standinImageBuilder(dir, { seconds: 4 });
    const proxy = await TcpProxy.start(rig.sshHosts[0].address, rig.sshHosts[0].port);
    const runDir = path.join(builder.workDir, 'r6', 'x86_64', 'qcow2');
    try {
      const progress: BuildProgress[] = [];
      const build = runImageBuild(
        {
          releaseId: 'r6',
          arch: 'x86_64',
          host: { ...host, address: '127.0.0.1', port: proxy.port },
          builder,
          imageBuilder,
          imageRef: source,
          types: ['qcow2'],
        },
        { stagingDir: path.join(dir, 'staging'), pollIntervalMs: 200, onProgress: (p) => progress.push(p) },
      );
      await waitFor('the build to start', () => startsIn(path.join(runDir, 'output')) === 1);
      const pid = pidOf(runDir);
      await proxy.drop(1500);
      const result = await build;
      expect(result.artifacts).toHaveLength(1);
      expect(progress.some((p) => p.phase === 'reconnecting')).toBe(true);
      expect(proxy.connections).toBeGreaterThan(1);
      expect(startsIn(path.join(runDir, 'output'))).toBe(1);
      expect(pidOf(runDir)).toBe(pid);
    } finally {
      await proxy.close();
    }
  });
});

/** A TCP forwarder that can cut every connection and refuse new ones for a while, as a network fault would. */
class TcpProxy {
  connections = 0;
  private sockets = new Set<net.Socket>();
  private server?: net.Server;
  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    public port = 0,
  ) {}

  static async start(host: string, port: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(host, port);
    await proxy.listen();
    return proxy;
  }

  private async listen(): Promise<void> {
    this.server = net.createServer((client) => {
      this.connections++;
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async drop(downMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server!.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
    await new Promise((r) => setTimeout(r, downMs));
    await this.listen();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
