import { describe, expect, it } from 'vitest';
import { progressLines, progressOf } from '../../client/progress';

const TTY = { mode: 'table', color: true } as const;
const PIPE = { mode: 'plain', color: false } as const;

describe('release status --watch progress', () => {
  it('reads how far the running step is from its heartbeat details', () => {
    expect(progressOf('fetchArtifacts', { index: 0, bytesDone: 3 << 28, total: 1 << 30 })).toMatchObject({ fraction: 0.75, bytesDone: 3 << 28, bytesTotal: 1 << 30 });
    // Two runs (ami, raw): the second run's 5th of 10 stages is 75 % of the build.
    expect(progressOf('runImageBuild', { run: 'raw', runIndex: 2, runs: 2, step: 5, total: 10, phase: 'building' })).toMatchObject({ fraction: 0.75, note: 'build raw step 5/10' });
    expect(progressOf('acquireBuilder', { message: 'waiting for SSH on 10.0.0.5' })).toEqual({ note: 'waiting for SSH on 10.0.0.5' });
    expect(progressOf('fetchArtifacts', undefined)).toEqual({});
  });

  it('draws a bar with percent, bytes and elapsed time on a terminal, and rounded plain figures in a pipe', () => {
    const rows = [
      { arch: 'x86_64', stage: 'fetching', fraction: 0.5, bytesDone: 2 ** 30, bytesTotal: 2 ** 31, elapsedMs: 125_000, note: 'fetch artifact 1' },
      { arch: 's390x', stage: 'provisioning', elapsedMs: 4_000 },
    ];
    const tty = progressLines(rows, TTY, 10).split('\n');
    expect(tty[0]).toContain('█████░░░░░ 50%  1.0 GiB of 2.0 GiB  2m05s  fetch artifact 1');
    expect(tty[1]).toMatch(/^s390x\s+\S*provisioning/);
    const pipe = progressLines([{ ...rows[0]!, fraction: 0.57 }], PIPE);
    expect(pipe).toBe('x86_64  fetching  50%  1.0 GiB of 2.0 GiB  fetch artifact 1');
    expect(pipe).not.toMatch(/\x1b\[|█/);
  });
});
