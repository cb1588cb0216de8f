/** A benchmark suite: prints its table through `log` and returns its figures for `--json`. */
export interface BenchSuite {
  title: string;
  run(log: (line: string) => void): Promise<Record<string, number | string | boolean>>;
}

/**
 * `--quick` (or BENCH_QUICK=1): smaller files and one round, to check the bench runs; its figures are noisier and
 * not the ones to quote.
 */
export const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
