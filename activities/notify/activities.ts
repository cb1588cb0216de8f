// Sends one release event to every notification sink of a definition. Sinks that took the event are remembered in
// the heartbeat details, so a retry (after a sink failed, or the worker died) sends only to the others. A failed
// sink is retried by Temporal; the release itself never waits on it (workflows/notify.ts).
import { heartbeat, previousDetails } from '../runtime/heartbeat';
import { ApplicationFailure } from '@temporalio/common';
import { connect } from 'amqplib';
import type { Notification } from '../../config/notifications';
import { type ReleaseEvent, webhookBody } from './message';
import { FailureType } from '../failures';

export interface NotifyDeps {
  /** Where urlEnv/tokenEnv are looked up: the worker's environment. */
  env: NodeJS.ProcessEnv;
  /** Temporal Web UI base address, for links in messages (BOOTC_RELEASE_UI_URL). */
  uiAddress?: string;
  namespace?: string;
  timeoutMs?: number;
}

export interface NotifyRequest {
  notifications: Notification[];
  event: ReleaseEvent;
}

export interface NotifyResult {
  /** Indexes of the notifications that took the event (this attempt or an earlier one). */
  delivered: number[];
  skipped: number[];
}

/** A sink's label for errors and logs: its kind and the variable name, never the address itself. */
const label = (n: Notification, i: number) =>
  `notifications[${i}] (${n.kind}${n.kind === 'webhook' && n.url ? ` ${new URL(n.url).host}` : n.urlEnv ? ` from $${n.urlEnv}` : ''})`;

function secret(env: NodeJS.ProcessEnv, name: string, field: string): string {
  const value = env[name];
  if (!value) throw ApplicationFailure.nonRetryable(`${field}: environment variable ${name} is not set on the worker`, FailureType.Config);
  return value;
}

export function createNotifyActivities(deps: NotifyDeps) {
  const timeoutMs = deps.timeoutMs ?? 15_000;

  async function webhook(n: Extract<Notification, { kind: 'webhook' }>, i: number, event: ReleaseEvent): Promise<void> {
    const url = n.url ?? secret(deps.env, n.urlEnv!, `notifications[${i}].urlEnv`);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'bootc-release' };
    if (n.tokenEnv) headers.authorization = `Bearer ${secret(deps.env, n.tokenEnv, `notifications[${i}].tokenEnv`)}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(webhookBody(n.format, event)),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      // fetch's own message can quote the URL; say what failed without it.
      throw new Error(`${label(n, i)}: could not deliver (${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).name})`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429)
      throw ApplicationFailure.nonRetryable(`${label(n, i)}: refused with HTTP ${res.status}; check the webhook's address and token`, FailureType.Config);
    if (!res.ok) throw new Error(`${label(n, i)}: HTTP ${res.status}`);
  }

  async function amqp(n: Extract<Notification, { kind: 'amqp' }>, i: number, event: ReleaseEvent): Promise<void> {
    const url = secret(deps.env, n.urlEnv, `notifications[${i}].urlEnv`);
    let conn: Awaited<ReturnType<typeof connect>> | undefined;
    try {
      conn = await connect(url, { timeout: timeoutMs });
      conn.on('error', () => undefined); // reported through the awaited calls below
      const channel = await conn.createConfirmChannel();
      await channel.assertExchange(n.exchange, 'topic', { durable: true });
      channel.publish(n.exchange, `${n.topicPrefix}.release.${event.event}`, Buffer.from(JSON.stringify(webhookBody('json', event))), {
        contentType: 'application/json',
        persistent: true,
        // Consumers can drop a repeat: a retry after a lost confirm publishes the same id again.
        messageId: `${event.releaseId}:${event.event}`,
        timestamp: Math.floor(Date.parse(event.at) / 1000),
        appId: 'bootc-release',
      });
      await channel.waitForConfirms();
    } catch (err) {
      // amqplib's errors may quote the URL with its password: keep only the kind of failure.
      const code = (err as { code?: string }).code;
      throw new Error(`${label(n, i)}: could not publish (${code ?? (err as Error).name})`);
    } finally {
      await conn?.close().catch(() => undefined);
    }
  }

  return {
    async notifyRelease(req: NotifyRequest): Promise<NotifyResult> {
      const done = new Set<number>(previousDetails<{ delivered?: number[] }>()?.delivered ?? []);
      const event: ReleaseEvent = deps.uiAddress
        ? { ...req.event, url: `${deps.uiAddress.replace(/\/$/, '')}/namespaces/${deps.namespace ?? 'default'}/workflows/${req.event.releaseId}` }
        : req.event;
      const skipped: number[] = [];
      const failures: Error[] = [];
      for (const [i, n] of req.notifications.entries()) {
        if (!n.events.includes(event.event)) {
          skipped.push(i);
          continue;
        }
        if (done.has(i)) continue;
        try {
          await (n.kind === 'webhook' ? webhook(n, i, event) : amqp(n, i, event));
          done.add(i);
          heartbeat({ delivered: [...done] });
        } catch (err) {
          failures.push(err as Error);
        }
      }
      if (failures.length) {
        const message = failures.map((f) => f.message).join('; ');
        // Every sink was tried; a retry helps only if no failure was a refusal that would repeat.
        if (failures.some((f) => f instanceof ApplicationFailure && f.nonRetryable)) throw ApplicationFailure.nonRetryable(message, FailureType.Config);
        throw new Error(message);
      }
      return { delivered: [...done].sort((a, b) => a - b), skipped };
    },
  };
}
export type NotifyActivities = ReturnType<typeof createNotifyActivities>;
