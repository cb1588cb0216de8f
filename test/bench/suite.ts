/** A benchmark suite: prints its table through `log` and returns its figures for `--json`. */
export interface BenchSuite {
  title: string;
  run(log: (line: string) => void): Promise<Record<string, number | string | boolean>>;
}
