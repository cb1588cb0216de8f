// Retention at an openstack target (docs/retention.md): the definition's Glance images, found by the bootc-release
// tag and their name, with the release id and arch from the properties the publish set. Glance cannot tell whether
// a server boots from an image (that is Nova's), so nothing here answers "in use".
import type { Arch } from '../../config/schema';
import type { PublishedImage } from '../types';
import { parseImageName } from '../retention/names';
import type { GlanceClient } from './glance';

const GONE = new Set(['deleted', 'pending_delete', 'killed']);

/** Same names as the publish (`PROPS`, `TAG` in target.ts): a property holds the release id, a tag marks ours. */
export async function listGlanceImages(
  glance: GlanceClient,
  props: { releaseId: string; arch: string; sha256: string },
  tag: string,
  targetName: string,
  definition: string,
  signal?: AbortSignal,
): Promise<PublishedImage[]> {
  const found: PublishedImage[] = [];
  for (const img of await glance.listTagged(tag, signal)) {
    const parsed = parseImageName(definition, img.name);
    if (!parsed || GONE.has(img.status)) continue;
    const releaseId = img[props.releaseId];
    const createdAt = img.created_at;
    found.push({
      arch: ((img[props.arch] as string | undefined) ?? parsed.arch) as Arch,
      target: targetName,
      kind: 'openstack',
      imageId: img.id,
      name: img.name,
      type: img.disk_format === 'qcow2' ? 'qcow2' : 'raw',
      size: img.size ?? 0,
      sha256: typeof img[props.sha256] === 'string' ? (img[props.sha256] as string) : '',
      imageName: img.name,
      ...(typeof releaseId === 'string' ? { releaseId } : {}),
      ...(typeof createdAt === 'string' ? { createdAt: new Date(createdAt).toISOString() } : {}),
    });
  }
  return found;
}
