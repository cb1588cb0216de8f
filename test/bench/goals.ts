// The bench's goals (issue #13; docs/bench.md): each figure beside the reference the same run measured and the goal
// it is held to. A row whose figures a run did not produce (`--only`) is left out.
type Figures = Record<string, number | string | boolean>;

interface Goal {
  name: string;
  /** The figure keys the row needs. */
  keys: string[];
  ours: (f: Figures) => string;
  reference: (f: Figures) => string;
  goal: string;
  met: (f: Figures) => boolean;
}

const n = (f: Figures, key: string) => Number(f[key]);
const MB = 1e6;

export const GOALS: Goal[] = [
  {
    name: 'release overhead (4 arches × 3 targets)',
    keys: ['releaseOverheadSeconds', 'releaseCriticalPathSeconds', 'releaseWallSeconds'],
    ours: (f) => `${n(f, 'releaseOverheadSeconds')} s`,
    reference: (f) => `steps' critical path ${n(f, 'releaseCriticalPathSeconds')} s of wall ${n(f, 'releaseWallSeconds')} s`,
    goal: '≤ 15 s',
    met: (f) => n(f, 'releaseOverheadSeconds') <= 15,
  },
  {
    name: 'resume after SIGKILL mid-build',
    keys: ['resumeSeconds', 'resumeHeartbeatTimeoutSeconds'],
    ours: (f) => `${n(f, 'resumeSeconds')} s`,
    reference: (f) => `heartbeat timeout ${n(f, 'resumeHeartbeatTimeoutSeconds')} s`,
    goal: '≤ 30 s',
    met: (f) => n(f, 'resumeSeconds') <= 30,
  },
  {
    name: 'history of a 4 × 5 release: events',
    keys: ['historyEvents', 'historyWorkflows'],
    ours: (f) => `${n(f, 'historyEvents')}`,
    reference: (f) => `${n(f, 'historyWorkflows')} workflows; Temporal warns past 10,240 per workflow`,
    goal: '≤ 2,000',
    met: (f) => n(f, 'historyEvents') <= 2000,
  },
  {
    name: 'history of a 4 × 5 release: bytes',
    keys: ['historyBytes'],
    ours: (f) => `${(n(f, 'historyBytes') / MB).toFixed(2)} MB`,
    reference: () => 'Temporal warns past 10 MiB per workflow',
    goal: '≤ 2 MB',
    met: (f) => n(f, 'historyBytes') <= 2 * MB,
  },
  {
    name: 'peak RSS of one worker, many releases',
    keys: ['loadPeakRssMiB', 'loadOneReleaseRssMiB', 'loadReleases'],
    ours: (f) => `${n(f, 'loadPeakRssMiB')} MiB`,
    reference: (f) => `${n(f, 'loadReleases')} releases at once; after one release ${n(f, 'loadOneReleaseRssMiB')} MiB`,
    goal: '≤ 1,024 MiB',
    met: (f) => n(f, 'loadPeakRssMiB') <= 1024,
  },
  {
    name: 'fetch over 50 ms: ours ÷ lftp pget -n 8',
    keys: ['fetchWanMultiStreamRatio', 'fetchWanOursMBps', 'fetchWanLftpMBps'],
    ours: (f) => `${n(f, 'fetchWanMultiStreamRatio')}×`,
    reference: (f) => `ours ${n(f, 'fetchWanOursMBps')} MB/s, lftp ${n(f, 'fetchWanLftpMBps')} MB/s`,
    goal: '≥ 3×',
    met: (f) => n(f, 'fetchWanMultiStreamRatio') >= 3,
  },
  {
    name: 'sparse fetch over 50 ms: ours ÷ tar -S through ssh',
    keys: ['fetchSparseTarRatio', 'fetchSparseWanOursSeconds', 'fetchSparseWanTarSeconds'],
    ours: (f) => `${n(f, 'fetchSparseTarRatio')}×`,
    reference: (f) => `ours ${n(f, 'fetchSparseWanOursSeconds')} s, tar ${n(f, 'fetchSparseWanTarSeconds')} s`,
    goal: '≤ 0.5×',
    met: (f) => n(f, 'fetchSparseTarRatio') <= 0.5,
  },
  {
    // Next door, both ends share the machine's cores: this row compares CPU, as the row below does, and has no goal.
    name: 'sparse fetch next door: ours ÷ tar -S through ssh',
    keys: ['fetchSparseLoopbackTarRatio', 'fetchSparseOursSeconds', 'fetchSparseTarSeconds'],
    ours: (f) => `${n(f, 'fetchSparseLoopbackTarRatio')}×`,
    reference: (f) => `ours ${n(f, 'fetchSparseOursSeconds')} s, tar ${n(f, 'fetchSparseTarSeconds')} s; both ends on the same cores`,
    goal: '(reported)',
    met: () => true,
  },
  {
    name: 'receiving process CPU per GiB',
    keys: ['fetchOursReceiverCpuSecondsPerGiB', 'fetchOpenSshReceiverCpuSecondsPerGiB', 'fetchSha256CpuSecondsPerGiB'],
    ours: (f) => `${n(f, 'fetchOursReceiverCpuSecondsPerGiB')} s`,
    reference: (f) =>
      `OpenSSH sftp + ssh ${n(f, 'fetchOpenSshReceiverCpuSecondsPerGiB')} s; ours includes SHA-256 (${n(f, 'fetchSha256CpuSecondsPerGiB')} s)`,
    goal: '(reported)',
    met: () => true,
  },
];

/** The goals table: one line per goal whose figures are all there. */
export function goalsTable(f: Figures): string[] {
  const rows = GOALS.filter((g) => g.keys.every((k) => k in f)).map((g) => [
    g.name,
    g.ours(f),
    g.goal,
    g.goal === '(reported)' ? '' : g.met(f) ? 'met' : 'NOT MET',
    g.reference(f),
  ]);
  if (!rows.length) return [];
  const header = ['', 'ours', 'goal', '', 'reference, same run'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `  ${r.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()}`;
  return [line(header), ...rows.map(line)];
}
