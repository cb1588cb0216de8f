// Releases that start themselves when their source changes, on the real dev server: a local git repository whose
// build context is image/, a base image in the rig's real registry, real podman builds on the rig's builders.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { connectRig, standinDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';
import { pushSourceImage } from '../../scripts/servers/registry';
import { WORKFLOW_TYPES, type TriggerInput, type TriggerResult } from '../../workflows/messages';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-triggers');
const taskQueue = `e2e-triggers-${randomUUID().slice(0, 8)}`;
const repo = path.join(base, 'repo');
const baseImage = `${rig.registry}/bootc-release-rig/trigger-base:latest`;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

const git = (...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.org', '-C', repo, ...args], { encoding: 'utf8' }).trim();
const commit = (file: string, text: string, message: string) => {
  mkdirSync(path.dirname(path.join(repo, file)), { recursive: true });
  writeFileSync(path.join(repo, file), text);
  git('add', '.');
  git('commit', '-q', '-m', message);
};

const heard: string[] = [];
const hook = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    heard.push((JSON.parse(body) as { text: string }).text);
    res.writeHead(204).end();
  });
});

beforeAll(async () => {
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const dirs = workerDirs(path.join(base, 'worker'));
  pushSourceImage(rig.registry, 'bootc-release-rig/trigger-base:latest', 'trigger base 1');
  mkdirSync(repo, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  commit('image/Containerfile', `FROM ${baseImage}\nCOPY motd /etc/motd\n`, 'image');
  commit('image/motd', 'first\n', 'motd');
  commit('notes/README.md', 'the builder image\n', 'docs');
  const def = {
    ...standinDefinition(rig, base, {
      name: 'triggered',
      arches: [{ arch: 'x86_64', host: rig.sshHosts[2]!, types: ['qcow2'] }],
    }),
    source: { git: `file://${repo}`, ref: 'main', containerfile: 'image/Containerfile', context: 'image' },
    // The farm's chat hears when a trigger starts or skips a release.
    notifications: [{ kind: 'webhook', url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/chat`, format: 'slack', events: ['trigger-started', 'trigger-skipped'] }],
  };
  writeFileSync(path.join(dirs.definitionsDir, 'triggered.yaml'), stringify(def));
  worker = await startInProcessWorker(rig, { taskQueue, dirs, overrides: { registry: { plainHttp: [rig.registry] } } });
  conn = await connectRig(rig, taskQueue);
});

afterAll(async () => {
  await new Promise((r) => hook.close(r));
  await worker?.stop();
  await conn?.close();
});

const check = (input: Partial<TriggerInput> = {}) =>
  conn.client.workflow.execute(WORKFLOW_TYPES.trigger, {
    taskQueue,
    workflowId: `trigger-${randomUUID().slice(0, 8)}`,
    args: [{ definition: 'triggered', mode: 'source-change', by: 'test', ...input } satisfies TriggerInput],
  }) as Promise<TriggerResult>;

/** Approves a started release once it awaits approval, and waits until visibility lists it as activated. */
async function activate(releaseId: string) {
  expect((await waitForStage(conn.releases, releaseId, ['awaiting-approval', 'failed'])).stage).toBe('awaiting-approval');
  await conn.releases.approve(releaseId, { by: 'copr-admin' });
  await conn.client.workflow.getHandle(releaseId).result();
  for (let i = 0; i < 100; i++) {
    const listed = [];
    for await (const w of conn.client.workflow.list({ query: `WorkflowId = '${releaseId}' AND BootcReleaseStage = 'activated' AND ExecutionStatus = 'Completed'` }))
      listed.push(w);
    if (listed.length) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${releaseId} never showed as activated in visibility`);
}

async function releasesOf(definition: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const w of conn.client.workflow.list({ query: `WorkflowType = 'imageRelease' AND BootcReleaseName = '${definition}'` })) ids.push(w.workflowId);
  return ids.sort();
}

describe('the source-change trigger', () => {
  it('starts exactly one release per change of the Containerfile, its context or its base image, and none otherwise', async () => {
    // No release yet: the first check starts one; a check while it runs starts none.
    const first = await check();
    expect(first.started).toMatch(/^triggered-src-[0-9a-f]{16}$/);
    const whileRunning = await check();
    expect(whileRunning.started).toBeUndefined();
    expect(whileRunning.reason).toMatch(/still running/);
    await activate(first.started!);

    // Nothing changed, or only a file outside the build context: nothing starts.
    expect((await check()).started).toBeUndefined();
    commit('notes/README.md', 'the builder image, documented\n', 'docs only');
    const docsOnly = await check();
    expect(docsOnly.started).toBeUndefined();
    expect(docsOnly).toMatchObject({ sourceDigest: first.sourceDigest, reason: expect.stringMatching(/unchanged/) });

    // A commit to the Containerfile's context: one release, even when two checks race for it.
    commit('image/motd', 'second\n', 'motd changed');
    const [a, b] = await Promise.all([check(), check()]);
    const started = [a, b].map((r) => r.started).filter(Boolean);
    expect(started).toHaveLength(1);
    expect(started[0]).not.toBe(first.started);
    await activate(started[0]!);

    // A new digest of the base image named in FROM: one more release.
    pushSourceImage(rig.registry, 'bootc-release-rig/trigger-base:latest', 'trigger base 2');
    const rebased = await check();
    expect(rebased.started).toMatch(/^triggered-src-/);
    expect(rebased.reason).toMatch(/trigger-base:latest sha256:/);
    await activate(rebased.started!);

    expect(await releasesOf('triggered')).toEqual([first.started, started[0], rebased.started].sort());
    // Every check told the chat what it did: started (3 releases) or skipped, with the reason.
    expect(heard.filter((t) => /^triggered release triggered-src-\S+ \(x86_64\) started: /.test(t))).toHaveLength(3);
    expect(heard.some((t) => /triggered: no release started: source unchanged since /.test(t))).toBe(true);
    expect(heard.some((t) => /still running/.test(t))).toBe(true);
  });

  it('starts a release after inactivity only when the last activated one is older than rebuildAfter', async () => {
    const young = await check({ mode: 'inactivity', rebuildAfter: '1d' });
    expect(young.started).toBeUndefined();
    expect(young.reason).toMatch(/within rebuildAfter/);
    await new Promise((r) => setTimeout(r, 1500));
    const old = await check({ mode: 'inactivity', rebuildAfter: '1s' });
    expect(old.started).toMatch(/^triggered-\d{8}-\d{6}$/);
    expect(old.reason).toMatch(/rebuild after inactivity/);
    await activate(old.started!);
  });
});
