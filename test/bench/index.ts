// `npm run bench [-- --json] [-- --only NAME]`: every benchmark, each figure printed beside its reference
// (OpenSSH, the S3 path, ...). With --json, one JSON object of all figures on stdout, progress on stderr.
import type { BenchSuite } from './suite';

const SUITES: Record<string, () => Promise<{ default: BenchSuite }>> = {
  fetch: () => import('./fetch'),
  'publish-aws': () => import('./publish-aws'),
};

async function main() {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1]?.split(',') : undefined;
  const figures: Record<string, number | string | boolean> = {};
  const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
  for (const [name, load] of Object.entries(SUITES)) {
    if (only && !only.includes(name)) continue;
    const suite: BenchSuite = (await load()).default;
    log(`\n== ${suite.title}`);
    Object.assign(figures, await suite.run(log));
  }
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
