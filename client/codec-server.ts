// `bootc-release codec-server`: the remote codec the Temporal Web UI (`temporal server start-dev --ui-codec-endpoint
// URL`, or the UI's `TEMPORAL_CODEC_ENDPOINT`) and the temporal CLI (`--codec-endpoint URL`) call to show encrypted
// payloads decoded. POST /decode and POST /encode take and answer Temporal's codec server JSON,
// {"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}. The UI calls it from the browser, so
// the UI's origin must be allowed (CORS); with a token, every request must carry `Authorization: Bearer <token>`.
// It logs requests, never payloads or keys.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Origins whose pages may call it (the Web UI's, e.g. http://localhost:8233). */
  origins: string[];
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** One line per request (method, path, status), for the operator. */
  log?: (line: string) => void;
}

const MAX_BODY = 64 * 2 ** 20;

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))])),
  data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function body(req: IncomingMessage): Promise<{ payloads: JsonPayload[] }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  const payloads = (parsed as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(payloads)) throw new HttpError(400, 'body must be {"payloads": [...]}');
  return { payloads: payloads as JsonPayload[] };
}

function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return true;
  const given = Buffer.from(req.headers.authorization ?? '');
  const wanted = Buffer.from(`Bearer ${token}`);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** CORS for the allowed origins: the browser asks first (OPTIONS), then sends the POST with the UI's headers. */
function allowOrigin(req: IncomingMessage, res: ServerResponse, origins: string[]): boolean {
  const origin = req.headers.origin;
  if (!origin) return true;
  if (!origins.includes(origin)) return false;
  res.setHeader('Access-Control-Allow-Origin', origin);
  res.setHeader('Access-Control-Allow-Credentials', 'true');
  res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
  // The UI sends Content-Type and X-Namespace (and Authorization when it passes its access token); what its
  // preflight asks for is what it will send.
  res.setHeader('Access-Control-Allow-Headers', req.headers['access-control-request-headers'] ?? 'Content-Type, X-Namespace, Authorization');
  res.setHeader('Vary', 'Origin');
  return true;
}

interface Answer {
  status: number;
  body?: unknown;
}

async function handle(o: CodecServerOptions, req: IncomingMessage, res: ServerResponse): Promise<Answer> {
  const allowed = allowOrigin(req, res, o.origins);
  if (req.method === 'OPTIONS') return { status: allowed ? 204 : 403 };
  // `/decode`, or `/<namespace>/decode` where a client templates the endpoint with `{namespace}`: one key serves all.
  const route = /^(?:\/[^/]+)?\/(decode|encode)\/?$/.exec(new URL(req.url ?? '/', 'http://codec').pathname)?.[1];
  if (req.method !== 'POST' || !route) throw new HttpError(404, 'POST /decode or /encode');
  if (!allowed) throw new HttpError(403, `origin ${req.headers.origin} is not allowed`);
  if (!authorized(req, o.token)) throw new HttpError(401, 'missing or wrong Authorization: Bearer token');
  const input = (await body(req)).payloads.map(fromJson);
  try {
    const output = route === 'decode' ? await o.codec.decode(input) : await o.codec.encode(input);
    return { status: 200, body: { payloads: output.map(toJson) } };
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
}

async function respond(o: CodecServerOptions, req: IncomingMessage, res: ServerResponse): Promise<number> {
  let answer: Answer;
  try {
    answer = await handle(o, req, res);
  } catch (err) {
    answer = { status: err instanceof HttpError ? err.status : 500, body: { error: err instanceof HttpError ? err.message : 'internal error' } };
  }
  res.writeHead(answer.status, answer.body ? { 'Content-Type': 'application/json' } : {});
  res.end(answer.body ? JSON.stringify(answer.body) : undefined);
  return answer.status;
}

export function createCodecServer(o: CodecServerOptions): Server {
  return createServer((req, res) => {
    void respond(o, req, res).then((status) => o.log?.(`${req.method} ${req.url} ${status}`));
  });
}

/** Listens on host:port; resolves with the server once it accepts connections. */
export async function listenCodecServer(listen: string, o: CodecServerOptions): Promise<Server> {
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen: "${listen}" is not HOST:PORT`);
  const server = createCodecServer(o);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), m[1]!.replace(/^\[|\]$/g, ''), resolve);
  });
  return server;
}

export const serverAddress = (server: Server) => {
  const a = server.address() as AddressInfo;
  return `${a.address}:${a.port}`;
};
