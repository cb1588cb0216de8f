// A push webhook for forges: `POST /trigger/<definition>` runs one source-change check (at most one release per
// change), so a push that touches the Containerfile starts a release within seconds instead of at the next poll.
// The request must prove it knows the shared secret: GitHub, Forgejo and Gitea sign the body
// (`X-Hub-Signature-256: sha256=<HMAC>`), GitLab sends the token itself (`X-Gitlab-Token`).
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { NAME_PATTERN } from '../config/fields';
import type { TriggerInput, TriggerResult } from '../workflows/messages';

export interface WebhookOptions {
  host: string;
  port: number;
  secret: string;
  check(input: TriggerInput): Promise<TriggerResult>;
  log?(line: string): void;
}

const MAX_BODY = 1 << 20;

const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export function authentic(secret: string, headers: http.IncomingHttpHeaders, body: Buffer): boolean {
  const signature = headers['x-hub-signature-256'];
  if (typeof signature === 'string') return same(signature, `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  const token = headers['x-gitlab-token'];
  return typeof token === 'string' && same(token, secret);
}

export async function startTriggerWebhook(o: WebhookOptions): Promise<{ address: string; close(): Promise<void> }> {
  const log = o.log ?? ((line: string) => console.log(line));
  const server = http.createServer((req, res) => {
    const answer = (status: number, value: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
    const m = /^\/trigger\/([^/?]+)$/.exec(req.url ?? '');
    if (req.method !== 'POST' || !m) return answer(404, { error: 'POST /trigger/<definition>' });
    const definition = decodeURIComponent(m[1]!);
    if (!NAME_PATTERN.test(definition)) return answer(400, { error: 'not a definition name' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      if (!authentic(o.secret, req.headers, Buffer.concat(chunks))) {
        log(`webhook: refused a request for ${definition} from ${req.socket.remoteAddress}: bad or missing signature`);
        return answer(401, { error: 'bad or missing signature' });
      }
      o.check({ definition, mode: 'source-change', by: 'webhook' }).then(
        (result) => {
          log(`webhook: ${definition}: ${result.started ? `started ${result.started}` : 'nothing started'}: ${result.reason}`);
          answer(result.started ? 201 : 200, result);
        },
        (err: Error) => {
          log(`webhook: ${definition}: check failed: ${err.message}`);
          answer(502, { error: `the trigger check failed: ${err.message}` });
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`--listen: ${o.host}:${o.port} is already in use`) : err),
    );
    server.listen(o.port, o.host, resolve);
  });
  const { port } = server.address() as { port: number };
  return { address: `http://${o.host}:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}
