// Workflow code must replay every history it may meet: a worker restarted on new code re-runs the histories of the
// releases still open (waiting days for approval is normal). Two guards:
// - the histories committed under test/fixtures/histories/ (recorded from earlier code) replay on today's code:
//   a change that would break a release in flight fails here; record new ones when the workflows change on purpose
//   (BOOTC_RELEASE_RECORD_HISTORIES=1 npx vitest run test/e2e/replay.test.ts);
// - the histories of releases run now (approved, rejected; parent, child, trigger and channel workflows) replay cleanly.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WORKFLOW_TYPES, type TriggerResult } from '../../workflows/messages';
import { channelWorkflowId } from '../../activities/channels';
import { connectRig, standinDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';
import { stringify } from 'yaml';

const rig = inject('rig') as RigInfo;
const FIXTURES = path.resolve(__dirname, '../fixtures/histories');
const base = path.join(rig.dir, 'e2e-replay');
const taskQueue = `e2e-replay-${randomUUID().slice(0, 8)}`;
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;
const replayOptions = () => ({ workflowBundle: { codePath: rig.workflowBundlePath } });

beforeAll(async () => {
  const dirs = workerDirs(path.join(base, 'worker'));
  const def = standinDefinition(rig, base, { name: 'replayed', arches: [{ arch: 's390x', host: rig.sshHosts[0]!, types: ['qcow2'] }] });
  writeFileSync(path.join(dirs.definitionsDir, 'replayed.yaml'), stringify(def));
  worker = await startInProcessWorker(rig, { taskQueue, dirs });
  conn = await connectRig(rig, taskQueue);
});
afterAll(async () => {
  await worker?.stop();
  await conn?.close();
});

async function histories(client: Client, ids: string[]) {
  return await Promise.all(ids.map(async (workflowId) => ({ workflowId, history: await client.workflow.getHandle(workflowId).fetchHistory() })));
}

describe('replaying workflow histories', () => {
  it('replays the committed histories of earlier code on today’s workflow code', async () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8')));
      // <what>--<workflow id>.json: the id is part of what the workflow code replays (child ids derive from it).
      const workflowId = file.replace(/\.json$/, '').split('--')[1];
      await expect(Worker.runReplayHistory(replayOptions(), history, workflowId)).resolves.toBeUndefined();
    }
  });

  it('replays what releases run now leave: an approved one (parent, child, channel), a rejected one and a trigger check', async () => {
    const approved = await conn.releases.startByName('replayed', { reason: 'replay approved' });
    expect((await waitForStage(conn.releases, approved, ['awaiting-approval', 'failed'])).stage).toBe('awaiting-approval');
    await conn.releases.approve(approved, { by: 'copr-admin' });
    await conn.client.workflow.getHandle(approved).result();

    const rejected = await conn.releases.startByName('replayed', { reason: 'replay rejected' });
    expect((await waitForStage(conn.releases, rejected, ['awaiting-approval', 'failed'])).stage).toBe('awaiting-approval');
    await conn.releases.reject(rejected, { by: 'copr-admin', reason: 'replay test' });
    await conn.client.workflow.getHandle(rejected).result();

    const triggerId = `trigger-replayed-${randomUUID().slice(0, 8)}`;
    const trigger = (await conn.client.workflow.execute(WORKFLOW_TYPES.trigger, {
      taskQueue,
      workflowId: triggerId,
      args: [{ definition: 'replayed', mode: 'inactivity', rebuildAfter: '1d', by: 'replay test' }],
    })) as TriggerResult;
    expect(trigger.started).toBeUndefined();

    // The approved release's channel, which activated its images (still running: an entity workflow never ends).
    const ran = await histories(conn.client, [approved, `${approved}.build.s390x`, rejected, triggerId, channelWorkflowId('replayed', 'staging')]);
    for (const { workflowId, history } of ran)
      await expect(Worker.runReplayHistory(replayOptions(), history, workflowId)).resolves.toBeUndefined();

    if (process.env.BOOTC_RELEASE_RECORD_HISTORIES) {
      mkdirSync(FIXTURES, { recursive: true });
      const names = ['release-approved', 'arch-build', 'release-rejected', 'trigger-skipped', 'channel-assigned'];
      ran.forEach(({ workflowId, history }, i) => writeFileSync(path.join(FIXTURES, `${names[i]}--${workflowId}.json`), `${historyToJSON(history)}\n`));
    }
  });
});
