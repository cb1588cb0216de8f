// `npm run bench [-- --json] [-- --only NAME[,NAME]] [-- --quick]`: every benchmark, each figure printed beside its
// reference (OpenSSH, lftp, tar, the S3 path, the steps' critical path, ...), then the goals table (goals.ts).
// With --json, one JSON object of all figures on stdout, progress and tables on stderr. --quick shrinks the files
// (suite.ts): a check that the bench runs, not figures to quote.
import { goalsTable } from './goals';
import type { BenchSuite } from './suite';

const SUITES: Record<string, () => Promise<{ default: BenchSuite }>> = {
  fetch: () => import('./fetch'),
  'publish-aws': () => import('./publish-aws'),
  releases: () => import('./releases'),
};

async function main() {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1]?.split(',') : undefined;
  const unknown = only?.filter((name) => !(name in SUITES));
  if (unknown?.length) throw new Error(`--only: no suite ${unknown.join(', ')}; the suites are ${Object.keys(SUITES).join(', ')}`);
  const figures: Record<string, number | string | boolean> = {};
  const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
  for (const [name, load] of Object.entries(SUITES)) {
    if (only && !only.includes(name)) continue;
    const suite: BenchSuite = (await load()).default;
    log(`\n== ${suite.title}`);
    Object.assign(figures, await suite.run(log));
  }
  const goals = goalsTable(figures);
  if (goals.length) {
    log('\n== goals');
    for (const line of goals) log(line);
  }
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
