// The Temporal Web UI in a real browser (Debian's chromium driven by playwright-core), as an operator uses it: open a
// release awaiting approval, send the `approve` signal through the UI's own "Send a Signal" dialog with the JSON the
// demo prints, and see the release activated.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureBibStandinImage, standinEngine } from '../standins/bootc-image-builder/image';
import { connectRig, rigDefinition, startInProcessWorker, waitForStage, workerDirs, type RigInfo } from '../rig/release-harness';

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

describe('the Temporal Web UI', () => {
  it("approves a release through the UI's Send-a-Signal dialog, and the release is activated", async () => {
    const def = rigDefinition(rig, {
      name: 'ui-approve',
      arches: [{ arch: 'x86_64', host: rig.sshHosts[2]!, types: ['qcow2'] }],
      builderDir: path.join(base, 'builders'),
      imagesDir: path.join(base, 'images'),
      imageMapPath: path.join(base, 'image-map.yaml'),
      engine: standinEngine(path.join(base, 'engine'), { seconds: 1, diskSize: '64M', dataMiB: 2 }, [rig.registry]),
      bibImage: ensureBibStandinImage(),
    });
    const id = await conn.releases.startFromDefinition(def, { reason: 'e2e ui approve' });
    const ready = await waitForStage(conn.releases, id, ['awaiting-approval', 'failed']);
    expect(ready.stage).toBe('awaiting-approval');

    const page = await browser.newPage();
    try {
      await page.goto(`${rig.temporalUi}/namespaces/default/workflows/${id}`, { waitUntil: 'load' });
      await page.getByRole('button', { name: /more actions/i }).click({ timeout: 30_000 });
      await page.getByRole('menuitem', { name: /send a signal/i }).click();
      const dialog = page.getByTestId('signal-confirmation-modal');
      await dialog.getByTestId('signal-select-button').filter({ visible: true }).first().click();
      await page.getByRole('option', { name: 'approve', exact: true }).filter({ visible: true }).first().click();
      const editor = dialog.locator('.cm-content').filter({ visible: true }).first();
      await editor.click();
      await page.keyboard.press('Control+A');
      await page.keyboard.insertText(JSON.stringify({ by: 'copr-admin' }));
      await dialog.getByRole('button', { name: /^submit$/i }).filter({ visible: true }).first().click();
      const done = await waitForStage(conn.releases, id, ['activated', 'failed', 'rejected']);
      expect(done.stage).toBe('activated');
      expect(done.approval).toMatchObject({ decision: 'approved', by: 'copr-admin' });
    } catch (err) {
      await page.screenshot({ path: path.join(base, 'ui-approve-failure.png') }).catch(() => undefined);
      throw err;
    } finally {
      await page.close();
    }
  });
});
