// Sets of whole numbers as runs ("1-12,15,17-20"): heartbeat details of a 10,000-part upload or a fetch of many pieces
// stay a few bytes long, since parts and pieces complete nearly in order (the gaps are the few in flight).

export function toRuns(numbers: Iterable<number>): string {
  const sorted = [...new Set(numbers)].sort((a, b) => a - b);
  const runs: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    runs.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return runs.join(',');
}

export function fromRuns(runs: string): number[] {
  const out: number[] = [];
  for (const run of runs.split(',').filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(run.trim());
    if (!m) throw new Error(`not a run of numbers: ${run}`);
    const first = Number(m[1]);
    const last = Number(m[2] ?? m[1]);
    for (let n = first; n <= last; n++) out.push(n);
  }
  return out;
}
