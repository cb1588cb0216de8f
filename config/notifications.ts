// Where a release tells people what happened: a webhook (plain JSON, or a Slack- or Matrix-compatible body) and an
// AMQP topic exchange (what Fedora's message bus speaks). Addresses that carry a secret (a Slack webhook's path, an
// AMQP URL with its password, a bearer token) are named by environment variable and resolved on the worker.
import { z } from 'zod';
import { envName, unique, url } from './fields';

export const NOTIFY_EVENTS = [
  'awaiting-approval',
  'activated',
  'rejected',
  'failed',
  'cancelled',
  'trigger-started',
  'trigger-skipped',
] as const;
export const NotifyEvent = z.enum(NOTIFY_EVENTS);
export type NotifyEvent = z.infer<typeof NotifyEvent>;

const events = () => unique(NotifyEvent).min(1).default(['awaiting-approval', 'activated', 'rejected', 'failed']);

export const Notification = z.discriminatedUnion('kind', [
  z
    .strictObject({
      kind: z.literal('webhook'),
      /** A URL without secrets, or urlEnv naming a variable that holds one (Slack's webhook URLs are secrets). */
      url: url().optional(),
      urlEnv: envName().optional(),
      /** Sent as `Authorization: Bearer …` (a Matrix access token, a forge's token). */
      tokenEnv: envName().optional(),
      format: z.enum(['json', 'slack', 'matrix']).default('json'),
      events: events(),
    })
    .refine((n) => Boolean(n.url) !== Boolean(n.urlEnv), { message: 'give exactly one of url and urlEnv', path: ['url'] }),
  z.strictObject({
    kind: z.literal('amqp'),
    /** amqp(s)://user:password@host/vhost, read from this variable on the worker. */
    urlEnv: envName(),
    exchange: z.string().min(1).default('amq.topic'),
    /** Routing key prefix; the key is `<prefix>.release.<event>`, e.g. org.fedoraproject.prod.bootc-release.release.activated */
    topicPrefix: z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'dot-separated words').default('bootc-release'),
    events: events(),
  }),
]);
export type Notification = z.infer<typeof Notification>;
