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

/** Paths on the worker (a directory target, an image map file, `host:/path`), relative to its working directory or absolute. */
export const workerPath = () =>
  z.string().regex(/^(?!-)[A-Za-z0-9._@%+=:,/~-]+$/, 'must be a path of letters, digits and ._@%+=:,/~- (no spaces, quotes or shell metacharacters), not starting with "-"');

/** Paths inside a checkout (Containerfile, build context, a file in a git repository): relative, and staying inside it. */
export const relativePath = () =>
  z
    .string()
    .regex(
      /^(?![-/])(?!(.*\/)?\.\.(\/|$))[A-Za-z0-9._/-]+$/,
      'must be a relative path of letters, digits and ._/-, without ".." and not starting with "-" or "/"',
    );

/** Branches, tags and commits: they reach `git` command lines, where a leading "-" would be read as an option. */
export const gitRef = () => z.string().regex(/^(?!-)[A-Za-z0-9._/-]+$/, 'must be a branch, tag or commit (letters, digits and ._/-, not starting with "-")');

/** Git repositories: a URL, an absolute path, or `user@host:path`; never an option (`--upload-pack=...`). */
export const gitRepository = () =>
  noUserInfo(
    z
      .string()
      .regex(
        /^(https?|ssh|git|file|git\+ssh|ssh\+git):\/\/[A-Za-z0-9._~@:/%+=,-]+$|^\/[A-Za-z0-9._@%+=:,/~-]+$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~-]+$/,
        'must be a git URL, an absolute path or user@host:path, with no spaces, quotes or shell metacharacters',
      ),
  );

/** Container image references (`quay.io/org/name:tag`, `name@sha256:...`): they reach podman command lines on builders. */
export const imageRef = () =>
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/, 'must be a container image reference (letters, digits and ._/:@-)');

/** One word of a command line the worker builds for a remote shell: no spaces, quotes, shell metacharacters or newlines. */
export const plainWord = () =>
  z.string().regex(/^[A-Za-z0-9=._/:,@%+-]+$/, 'must be a plain word of letters, digits and =._/:,@%+- (no spaces, quotes or shell metacharacters)');

/** SSH login names. */
export const sshUser = () => z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a user name');

/** One public host key line as ssh-keyscan prints it after the host name: `ssh-ed25519 AAAA...` (a comment may follow). */
export const hostKey = () =>
  z
    .string()
    .regex(
      /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( \P{Cc}*)?$/u,
      'must be one host key line like "ssh-ed25519 AAAA..."',
    );

const PROGRAM = /^(?!-)[A-Za-z0-9._/+-]+$/;

/**
 * A command the worker runs itself (a builder provider's acquire/wait/release, an activation hook): argv, executed
 * without a shell, so a ";" or "$(...)" in an argument is handed to the program as it is, never interpreted by the
 * worker. The program must be a plain name or path, and no argument may hold a newline or another control character
 * (one line each, as logs and `ps` show them; a longer script belongs in a file the command names).
 */
export const argv = () =>
  z
    .array(z.string().min(1).regex(/^\P{Cc}+$/u, 'must be one line of text (no newlines or control characters)'))
    .min(1)
    .superRefine((words, ctx) => {
      if (words[0] !== undefined && !PROGRAM.test(words[0]))
        ctx.addIssue({ code: 'custom', path: [0], message: 'must be a program name or path (letters, digits and ._/+-), not starting with "-"' });
    });

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
