// Notifications to a real HTTP receiver on loopback and a real RabbitMQ (Debian's rabbitmq-server, AMQP 0-9-1).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Notification } from '../../config/notifications';
import { createNotifyActivities } from '../../activities/notify/activities';
import type { ReleaseEvent } from '../../activities/notify/message';
import { startRabbitMq, type RabbitMq } from '../../scripts/servers/rabbitmq';
import { freePort } from '../../scripts/servers/tools';

const rig = inject('rig');
const SECRET = 'T0KEN-s3cr3t-9f8e7d';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** Answers with the next status of `statuses` (then 204) and records what it received. */
async function receiver(statuses: number[] = []) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ path: req.url!, headers: req.headers, body: JSON.parse(body) });
      res.writeHead(statuses.shift() ?? 204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { got, base, close: () => new Promise((r) => server.close(r)) };
}

const event = (over: Partial<ReleaseEvent> = {}): ReleaseEvent => ({
  event: 'awaiting-approval',
  releaseId: 'copr-builder-20261129-120000',
  definition: 'copr-builder',
  arches: ['x86_64', 's390x'],
  stage: 'awaiting-approval',
  at: '2026-11-29T12:00:00.000Z',
  candidates: [{ arch: 'x86_64', target: 'aws-prod', imageId: 'ami-0123', region: 'us-east-1' }],
  ...over,
});
const sinks = (...n: unknown[]) => n.map((x) => Notification.parse(x));

describe('notifications', () => {
  it('posts the release event as JSON, with a link to the release in the Web UI', async () => {
    const r = await receiver();
    try {
      const notify = createNotifyActivities({ env: {}, uiAddress: 'http://ui.example:8080/', namespace: 'copr' });
      const result = await notify.notifyRelease({ notifications: sinks({ kind: 'webhook', url: `${r.base}/hook` }), event: event() });
      expect(result).toEqual({ delivered: [0], skipped: [] });
      expect(r.got).toHaveLength(1);
      expect(r.got[0]!.body).toMatchObject({
        event: 'awaiting-approval',
        releaseId: 'copr-builder-20261129-120000',
        candidates: [{ imageId: 'ami-0123' }],
        url: 'http://ui.example:8080/namespaces/copr/workflows/copr-builder-20261129-120000',
      });
      expect(r.got[0]!.body.summary).toMatch(/copr-builder release .* awaits approval: 1 candidate images/);
    } finally {
      await r.close();
    }
  });

  it('speaks Slack and Matrix bodies, sends a bearer token from the environment, and skips events a sink did not ask for', async () => {
    const r = await receiver();
    try {
      const notify = createNotifyActivities({ env: { HOOK_TOKEN: SECRET } });
      const result = await notify.notifyRelease({
        notifications: sinks(
          { kind: 'webhook', url: `${r.base}/slack`, format: 'slack' },
          { kind: 'webhook', url: `${r.base}/matrix`, format: 'matrix', tokenEnv: 'HOOK_TOKEN' },
          { kind: 'webhook', url: `${r.base}/failures-only`, events: ['failed'] },
        ),
        event: event({ event: 'activated', stage: 'activated', by: 'copr-admin' }),
      });
      expect(result).toEqual({ delivered: [0, 1], skipped: [2] });
      expect(r.got.map((g) => g.path)).toEqual(['/slack', '/matrix']);
      expect(r.got[0]!.body).toEqual({ text: expect.stringMatching(/is activated, approved by copr-admin/) });
      expect(r.got[1]!.body).toEqual({ msgtype: 'm.text', body: expect.stringMatching(/is activated/) });
      expect(r.got[1]!.headers.authorization).toBe(`Bearer ${SECRET}`);
    } finally {
      await r.close();
    }
  });

  it('on a retry sends only to the sinks that had not taken the event', async () => {
    const r = await receiver([503]);
    try {
      const notify = createNotifyActivities({ env: {} });
      const notifications = sinks({ kind: 'webhook', url: `${r.base}/a` }, { kind: 'webhook', url: `${r.base}/b` });
      const first = new MockActivityEnvironment();
      const beats: unknown[] = [];
      first.on('heartbeat', (d: unknown) => beats.push(d));
      await expect(first.run(() => notify.notifyRelease({ notifications, event: event() }))).rejects.toThrow(/notifications\[0\].*HTTP 503/);
      expect(beats.at(-1)).toEqual({ delivered: [1] });

      const retry = new MockActivityEnvironment({ heartbeatDetails: beats.at(-1) });
      expect(await retry.run(() => notify.notifyRelease({ notifications, event: event() }))).toEqual({ delivered: [0, 1], skipped: [] });
      expect(r.got.map((g) => g.path)).toEqual(['/a', '/b', '/a']);
    } finally {
      await r.close();
    }
  });

  it('never says the secret address of a webhook it could not reach, and does not retry a refusal', async () => {
    const port = await freePort();
    const notify = createNotifyActivities({ env: { SLACK_HOOK: `http://127.0.0.1:${port}/services/${SECRET}` } });
    const down = notify.notifyRelease({ notifications: sinks({ kind: 'webhook', urlEnv: 'SLACK_HOOK', format: 'slack' }), event: event() });
    await expect(down).rejects.toThrow(/notifications\[0\] \(webhook from \$SLACK_HOOK\): could not deliver/);
    await expect(down).rejects.not.toThrow(new RegExp(SECRET));

    const r = await receiver([404]);
    try {
      const refused = createNotifyActivities({ env: { SLACK_HOOK: `${r.base}/services/${SECRET}` } }).notifyRelease({
        notifications: sinks({ kind: 'webhook', urlEnv: 'SLACK_HOOK' }),
        event: event(),
      });
      const err = await refused.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).nonRetryable).toBe(true);
      expect((err as Error).message).toMatch(/HTTP 404/);
      expect((err as Error).message).not.toContain(SECRET);
    } finally {
      await r.close();
    }
  });

  it('refuses, at validation, a webhook with both or neither of url and urlEnv', () => {
    expect(Notification.safeParse({ kind: 'webhook' }).success).toBe(false);
    expect(Notification.safeParse({ kind: 'webhook', url: 'https://a.example/h', urlEnv: 'X' }).success).toBe(false);
  });

  describe('on an AMQP topic exchange (real RabbitMQ)', () => {
    let rabbit: RabbitMq;
    beforeAll(async () => {
      rabbit = await startRabbitMq(path.join(rig.dir, 'rabbitmq'));
    }, 120_000);
    afterAll(async () => {
      await rabbit?.stop();
    });

    it('publishes a persistent JSON message under <prefix>.release.<event>, which a bound queue receives', async () => {
      const conn = await connect(rabbit.url);
      try {
        const ch = await conn.createChannel();
        await ch.assertExchange('amq.topic', 'topic', { durable: true });
        const { queue } = await ch.assertQueue('', { exclusive: true });
        await ch.bindQueue(queue, 'amq.topic', 'org.example.bootc-release.#');

        const notify = createNotifyActivities({ env: { BUS_URL: rabbit.url } });
        const result = await notify.notifyRelease({
          notifications: sinks({ kind: 'amqp', urlEnv: 'BUS_URL', topicPrefix: 'org.example.bootc-release' }),
          event: event({ event: 'failed', stage: 'failed', error: 's390x: no space left on /var/tmp' }),
        });
        expect(result.delivered).toEqual([0]);

        let msg: Awaited<ReturnType<typeof ch.get>> = false;
        for (let i = 0; i < 50 && !msg; i++) {
          msg = await ch.get(queue, { noAck: true });
          if (!msg) await new Promise((r) => setTimeout(r, 100));
        }
        expect(msg).not.toBe(false);
        if (!msg) return;
        expect(msg.fields.routingKey).toBe('org.example.bootc-release.release.failed');
        expect(msg.properties).toMatchObject({ contentType: 'application/json', deliveryMode: 2, messageId: 'copr-builder-20261129-120000:failed' });
        expect(JSON.parse(msg.content.toString())).toMatchObject({ event: 'failed', error: 's390x: no space left on /var/tmp' });
      } finally {
        await conn.close();
      }
    });

    it('reports a refused login without the password', async () => {
      const url = rabbit.url.replace('guest:guest', `guest:${SECRET}`);
      const notify = createNotifyActivities({ env: { BUS_URL: url } });
      const err = (await notify
        .notifyRelease({ notifications: sinks({ kind: 'amqp', urlEnv: 'BUS_URL' }), event: event() })
        .catch((e: unknown) => e)) as Error;
      expect(err.message).toMatch(/notifications\[0\] \(amqp from \$BUS_URL\): could not publish/);
      expect(err.message).not.toContain(SECRET);
    });
  });
});
