// Retention at an ibmcloud target (docs/retention.md): the definition's VPC custom images in every region. The COS
// object each was imported from is keyed `<release id>/<image name>.<type>`, which ties an image to its release;
// an image whose object is gone is still found by its (plain) name. In use: an instance booted from it.
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { PublishedImage } from '../types';
import { vpcImageName } from '../naming';
import { parseImageName } from '../retention/names';
import { cosFailure, cosHref, cosRegionOf, type IbmCloudTarget } from './cos-upload';
import type { VpcClient, VpcInstance } from './vpc-client';

interface StagedObject {
  releaseId: string;
  imageName: string;
  type: string;
  href: string;
}

/** The definition's objects in the bucket, by the VPC image name each became. */
async function objectsByImage(s3: S3Client, target: IbmCloudTarget, definition: string, field: string): Promise<Map<string, StagedObject>> {
  const byName = new Map<string, StagedObject>();
  let ContinuationToken: string | undefined;
  do {
    let page;
    try {
      page = await s3.send(new ListObjectsV2Command({ Bucket: target.cosBucket, ContinuationToken }));
    } catch (err) {
      throw cosFailure(err, 'listing', target.cosBucket, field);
    }
    for (const o of page.Contents ?? []) {
      const m = /^([^/]+)\/(.+)\.([a-z0-9]+)$/.exec(o.Key ?? '');
      if (!m || !parseImageName(definition, m[2]!)) continue;
      byName.set(vpcImageName(m[2]!), { releaseId: m[1]!, imageName: m[2]!, type: m[3]!, href: cosHref(cosRegionOf(target), target.cosBucket, o.Key!) });
    }
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  return byName;
}

export async function listVpcImages(
  s3: S3Client,
  vpcs: VpcClient[],
  target: IbmCloudTarget,
  targetName: string,
  definition: string,
  signal?: AbortSignal,
): Promise<PublishedImage[]> {
  const field = `targets.${targetName}`;
  const objects = await objectsByImage(s3, target, definition, field);
  const found: PublishedImage[] = [];
  for (const vpc of vpcs)
    for (const image of await vpc.listImages(undefined, signal)) {
      if (image.status === 'deleting') continue;
      const object = objects.get(image.name);
      const parsed = parseImageName(definition, object?.imageName ?? image.name);
      if (!parsed) continue;
      const imageName = object?.imageName ?? `${definition}-${parsed.arch}-${parsed.stamp}${parsed.type ? `-${parsed.type}` : ''}`;
      found.push({
        arch: parsed.arch,
        target: targetName,
        kind: 'ibmcloud',
        region: vpc.region,
        imageId: image.id,
        name: image.name,
        type: object?.type === 'vhd' ? 'vhd' : 'qcow2',
        size: image.file?.size ?? 0,
        sha256: image.file?.checksums?.sha256 ?? '',
        ...(object ? { resources: [{ kind: 'cos-object', id: object.href, region: cosRegionOf(target) }], releaseId: object.releaseId } : {}),
        imageName,
        ...(image.created_at ? { createdAt: new Date(image.created_at).toISOString() } : {}),
      });
    }
  return found;
}

/** An instance in the image's region booted from it (the VPC API lists instances with their image). */
export async function vpcImageUser(vpc: VpcClient, image: PublishedImage, signal?: AbortSignal): Promise<string | undefined> {
  const users = (await vpc.listInstances(undefined, signal)).filter(
    (i) => (i as VpcInstance & { image?: { id: string } }).image?.id === image.imageId && i.status !== 'deleting',
  );
  if (!users.length) return undefined;
  const more = users.length > 1 ? ` and ${users.length - 1} more` : '';
  return `instance ${users[0]!.name} (${users[0]!.id}, ${users[0]!.status}) in ${vpc.region}${more}`;
}
