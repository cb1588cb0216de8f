// The environment of a command the worker runs for a definition (a command builder provider, an activation hook).
// The worker's own environment holds every credential it has (cloud keys, COS HMAC keys, the Temporal API key): a
// command sees only the variables its definition names in `passEnv`, plus what any program needs to run.

/** Always passed: where programs are (the worker's PATH, which `check` searched too), a home, a locale. */
const BASE = ['PATH', 'HOME', 'LANG'] as const;

export function commandEnv(
  passEnv: readonly string[],
  own: Record<string, string>,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/', LANG: 'C.UTF-8' };
  for (const name of [...BASE, ...passEnv]) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return { ...out, ...own };
}
