// The payload codec (config/codec.ts) end to end: a worker and a client with BOOTC_RELEASE_CODEC_KEY_FILE run a
// release whose history holds no plaintext of its input; the CLI reads it with the key and says what is wrong
// without it or with another; `bootc-release codec-server` decodes for the temporal CLI (`--codec-endpoint`) and for
// the Web UI in a real browser (a dev server started with `--ui-codec-endpoint`), only for the UI's origin, and with
// `--token-env` only for requests that carry the token. The Temporal server here is this file's own, for its UI flag.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createCodecServer, serverAddress } from '../../client/codec-server';
import { payloadCodec } from '../../config/codec';
import { connectRig, standinDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';
import { stopProcess } from '../../scripts/servers/process';
import { freePort, tool, waitForPort } from '../../scripts/servers/tools';

const rig = inject('rig') as RigInfo;
const repo = path.resolve(__dirname, '../..');
const base = path.join(rig.dir, 'e2e-codec');
const taskQueue = `e2e-codec-${randomUUID().slice(0, 8)}`;
const marker = `codec-marker-${randomUUID().slice(0, 8)}`;
const keyFile = path.join(base, 'codec.key');
const otherKeyFile = path.join(base, 'other.key');
const CHROMIUM = '/usr/bin/chromium';
const stops: (() => Promise<unknown>)[] = [];
let server: { address: string; ui: string };
let codecUrl: string;
let conn: Awaited<ReturnType<typeof connectRig>>;
let releaseId: string;

/** A dev server whose Web UI decodes payloads through `codecEndpoint`, as an operator would start one. */
async function devServerWithCodec(codecEndpoint: string): Promise<{ address: string; ui: string }> {
  const [port, uiPort] = [await freePort(), await freePort()];
  const child = spawn(
    tool('temporal'),
    ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort), '--namespace', 'default',
      '--log-level', 'error', '--ui-codec-endpoint', codecEndpoint,
      ...['BootcReleaseName=Keyword', 'BootcReleaseStage=Keyword', 'BootcReleaseArches=KeywordList', 'BootcReleaseTrigger=Keyword', 'BootcReleaseSourceDigest=Keyword'].flatMap((a) => ['--search-attribute', a])],
    { stdio: 'ignore', detached: true },
  );
  stops.push(() => stopProcess(child));
  await waitForPort('127.0.0.1', port, 60_000, 'temporal dev server');
  await waitForPort('127.0.0.1', uiPort, 60_000, 'temporal web ui');
  return { address: `127.0.0.1:${port}`, ui: `http://127.0.0.1:${uiPort}` };
}

/** The CLI as a user runs it, against this file's server. */
const cli = (env: Record<string, string | undefined>, ...args: string[]) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [path.join(repo, 'client/bin.cjs'), ...args],
      { cwd: repo, env: { ...process.env, TEMPORAL_ADDRESS: server.address, BOOTC_RELEASE_TASK_QUEUE: taskQueue, NO_COLOR: '1', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
    ),
  );

/** `bootc-release codec-server` as a process; resolves once it prints where it listens. */
async function codecServerProcess(args: string[], env: Record<string, string>): Promise<string> {
  const child: ChildProcess = spawn(process.execPath, [path.join(repo, 'client/bin.cjs'), 'codec-server', ...args], {
    cwd: repo,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stops.push(() => stopProcess(child));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = /codec-server on (http:\/\/\S+) /.exec(out);
    if (m) return m[1]!;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`codec-server did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Bytes as text, and where each payload is, with its encoding: what the server holds, without the codec. */
function clear(value: unknown, at: string, payloads: { at: string; encoding: string }[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if ('low' in value && 'high' in value) return String(value);
  if ('metadata' in value && 'data' in value && (value as { data: unknown }).data instanceof Uint8Array)
    payloads.push({ at, encoding: Buffer.from((value as { metadata: Record<string, Uint8Array> }).metadata.encoding ?? []).toString() });
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clear(v, `${at}.${k}`, payloads)]));
}

/** The history of a workflow and its children as the server holds it, read without the codec. */
async function rawHistories(workflowId: string): Promise<{ text: string; payloads: { at: string; encoding: string }[] }> {
  const connection = await Connection.connect({ address: server.address });
  try {
    const plain = new Client({ connection });
    const ids = [workflowId];
    const text: string[] = [];
    const payloads: { at: string; encoding: string }[] = [];
    for (const id of ids) {
      for (const e of (await plain.workflow.getHandle(id).fetchHistory()).events ?? []) {
        const child = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
        if (child) ids.push(child);
        text.push(JSON.stringify(clear(e, `${id} event ${String(e.eventId)}`, payloads)));
      }
    }
    return { text: text.join('\n'), payloads };
  } finally {
    await connection.close();
  }
}

const asJson = (p: { metadata?: Record<string, Uint8Array> | null; data?: Uint8Array | null }) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

beforeAll(async () => {
  mkdirSync(base, { recursive: true });
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  writeFileSync(otherKeyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const codecPort = await freePort();
  codecUrl = `http://127.0.0.1:${codecPort}`;
  server = await devServerWithCodec(codecUrl);
  await codecServerProcess(['--listen', `127.0.0.1:${codecPort}`, '--ui-origin', server.ui], { BOOTC_RELEASE_CODEC_KEY_FILE: keyFile });
  const onServer = { ...rig, temporalAddress: server.address };
  const worker = await startInProcessWorker(onServer, { taskQueue, dirs: workerDirs(path.join(base, 'worker')), codecKeyFile: keyFile });
  stops.push(() => worker.stop());
  conn = await connectRig(onServer, taskQueue, { codecKeyFile: keyFile });
  stops.push(() => conn.close());
}, 180_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
});

describe('the payload codec', () => {
  it('keeps the plan, the status and the candidates out of the history in clear', async () => {
    const def = standinDefinition(rig, base, { name: 'codec', arches: [{ arch: 'aarch64', host: rig.sshHosts[1]!, types: ['qcow2'] }] });
    releaseId = await conn.releases.startFromDefinition(def, { reason: marker });
    const ready = await waitForStage(conn.releases, releaseId, ['awaiting-approval', 'failed'], 180_000);
    expect(ready.stage).toBe('awaiting-approval');
    expect(ready.reason).toBe(marker);

    const raw = await rawHistories(releaseId);
    // Search attributes are indexed by the server, so they are the one thing left readable (names, stages, arches);
    // so are the ids of patch markers (`patched('channels')`: names in our code, written by the SDK's core, no data).
    const readable = /\.searchAttributes\.indexedFields\.|\.markerRecordedEventAttributes\.details\.patch-data\./;
    expect(raw.payloads.filter((p) => p.encoding !== 'binary/encrypted' && !readable.test(p.at))).toEqual([]);
    const patches = raw.payloads.filter((p) => /patch-data/.test(p.at));
    expect(patches.every((p) => p.encoding === 'json/plain')).toBe(true);
    expect(raw.payloads.filter((p) => p.encoding === 'binary/encrypted').length).toBeGreaterThan(20);
    for (const plain of [marker, path.join(base, 'builders'), rig.sourceImage, ready.candidates[0]!.imageId]) expect(raw.text).not.toContain(plain);
    expect(raw.text).toContain('awaiting-approval');
  }, 240_000);

  it('lets the CLI read the release with the key, and says what is wrong without it or with another', async () => {
    const withKey = await cli({ BOOTC_RELEASE_CODEC_KEY_FILE: keyFile }, 'release', 'status', releaseId, '--json');
    expect(withKey.code, withKey.stderr).toBe(0);
    expect(JSON.parse(withKey.stdout)).toMatchObject({ stage: 'awaiting-approval', reason: marker });

    const without = await cli({ BOOTC_RELEASE_CODEC_KEY_FILE: '' }, 'release', 'status', releaseId);
    expect(without.code).toBe(1);
    expect(without.stderr).toMatch(/a payload is encrypted \(codec key [0-9a-f]{16}\); set BOOTC_RELEASE_CODEC_KEY_FILE to the file holding that key/);

    const other = await cli({ BOOTC_RELEASE_CODEC_KEY_FILE: otherKeyFile }, 'release', 'status', releaseId);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/encrypted with codec key [0-9a-f]{16}, which the file in BOOTC_RELEASE_CODEC_KEY_FILE does not hold \(it holds [0-9a-f]{16}\)/);

    const broken = path.join(base, 'broken.key');
    writeFileSync(broken, 'not-a-key\n');
    const unreadable = await cli({ BOOTC_RELEASE_CODEC_KEY_FILE: broken }, 'release', 'status', releaseId);
    expect(unreadable.code).toBe(1);
    expect(unreadable.stderr).toContain(`BOOTC_RELEASE_CODEC_KEY_FILE: ${broken} line 1 is not a 32-byte key in base64 or hex`);
    expect(unreadable.stderr).not.toContain('not-a-key');
  }, 120_000);

  it('decodes through the codec server for the temporal CLI and the Web UI, for the UI origin only', async () => {
    const show = (...extra: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile(tool('temporal'), ['workflow', 'show', '--address', server.address, '-w', releaseId, '-o', 'json', ...extra], { maxBuffer: 64 << 20 }, (err, out) =>
          err ? reject(err) : resolve(out),
        ),
      );
    // `-o json` prints payloads as the server holds them, or as the codec server decoded them: base64 either way.
    const payloadText = (json: string): string => {
      const texts: string[] = [];
      const walk = (v: unknown): void => {
        if (!v || typeof v !== 'object') return;
        const data = (v as { metadata?: unknown; data?: unknown }).data;
        if ('metadata' in v && typeof data === 'string') texts.push(Buffer.from(data, 'base64').toString());
        Object.values(v).forEach(walk);
      };
      walk(JSON.parse(json));
      return texts.join('\n');
    };
    expect(payloadText(await show())).not.toContain(marker);
    expect(payloadText(await show('--codec-endpoint', codecUrl))).toContain(marker);

    const preflight = (origin: string) =>
      fetch(`${codecUrl}/decode`, {
        method: 'OPTIONS',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-namespace' },
      });
    const ui = await preflight(server.ui);
    expect(ui.status).toBe(204);
    expect(ui.headers.get('access-control-allow-origin')).toBe(server.ui);
    const evil = await preflight('http://evil.example');
    expect(evil.status).toBe(403);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();

    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/install-tools.sh installs Debian's chromium`);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const page = await browser.newPage();
      // The summary line is a payload of the history like the rest: the UI shows it only through the codec server.
      await page.goto(`${server.ui}/namespaces/default/workflows/${releaseId}`, { waitUntil: 'load' });
      await page.getByText(marker).filter({ visible: true }).first().waitFor({ state: 'visible', timeout: 60_000 });
    } finally {
      await browser.close();
    }
  }, 180_000);

  it('answers only requests with the token, and names the key ids, never the key, when it cannot decode', async () => {
    const history = await (async () => {
      const connection = await Connection.connect({ address: server.address });
      try {
        return await new Client({ connection }).workflow.getHandle(releaseId).fetchHistory();
      } finally {
        await connection.close();
      }
    })();
    const input = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    const post = (url: string, route: string, payloads: unknown[], headers: Record<string, string> = {}) =>
      fetch(`${url}/${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', ...headers }, body: JSON.stringify({ payloads }) });

    process.env.CODEC_TOKEN = `token-${randomUUID()}`;
    const guarded = await codecServerProcess(['--listen', '127.0.0.1:0', '--token-env', 'CODEC_TOKEN'], { BOOTC_RELEASE_CODEC_KEY_FILE: keyFile });
    expect((await post(guarded, 'decode', [asJson(input)])).status).toBe(401);
    expect((await post(guarded, 'decode', [asJson(input)], { Authorization: 'Bearer nope' })).status).toBe(401);
    const decoded = await post(guarded, 'decode', [asJson(input)], { Authorization: `Bearer ${process.env.CODEC_TOKEN}` });
    expect(decoded.status).toBe(200);
    const [plain] = ((await decoded.json()) as { payloads: { data: string }[] }).payloads;
    // The temporal CLI may template its endpoint with the namespace: http://host:port/{namespace}.
    expect((await post(guarded, 'default/decode', [asJson(input)], { Authorization: `Bearer ${process.env.CODEC_TOKEN}` })).status).toBe(200);
    expect(JSON.parse(Buffer.from(plain!.data, 'base64').toString())).toMatchObject({ plan: { releaseId, reason: marker } });

    // Encode and decode again: what the UI does with a signal's input.
    const encoded = (await (await post(codecUrl, 'encode', [plain])).json()) as { payloads: { metadata: Record<string, string> }[] };
    expect(Buffer.from(encoded.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
    const again = (await (await post(codecUrl, 'decode', encoded.payloads)).json()) as { payloads: { data: string }[] };
    expect(again.payloads[0]!.data).toBe(plain!.data);

    const wrong = createCodecServer({ codec: payloadCodec(otherKeyFile), origins: [] });
    await new Promise<void>((r) => wrong.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise((r) => wrong.close(r)));
    const refused = await post(`http://${serverAddress(wrong)}`, 'decode', [asJson(input)]);
    expect(refused.status).toBe(400);
    const { error } = (await refused.json()) as { error: string };
    expect(error).toMatch(/^a payload is encrypted with codec key [0-9a-f]{16}, which the file in BOOTC_RELEASE_CODEC_KEY_FILE does not hold \(it holds [0-9a-f]{16}\)$/);
  }, 120_000);

  it('runs the rest of the release encrypted: an approval through an update, activation, the result', async () => {
    const done = await conn.releases.approve(releaseId, { by: 'copr-admin' });
    expect(done.stage).toBe('activated');
    expect((await conn.client.workflow.getHandle(releaseId).result()).stage).toBe('activated');
    expect((await rawHistories(releaseId)).text).not.toContain(marker);
  }, 120_000);
});
