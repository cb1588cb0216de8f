// `release status --watch` on a release that builds for some seconds: per-architecture progress read from the
// running steps' heartbeats on the real dev server, through the real CLI.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { archProgress } from '../../client/progress';
import { connectRig, standinDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

const repo = path.resolve(__dirname, '../..');
const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-watch');
const taskQueue = `e2e-watch-${randomUUID().slice(0, 8)}`;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;

beforeAll(async () => {
  worker = await startInProcessWorker(rig, { taskQueue, dirs: workerDirs(path.join(base, 'worker')) });
  conn = await connectRig(rig, taskQueue);
});
afterAll(async () => {
  await worker?.stop();
  await conn?.close();
});

describe('release status --watch', () => {
  it('shows how far each architecture is, from the heartbeats of its running step, until the release awaits approval', async () => {
    const def = standinDefinition(rig, base, {
      name: 'watched',
      arches: [{ arch: 'ppc64le', host: rig.sshHosts[1]!, types: ['qcow2'] }],
      build: { seconds: 8, diskSize: '64M', dataMiB: 2 },
      // The server keeps a heartbeat at most every 0.8 × the heartbeat timeout: short, so an 8 s build shows steps.
      heartbeat: '2s',
    });
    const id = await conn.releases.startFromDefinition(def, { reason: 'e2e watch' });
    const watch = new Promise<string>((resolve, reject) => {
      const child = spawn(path.join(repo, 'node_modules/.bin/tsx'), [path.join(repo, 'client/cli.ts'), 'release', 'status', id, '--watch'], {
        cwd: repo,
        env: { ...process.env, TEMPORAL_ADDRESS: rig.temporalAddress, BOOTC_RELEASE_TASK_QUEUE: taskQueue },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', () => resolve(out));
    });

    let seen: Awaited<ReturnType<typeof archProgress>>[number] | undefined;
    for (let i = 0; i < 300 && !seen; i++) {
      const s = await conn.releases.status(id);
      seen = (await archProgress(conn.client, s)).find((p) => /^build .* step \d+\/\d+/.test(p.note ?? '') && p.elapsedMs! > 0);
      if (!seen) await new Promise((r) => setTimeout(r, 200));
    }
    expect(seen).toMatchObject({ arch: 'ppc64le', stage: 'building-image', note: expect.stringMatching(/^build qcow2 step \d+\/\d+/) });
    expect(seen!.fraction).toBeGreaterThanOrEqual(0);
    expect(seen!.fraction).toBeLessThanOrEqual(1);

    expect((await waitForStage(conn.releases, id, ['awaiting-approval', 'failed'])).stage).toBe('awaiting-approval');
    const printed = await watch;
    // Piped: plain lines, each state once, progress lines among them, and the watch ends at awaiting-approval.
    expect(printed).toMatch(/^Progress:\nppc64le {2}building-image {2}\d+%/m);
    expect(printed).toContain(`release ${id} (watched): awaiting-approval`);
    expect(printed).not.toMatch(/\x1b\[/);
  });
});
