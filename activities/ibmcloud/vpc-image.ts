// One VPC custom image per region, imported from the COS object: POST /v1/images {name, operating_system, file.href,
// resource_group}, then pending → available (or failed, with status_reasons). Images are regional and their names
// unique per region, so the name is the idempotency key: look it up first, create only when it is missing.
import { ApplicationFailure } from '@temporalio/common';
import { activityLog } from '../runtime/heartbeat';
import { pollUntil } from '../runtime/poll';
import { TRANSIENT_POLL_ERRORS } from './deps';
import type { VpcClient, VpcImage } from './vpc-client';
import { FailureType } from '../failures';

// Its name comes from vpcImageName (activities/naming.ts): unique per (definition, arch, release) however long.
export { vpcImageName } from '../naming';

export interface ImageSpec {
  name: string;
  href: string;
  operatingSystem: string;
  resourceGroup?: string;
}

const reasons = (image: VpcImage) => (image.status_reasons ?? []).map((r) => `${r.code}: ${r.message}`).join('; ');

/**
 * Finds or creates the image and waits until it is available, telling `onStatus` every status it polls (the caller
 * heartbeats them). A failed import is non-retryable and names why.
 */
export async function ensureImage(
  vpc: VpcClient,
  spec: ImageSpec,
  opts: { intervalMs: number; timeoutMs: number; field: string; signal?: AbortSignal; onStatus: (image: VpcImage) => void },
): Promise<VpcImage> {
  const { signal } = opts;
  let image = (await vpc.listImages(spec.name, signal)).find((i) => i.name === spec.name);
  if (image?.status === 'failed') {
    // A failed import from an earlier run blocks the name; the person re-running has presumably fixed the cause.
    activityLog(`Image ${spec.name} in ${vpc.region} failed earlier (${reasons(image)}); deleting it to import again.`);
    await vpc.deleteImage(image.id, signal);
    throw new Error(`ibmcloud: image ${spec.name} (${image.id}) in ${vpc.region} had failed earlier and is being deleted; importing again on retry`);
  }
  if (image?.status === 'deleting')
    throw new Error(`ibmcloud: image ${spec.name} (${image.id}) in ${vpc.region} is being deleted; importing again on retry`);
  if (image) activityLog(`Found image ${spec.name} (${image.id}, ${image.status}) in ${vpc.region}.`);
  else {
    activityLog(`Importing ${spec.href} as image ${spec.name} in ${vpc.region}…`);
    image = await vpc.createImage(
      {
        name: spec.name,
        operating_system: { name: spec.operatingSystem },
        file: { href: spec.href },
        ...(spec.resourceGroup ? { resource_group: { id: spec.resourceGroup } } : {}),
      },
      signal,
    );
  }
  const id = image.id;
  const last = image;
  const done = await pollUntil(
    async () => {
      const i = (await vpc.getImage(id, signal)) ?? { ...last, status: 'gone' };
      opts.onStatus(i);
      return i.status !== 'pending' ? i : undefined;
    },
    {
      describe: `image ${spec.name} (${id}) in ${vpc.region} to be available`,
      intervalMs: opts.intervalMs,
      timeoutMs: opts.timeoutMs,
      signal,
      transientErrors: TRANSIENT_POLL_ERRORS,
    },
  );
  if (done.status === 'available' || done.status === 'deprecated') return done;
  if (done.status === 'gone') throw new Error(`ibmcloud: image ${spec.name} (${id}) in ${vpc.region} disappeared while importing; importing again on retry`);
  const why = reasons(done);
  if (done.status === 'failed') await vpc.deleteImage(id, signal).catch(() => undefined);
  throw ApplicationFailure.nonRetryable(
    `ibmcloud: import of ${spec.href} as image ${spec.name} in ${vpc.region} ended ${done.status}${why ? `: ${why}` : ''}; ` +
      `check that the file is a bootable qcow2 or vhd and that ${opts.field}.operatingSystem (${spec.operatingSystem}) matches it`,
    FailureType.IbmImportFailed,
  );
}
