// Search attributes the release workflows set, so the Temporal UI can list releases by name and stage.
// The same table registers them on the dev server, the test rig and a production namespace.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const releaseNameKey = defineSearchAttributeKey('BootcReleaseName', SearchAttributeType.KEYWORD);
export const releaseStageKey = defineSearchAttributeKey('BootcReleaseStage', SearchAttributeType.KEYWORD);
export const releaseArchesKey = defineSearchAttributeKey('BootcReleaseArches', SearchAttributeType.KEYWORD_LIST);

/** Name → type as `temporal server start-dev --search-attribute Name=Type` and `operator search-attribute create` take it. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'KeywordList'> = {
  BootcReleaseName: 'Keyword',
  BootcReleaseStage: 'Keyword',
  BootcReleaseArches: 'KeywordList',
};
