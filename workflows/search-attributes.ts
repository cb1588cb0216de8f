// Search attributes the release workflows set, so the Temporal UI can list releases by name and stage.
// The same table registers them on the dev server, the test rig and a production namespace.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const releaseNameKey = defineSearchAttributeKey('BootcReleaseName', SearchAttributeType.KEYWORD);
export const releaseStageKey = defineSearchAttributeKey('BootcReleaseStage', SearchAttributeType.KEYWORD);
export const releaseArchesKey = defineSearchAttributeKey('BootcReleaseArches', SearchAttributeType.KEYWORD_LIST);
/** What started a release: manual, always:<schedule>, source-change:<schedule|webhook>, inactivity:<schedule>. */
export const releaseTriggerKey = defineSearchAttributeKey('BootcReleaseTrigger', SearchAttributeType.KEYWORD);
/** The source fingerprint a triggered release was started for (activities/source/fingerprint.ts). */
export const releaseSourceDigestKey = defineSearchAttributeKey('BootcReleaseSourceDigest', SearchAttributeType.KEYWORD);

/** Name → type as `temporal server start-dev --search-attribute Name=Type` and `operator search-attribute create` take it. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'KeywordList'> = {
  BootcReleaseName: 'Keyword',
  BootcReleaseStage: 'Keyword',
  BootcReleaseArches: 'KeywordList',
  BootcReleaseTrigger: 'Keyword',
  BootcReleaseSourceDigest: 'Keyword',
};
