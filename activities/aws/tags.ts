// Tags on everything bootc-release creates in AWS, and the filters that find it again after a retry.
import type { Filter, Tag } from '@aws-sdk/client-ec2';
import { TAGS } from '../types';

/** Tag keys that only the AWS module uses, next to the shared TAGS. */
export const AWS_TAGS = {
  ...TAGS,
  target: 'bootc-release:target',
  imageName: 'bootc-release:image-name',
  /** Set once CompleteSnapshot (or the import) finished: a snapshot without it is an upload still to resume. */
  upload: 'bootc-release:upload',
} as const;

export type TagMap = Record<string, string>;

export const toTags = (tags: TagMap): Tag[] => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
export const fromTags = (tags: Tag[] | undefined): TagMap =>
  Object.fromEntries((tags ?? []).filter((t) => t.Key).map((t) => [t.Key!, t.Value ?? '']));
export const tagFilters = (tags: TagMap): Filter[] => Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
