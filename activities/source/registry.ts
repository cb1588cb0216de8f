// Reads an image's manifest digest from its registry (the OCI distribution API), as `skopeo inspect` would, without
// pulling anything: a HEAD on /v2/<repository>/manifests/<tag>, with the anonymous bearer-token dance public
// registries (quay.io, docker.io) ask for. Registries listed as plain-HTTP are the local ones of a test rig.

export interface ImageRef {
  registry: string;
  repository: string;
  /** A tag, or a digest when the reference pins one. */
  reference: string;
}

/** `fedora:42` → docker.io/library/fedora:42; `quay.io/fedora/fedora-bootc:42`; `host:5000/a/b@sha256:…`. */
export function parseImageRef(ref: string): ImageRef {
  let rest = ref;
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  const first = rest.split('/')[0]!;
  const hasRegistry = rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registry = hasRegistry ? first : 'docker.io';
  let repository = hasRegistry ? rest.slice(first.length + 1) : rest;
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  return { registry, repository, reference };
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface RegistryOptions {
  /** host:port of registries spoken to over plain HTTP (a local registry). */
  plainHttp?: string[];
  timeoutMs?: number;
}

/** The digest the registry serves for ref now (sha256:…): a multi-arch index's own digest when it has one. */
export async function manifestDigest(ref: string, opts: RegistryOptions = {}): Promise<string> {
  const image = parseImageRef(ref);
  if (image.reference.startsWith('sha256:')) return image.reference;
  const host = image.registry === 'docker.io' ? 'registry-1.docker.io' : image.registry;
  const scheme = opts.plainHttp?.includes(image.registry) ? 'http' : 'https';
  const url = `${scheme}://${host}/v2/${image.repository}/manifests/${image.reference}`;
  const signal = () => AbortSignal.timeout(opts.timeoutMs ?? 20_000);
  const head = (authorization?: string) =>
    fetch(url, { method: 'HEAD', headers: { accept: MANIFEST_TYPES, ...(authorization ? { authorization } : {}) }, signal: signal() });
  let res = await head();
  if (res.status === 401) {
    const token = await anonymousToken(res.headers.get('www-authenticate') ?? '', signal);
    if (token) res = await head(`Bearer ${token}`);
  }
  if (!res.ok) throw new Error(`${ref}: the registry answered HTTP ${res.status} for its manifest`);
  const digest = res.headers.get('docker-content-digest');
  if (!digest) throw new Error(`${ref}: the registry sent no Docker-Content-Digest`);
  return digest;
}

async function anonymousToken(challenge: string, signal: () => AbortSignal): Promise<string | undefined> {
  if (!/^Bearer /i.test(challenge)) return undefined;
  const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  if (!params.realm) return undefined;
  const u = new URL(params.realm);
  if (params.service) u.searchParams.set('service', params.service);
  if (params.scope) u.searchParams.set('scope', params.scope);
  const res = await fetch(u, { signal: signal() });
  if (!res.ok) return undefined;
  const body = (await res.json()) as { token?: string; access_token?: string };
  return body.token ?? body.access_token;
}
