// A worker process for tests that kill workers: production's settings and wiring, plus overrides a test passes as
// JSON (endpoints of the rig's clouds, instance → rig host maps). Test-only; production runs worker/main.ts.
import { appendFileSync } from 'node:fs';
import { createActivities } from '../../activities';
import { TAGS } from '../../activities/types';
import { connectWorker, createWorkers } from '../../worker/run';
import { workerSettings } from '../../worker/settings';
import { createActivityDeps, type WiringOverrides } from '../../worker/wiring';
import { StandinDomains, type StandinDomainsOptions } from '../standins/libvirt-domains';

interface TestOverrides {
  /** Static AWS credentials for moto, and instance id → rig SSH host. */
  aws?: {
    endpoint?: string;
    addresses?: Record<string, { address: string; port: number }>;
    /** Release id (the instance's release tag) → rig SSH host, for a release whose instances a test sends elsewhere. */
    releaseAddresses?: Record<string, { address: string; port: number }>;
    defaultAddress?: { address: string; port: number };
    /** EBS blocks in flight while publishing (default 16). */
    blockConcurrency?: number;
  };
  /** IBM Cloud: every builder instance → this rig SSH host; API and COS keys come from the environment. */
  ibmcloud?: { defaultAddress: { address: string; port: number }; cosPartSize?: number };
  /** libvirt builders: domains answered by the stand-in (test/standins/libvirt-domains.ts). */
  libvirtDomains?: StandinDomainsOptions;
  builder?: WiringOverrides['builder'];
  fetch?: WiringOverrides['fetch'];
}

const log = (line: string) => process.env.BOOTC_RELEASE_TEST_LOG && appendFileSync(process.env.BOOTC_RELEASE_TEST_LOG, `${new Date().toISOString()} ${line}\n`);

async function main() {
  const settings = workerSettings();
  const o = JSON.parse(process.env.BOOTC_RELEASE_TEST_OVERRIDES ?? '{}') as TestOverrides;
  const overrides: WiringOverrides = { builder: o.builder, fetch: o.fetch };
  if (o.aws) {
    const map = o.aws;
    overrides.aws = {
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      pollIntervalMs: 200,
      addressOf: (instance) =>
        map.addresses?.[instance.InstanceId ?? ''] ??
        map.releaseAddresses?.[instance.Tags?.find((t) => t.Key === TAGS.releaseId)?.Value ?? ''] ??
        map.defaultAddress!,
      blockConcurrency: map.blockConcurrency,
    } as WiringOverrides['aws'];
  }
  if (o.ibmcloud) {
    const { defaultAddress, cosPartSize } = o.ibmcloud;
    overrides.ibmcloud = { pollIntervalMs: 200, cosPartSize, addressOf: () => defaultAddress };
  }
  if (o.libvirtDomains)
    overrides.libvirtBuilder = { connect: new StandinDomains(o.libvirtDomains).connect, domainType: 'qemu', pollIntervalMs: 300 };
  const { connection, client } = await connectWorker(settings);
  const workers = await createWorkers(connection, settings, createActivities(createActivityDeps(settings, client, overrides)));
  log(`worker ${settings.workerId} started (pid ${process.pid})`);
  process.once('SIGTERM', () => workers.shutdown());
  await workers.run();
}

main().catch((err) => {
  log(`worker failed: ${(err as Error).stack}`);
  process.exit(1);
});
