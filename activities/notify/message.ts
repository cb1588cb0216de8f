// What a notification says. One event, rendered as the JSON body consumers parse, or as one line of text for chat.
import type { ReleaseEvent } from '../types';

export type { ReleaseEvent };

export function summaryLine(e: ReleaseEvent): string {
  const what = `${e.definition} release ${e.releaseId} (${e.arches.join(', ')})`;
  const link = e.url ? ` ${e.url}` : '';
  switch (e.event) {
    case 'awaiting-approval':
      return `${what} awaits approval: ${e.candidates?.length ?? 0} candidate images.${link}`;
    case 'activated':
      return `${what} is activated${e.by ? `, approved by ${e.by}` : ''}.${link}`;
    case 'rejected':
      return `${what} was rejected${e.by ? ` by ${e.by}` : ''}.${link}`;
    case 'failed':
      return `${what} failed: ${e.error ?? 'see the release'}.${link}`;
    case 'cancelled':
      return `${what} was cancelled.${link}`;
    case 'trigger-started':
      return `${what} started: ${e.reason ?? 'trigger'}.${link}`;
    case 'trigger-skipped':
      return `${e.definition}: no release started: ${e.reason ?? 'nothing changed'}.`;
  }
}

/** The webhook body per format: our JSON, Slack's incoming-webhook `{text}`, a Matrix `m.text` message. */
export function webhookBody(format: 'json' | 'slack' | 'matrix', e: ReleaseEvent): unknown {
  if (format === 'slack') return { text: summaryLine(e) };
  if (format === 'matrix') return { msgtype: 'm.text', body: summaryLine(e) };
  return { ...e, summary: summaryLine(e) };
}
