// The narrow Glance v2 surface bootc-release uses: list by name, create, upload data, get, delete. Errors are
// classified here: 401/403 are permission errors (non-retryable), 5xx and network failures are transient.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { ApplicationFailure } from '@temporalio/common';
import type { GlanceAuth } from './auth';
import { errorMessage } from './keystone';
import { FailureType } from '../failures';

export interface GlanceImage {
  id: string;
  name: string;
  status: 'queued' | 'saving' | 'uploading' | 'importing' | 'active' | 'killed' | 'deleted' | 'pending_delete' | 'deactivated';
  size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  owner: string;
  visibility: string;
  disk_format: string | null;
  tags: string[];
  updated_at: string;
  [property: string]: unknown;
}

export interface CreateImage {
  name: string;
  disk_format: 'raw' | 'qcow2';
  container_format: 'bare';
  visibility: string;
  tags: string[];
  /** Additional image properties (strings in Glance v2). */
  [property: string]: unknown;
}

export class GlanceClient {
  constructor(
    private readonly auth: GlanceAuth,
    /** Config path named in permission errors, e.g. `targets.osuosl`. */
    private readonly field: string,
  ) {}

  private async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const url = `${this.auth.imageUrl}${path}`;
    const headers: Record<string, string> = { Accept: 'application/json', ...(await this.auth.headers(signal)) };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(60_000)]) : AbortSignal.timeout(60_000),
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw new Error(`glance ${method} ${url}: ${(err as Error).message}`);
    }
    return res;
  }

  private async fail(res: Response, what: string): Promise<never> {
    const detail = await errorMessage(res);
    if (res.status === 401)
      throw ApplicationFailure.nonRetryable(`glance refused the credentials for ${what} (401: ${detail}); fix ${this.field} credentials`, FailureType.Permission);
    if (res.status === 403)
      throw ApplicationFailure.nonRetryable(`glance forbids ${what} for this project (403: ${detail}); the user needs the member role, see ${this.field}`, FailureType.Permission);
    if (res.status === 413)
      throw ApplicationFailure.nonRetryable(`glance refused ${what}: image too large or quota exceeded (413: ${detail})`, FailureType.GlanceQuota);
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 409 && res.status !== 429)
      throw ApplicationFailure.nonRetryable(`glance refused ${what} (${res.status}: ${detail})`, FailureType.GlanceRefused);
    throw new Error(`glance ${what}: ${res.status} ${detail}`);
  }

  /** Images of this name visible to the caller (Glance filters by exact name). */
  async findByName(name: string, signal?: AbortSignal): Promise<GlanceImage[]> {
    const q = new URLSearchParams({ name, limit: '100' });
    if (this.auth.projectId) q.set('owner', this.auth.projectId);
    const res = await this.request('GET', `/v2/images?${q}`, undefined, signal);
    if (!res.ok) await this.fail(res, `listing images named ${name}`);
    return ((await res.json()) as { images: GlanceImage[] }).images;
  }

  /** Every image with this tag visible to the caller, all pages (Glance filters by tag; `next` links the pages). */
  async listTagged(tag: string, signal?: AbortSignal): Promise<GlanceImage[]> {
    const q = new URLSearchParams({ tag, limit: '100' });
    if (this.auth.projectId) q.set('owner', this.auth.projectId);
    const images: GlanceImage[] = [];
    for (let next: string | undefined = `/v2/images?${q}`; next; ) {
      const res = await this.request('GET', next, undefined, signal);
      if (!res.ok) await this.fail(res, `listing images tagged ${tag}`);
      const page = (await res.json()) as { images: GlanceImage[]; next?: string };
      images.push(...page.images);
      next = page.next;
    }
    return images;
  }

  /** One page of the image list: what check() uses to prove the token and the endpoint work. */
  async probe(signal?: AbortSignal): Promise<void> {
    const res = await this.request('GET', '/v2/images?limit=1', undefined, signal);
    if (!res.ok) await this.fail(res, 'listing images');
    await res.arrayBuffer();
  }

  async get(id: string, signal?: AbortSignal): Promise<GlanceImage | undefined> {
    const res = await this.request('GET', `/v2/images/${encodeURIComponent(id)}`, undefined, signal);
    if (res.status === 404) return undefined;
    if (!res.ok) await this.fail(res, `reading image ${id}`);
    return (await res.json()) as GlanceImage;
  }

  async create(image: CreateImage, signal?: AbortSignal): Promise<GlanceImage> {
    const res = await this.request('POST', '/v2/images', image, signal);
    if (!res.ok) await this.fail(res, `creating image ${image.name}`);
    return (await res.json()) as GlanceImage;
  }

  async delete(id: string, signal?: AbortSignal): Promise<void> {
    const res = await this.request('DELETE', `/v2/images/${encodeURIComponent(id)}`, undefined, signal);
    if (res.status === 404 || res.status === 204 || res.ok) return;
    await this.fail(res, `deleting image ${id}`);
  }

  /**
   * PUT /v2/images/{id}/file, streamed from the file with its exact Content-Length (a cut connection leaves the
   * image `queued`, which the retry uploads again). Returns the hex digest of what was sent with `hashAlgo`.
   * Returns 'conflict' when Glance no longer takes data for this image (it is saving or active already).
   */
  async upload(
    id: string,
    file: { path: string; size: number },
    opts: { hashAlgo: string; onBytes?: (sent: number) => void; signal?: AbortSignal },
  ): Promise<{ digest: string } | 'conflict'> {
    const url = new URL(`${this.auth.imageUrl}/v2/images/${encodeURIComponent(id)}/file`);
    const headers = { ...(await this.auth.headers(opts.signal)), 'Content-Type': 'application/octet-stream', 'Content-Length': String(file.size) };
    const hash = createHash(opts.hashAlgo);
    const transport = url.protocol === 'https:' ? https : http;
    return await new Promise((resolve, reject) => {
      const req = transport.request(url, { method: 'PUT', headers, signal: opts.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status === 204 || (status >= 200 && status < 300)) return resolve({ digest: hash.digest('hex') });
          if (status === 409) return resolve('conflict');
          const body = Buffer.concat(chunks).toString();
          this.fail(new Response(body, { status }), `uploading data to image ${id}`).catch(reject);
        });
        res.on('error', reject);
      });
      req.on('error', (err) => reject(opts.signal?.aborted ? opts.signal.reason : new Error(`glance PUT ${url}: ${err.message}`)));
      const stream = createReadStream(file.path, { highWaterMark: 1 << 20 });
      let sent = 0;
      stream.on('data', (chunk) => {
        const buf = chunk as Buffer;
        hash.update(buf);
        sent += buf.length;
        opts.onBytes?.(sent);
      });
      stream.on('error', (err) => req.destroy(err));
      stream.pipe(req);
    });
  }
}
