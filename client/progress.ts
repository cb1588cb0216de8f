// Per-architecture progress for `release status --watch`: the stage from the release's status, and how far the
// running step is, read from the heartbeat details of the archBuild child's pending activity (the fetch reports
// bytes, the image build its osbuild stages), as the Web UI's "Pending Activities" shows them.
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { Arch } from '../config/schema';
import { archBuildId, type ReleaseStatus } from '../workflows/messages';
import { paint, type OutputStyle } from './output';

export interface ArchProgress {
  arch: string;
  stage: string;
  /** 0..1, when the running step reports how far it is. */
  fraction?: number;
  bytesDone?: number;
  bytesTotal?: number;
  /** Since the architecture's build started. */
  elapsedMs?: number;
  /** What runs now: "build step 4/9", "fetch 1.2 of 2.0 GiB". */
  note?: string;
}

const decode = (p: unknown) => {
  try {
    return defaultPayloadConverter.fromPayload(p as never) as Record<string, unknown>;
  } catch {
    return undefined; // an encrypted payload (codec) or an unknown encoding: no figure, the stage still shows
  }
};
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** What a step's heartbeat details say of its progress (the shapes of activities/build and activities/fetch). */
export function progressOf(activityType: string, d: Record<string, unknown> | undefined): Pick<ArchProgress, 'fraction' | 'bytesDone' | 'bytesTotal' | 'note'> {
  if (!d) return {};
  if (activityType === 'fetchArtifacts') {
    const done = num(d.bytesDone);
    const total = num(d.total);
    return total ? { fraction: Math.min(1, (done ?? 0) / total), bytesDone: done ?? 0, bytesTotal: total, note: `fetch artifact ${(num(d.index) ?? 0) + 1}` } : {};
  }
  if (activityType === 'runImageBuild') {
    const runs = num(d.runs) ?? 1;
    const run = num(d.runIndex) ?? 1;
    const step = num(d.step) ?? 0;
    const total = num(d.total);
    const within = total ? Math.min(1, step / total) : 0;
    return { fraction: (run - 1 + within) / runs, note: `build ${String(d.run ?? '')} ${total ? `step ${step}/${total}` : String(d.phase ?? '')}`.trim() };
  }
  return typeof d.message === 'string' ? { note: d.message } : {};
}

export async function archProgress(client: Client, status: ReleaseStatus, now = Date.now()): Promise<ArchProgress[]> {
  return await Promise.all(
    (Object.keys(status.arches) as Arch[]).map(async (arch) => {
      const base: ArchProgress = { arch, stage: status.arches[arch]!.stage };
      try {
        const d = await client.workflow.getHandle(archBuildId(status.releaseId, arch)).describe();
        const running = d.raw.pendingActivities?.[0];
        const elapsedMs = now - d.startTime.getTime();
        if (!running || d.status.name !== 'RUNNING') return { ...base, elapsedMs: (d.closeTime?.getTime() ?? now) - d.startTime.getTime() };
        const details = decode(running.heartbeatDetails?.payloads?.[0]);
        return { ...base, elapsedMs, ...progressOf(running.activityType?.name ?? '', details) };
      } catch {
        return base; // not started yet, or past retention
      }
    }),
  );
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(n < 2 ** 30 ? 2 : 1)} GiB`;
const clock = (ms: number) => `${Math.floor(ms / 60_000)}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;

/** One line per architecture: a bar on a terminal, plain figures otherwise (rounded, so a pipe gets few lines). */
export function progressLines(rows: ArchProgress[], style: OutputStyle, width = 24): string {
  return rows
    .map((r) => {
      const pct = r.fraction === undefined ? undefined : Math.floor(r.fraction * 100);
      const figures = [
        pct === undefined ? '' : style.mode === 'table' ? `${pct}%` : `${Math.floor(pct / 10) * 10}%`,
        r.bytesTotal ? `${gib(r.bytesDone ?? 0)} of ${gib(r.bytesTotal)}` : '',
        r.elapsedMs !== undefined && style.mode === 'table' ? clock(r.elapsedMs) : '',
        r.note ?? '',
      ].filter(Boolean);
      if (style.mode !== 'table') return [r.arch, r.stage, ...figures].join('  ');
      const filled = Math.round((r.fraction ?? 0) * width);
      const bar = r.fraction === undefined ? ' '.repeat(width) : `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
      return `${r.arch.padEnd(8)} ${paint(style, r.stage === 'failed' ? 'red' : 'bold', r.stage.padEnd(17))} ${bar} ${figures.join('  ')}`;
    })
    .join('\n');
}
