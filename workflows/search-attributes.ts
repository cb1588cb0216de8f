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

const KEYS = [releaseNameKey, releaseStageKey, releaseArchesKey, releaseTriggerKey, releaseSourceDigestKey];
/** The type names `temporal server start-dev --search-attribute Name=Type` and `operator search-attribute create` take. */
const CLI_TYPE = { [SearchAttributeType.KEYWORD]: 'Keyword', [SearchAttributeType.KEYWORD_LIST]: 'KeywordList' } as const;

/** Name → type of every search attribute above, to register them on the dev server and a production namespace. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'KeywordList'> = Object.fromEntries(KEYS.map((k) => [k.name, CLI_TYPE[k.type]]));
