// The field types the release definition is made of. Each refuses, with the reason, a value that would reach a
// shell unquoted, hang a workflow, or carry a credential into the workflow's history.
import { z } from 'zod';
import { DURATION, durationMs, type Duration } from './duration';

/** Anything that ends up in a resource name, a tag or a remote shell command. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const name = () =>
  z.string().regex(NAME_PATTERN, 'must be 1-63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit');

/** Host names and addresses that reach ssh/virsh command lines. */
export const hostName = () =>
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/, 'must be a host name or an IP address');

/** Absolute paths that reach remote shells: no spaces, quotes or shell metacharacters. */
export const absPath = () =>
  z.string().regex(/^\/[A-Za-z0-9._@%+=:,/-]*$/, 'must be an absolute path of letters, digits and ._@%+=:,/-');

/** Environment variable names: credentials are referenced by name and resolved on the worker. */
export const envName = () => z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name (A-Z, 0-9, _)');

export { durationMs };

/**
 * Durations as Temporal and the `ms` package read them: 90s, 30m, 6h, 7d. Each field has an upper bound: a timer or
 * timeout beyond what Temporal accepts fails the workflow task, which Temporal then retries forever. Typed as the
 * shared `Duration` (config/duration.ts): the cast names what the pattern has checked, which zod cannot infer.
 */
export const duration = (max: Duration) =>
  z
    .string()
    .regex(DURATION, 'must be a duration like 90s, 30m, 6h or 7d')
    .refine((v) => !DURATION.test(v) || durationMs(v) <= durationMs(max), `must be at most ${max}`)
    .meta({ description: `a duration like 90s, 30m, 6h or 7d; at most ${max}` }) as unknown as z.ZodType<Duration, string>;

/**
 * Schemes whose user part is a login name, not a credential (`ssh://git@pagure.io/...`); everywhere else a user part is
 * where a token gets pasted (`https://bot:ghp_...@host`).
 */
const LOGIN_SCHEMES = /^(ssh|git\+ssh|ssh\+git|[a-z0-9]+\+ssh):$/;

/** True when value parses as a URL that carries a password, or a user name outside an SSH scheme. */
export function carriesUserInfo(value: string): boolean {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return false;
  }
  return !!u.password || (!!u.username && !LOGIN_SCHEMES.test(u.protocol));
}

export const USER_INFO_MESSAGE = 'must not carry user info (user:token@); reference credentials by env var name';

/** Refuses user info in any string that may be a URL (git remotes, libvirt URIs); the value is never echoed. */
export const noUserInfo = <T extends z.ZodType<string>>(schema: T) =>
  schema.refine((v) => !carriesUserInfo(v), USER_INFO_MESSAGE);

/** Every URL field of the definition: http(s) endpoints, with no credentials in them. */
export const url = () => noUserInfo(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }));

/**
 * A list where a repeated entry is a mistake (two copies of one region, host, target...). `key` says when two
 * entries are the same; the second one is reported, with the path of its index.
 */
export const unique = <T extends z.ZodType>(item: T, key: (v: z.output<T>) => string = (v) => String(v)) =>
  z.array(item).superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((v, i) => {
      const k = key(v);
      if (seen.has(k)) ctx.addIssue({ code: 'custom', path: [i], message: `"${k}" is listed twice` });
      seen.add(k);
    });
  }).meta({ uniqueItems: true });
