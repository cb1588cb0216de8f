// The Temporal Web UI in a real browser (Debian's chromium driven by playwright-core), as an operator uses it: find a
// release awaiting approval in the list by its stage, read its summary, architectures and the approve JSON in its
// Current Details, send that JSON through the UI's own "Send a Signal" dialog, and see the release activated.
// Screenshots of the list, the release, the dialog and a schedule are saved in <rig dir>/screenshots/.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ScheduleClient } from '../../client/schedules';
import { connectRig, standinDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';
import { channelWorkflowId } from '../../activities/channels';

const rig = inject('rig') as RigInfo;
const base = path.join(rig.dir, 'e2e-ui');
const taskQueue = `e2e-ui-${randomUUID().slice(0, 8)}`;
const CHROMIUM = '/usr/bin/chromium';
let worker: Awaited<ReturnType<typeof startInProcessWorker>>;
let conn: Awaited<ReturnType<typeof connectRig>>;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/install-tools.sh installs Debian's chromium`);
  mkdirSync(base, { recursive: true });
  worker = await startInProcessWorker(rig, { taskQueue, dirs: workerDirs(path.join(base, 'worker')) });
  conn = await connectRig(rig, taskQueue);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root in a sandbox, with no route to the internet: no sandbox, nothing fetched in the background.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await worker?.stop();
  await conn?.close();
});

/**
 * Opens a Web UI page and waits for `text` on it. Under load the UI's server sometimes answers a page with its
 * "500 Internal Error" screen; a person presses "Try a refresh", and so does this, three times at most.
 */
async function openUi(page: Page, url: string, text: string): Promise<void> {
  await page.goto(url, { waitUntil: 'load' });
  for (let attempt = 1; ; attempt++) {
    try {
      await page.getByText(text).filter({ visible: true }).first().waitFor({ state: 'visible', timeout: 20_000 });
      return;
    } catch (err) {
      if (attempt >= 3 || !(await page.getByText('Internal Error').count())) throw err;
      await page.reload({ waitUntil: 'load' });
    }
  }
}

/** The frame (the page or one of its iframes) that shows `text`, waited for up to 30 s. */
async function frameWith(page: Page, text: string): Promise<Frame> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    for (const frame of page.frames()) if ((await frame.getByText(text).count().catch(() => 0)) > 0) return frame;
    if (Date.now() > deadline) throw new Error(`no frame of the page shows "${text}"`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('the Temporal Web UI', () => {
  it("approves a release through the UI's Send-a-Signal dialog, and the release is activated", async () => {
    const def = standinDefinition(rig, base, {
      name: 'ui-approve',
      arches: [{ arch: 'x86_64', host: rig.sshHosts[2]!, types: ['qcow2'] }],
    });
    const id = await conn.releases.startFromDefinition(def, { reason: 'e2e ui approve' });
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed']);
    expect(ready.stage).toBe('awaiting-approval');

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const shots = path.join(rig.dir, 'screenshots');
    try {
      // The workflow list: the release, its summary line, filterable by the release's search attributes.
      await openUi(page, `${rig.temporalUi}/namespaces/default/workflows?query=${encodeURIComponent("BootcReleaseStage = 'awaiting-approval'")}`, id);
      await page.screenshot({ path: path.join(shots, 'workflow-list.png') });

      // Summary and Current Details: the story of the release, its architectures and the JSON to approve it with.
      await openUi(page, `${rig.temporalUi}/namespaces/default/workflows/${id}`, 'ui-approve: x86_64, started by');
      await page.getByRole('tab', { name: /user metadata/i }).click();
      // The UI renders the Markdown of Current Details in a sandboxed frame of its own.
      const details = await frameWith(page, 'Waiting for a decision');
      await details.getByRole('cell', { name: 'x86_64' }).first().waitFor({ state: 'visible', timeout: 10_000 });
      const approveJson = (await details.locator('code', { hasText: '{"by":"copr-admin"}' }).first().innerText()).trim();
      expect(JSON.parse(approveJson)).toEqual({ by: 'copr-admin' });
      await page.screenshot({ path: path.join(shots, 'release-awaiting-approval.png'), fullPage: true });

      await page.getByRole('button', { name: /more actions/i }).click({ timeout: 30_000 });
      await page.getByRole('menuitem', { name: /send a signal/i }).click();
      const dialog = page.getByTestId('signal-confirmation-modal');
      await dialog.getByTestId('signal-select-button').filter({ visible: true }).first().click();
      await page.screenshot({ path: path.join(shots, 'signal-dialog.png') });
      await page.getByRole('option', { name: /^approve\b/ }).filter({ visible: true }).first().click();
      const editor = dialog.locator('.cm-content').filter({ visible: true }).first();
      await editor.click();
      await page.keyboard.press('Control+A');
      await page.keyboard.insertText(approveJson);
      await dialog.getByRole('button', { name: /^submit$/i }).filter({ visible: true }).first().click();
      const done = await waitForStage(conn.releases, id, ['activated', 'failed', 'rejected']);
      expect(done.stage).toBe('activated');
      expect(done.approval).toMatchObject({ decision: 'approved', by: 'copr-admin' });
      await openUi(page, `${rig.temporalUi}/namespaces/default/workflows/${id}`, 'ui-approve: x86_64, started by');
      await page.getByRole('tab', { name: /user metadata/i }).click();
      await (await frameWith(page, 'Activated on channel')).getByText('Decision: approved by copr-admin').first().waitFor({ timeout: 10_000 });
      await page.screenshot({ path: path.join(shots, 'release-activated.png'), fullPage: true });

      // The channel the approval assigned: its own workflow, whose Current Details show the images it now serves.
      const channel = channelWorkflowId('ui-approve', done.activation!.channel);
      await openUi(page, `${rig.temporalUi}/namespaces/default/workflows/${channel}`, `channel ${done.activation!.channel} of ui-approve`);
      await page.getByRole('tab', { name: /user metadata/i }).click();
      const channelDetails = await frameWith(page, `Current: release`);
      await channelDetails.getByText(id).first().waitFor({ timeout: 10_000 });
      await channelDetails.getByText(done.candidates[0]!.imageId).first().waitFor({ timeout: 10_000 });
      await page.screenshot({ path: path.join(shots, 'channel.png'), fullPage: true });

      // A schedule as the Web UI lists it, with the summary of what its runs do.
      const schedules = new ScheduleClient(conn.client, taskQueue);
      await schedules.create({ name: 'ui-nightly', definition: 'ui-approve', cron: '0 3 * * *', onlyIfChanged: true, note: 'nightly when the source changed' });
      try {
        await openUi(page, `${rig.temporalUi}/namespaces/default/schedules/bootc-release-ui-nightly`, 'bootc-release-ui-nightly');
        await page.screenshot({ path: path.join(shots, 'schedule.png'), fullPage: true });
      } finally {
        await schedules.delete('ui-nightly');
      }
    } catch (err) {
      await page.screenshot({ path: path.join(base, 'ui-approve-failure.png') }).catch(() => undefined);
      throw err;
    } finally {
      await page.close();
    }
  });
});
