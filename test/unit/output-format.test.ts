// The CLI's output decisions (client/output.ts) and what the formatters (client/format.ts) make of them: a table and
// colour for a terminal, plain text for a pipe, colour off with NO_COLOR, JSON with --json (errors included).
import { describe, expect, it } from 'vitest';
import { janitorText, listTable, statusText, validText } from '../../client/format';
import { outputStyle, printer, renderTable, type OutputStyle } from '../../client/output';
import type { ReleaseStatus } from '../../workflows/messages';

const ANSI = /\x1b\[/;
const BOX = /[┌┐└┘│─┬┴┼├┤]/;
const PLAIN: OutputStyle = { mode: 'plain', color: false };
const TTY: OutputStyle = { mode: 'table', color: true };
const TTY_NO_COLOR: OutputStyle = { mode: 'table', color: false };

const status: ReleaseStatus = {
  releaseId: 'copr-builder-20261129-120000',
  name: 'copr-builder',
  stage: 'awaiting-approval',
  startedAt: '2026-11-29T12:00:00Z',
  arches: {
    x86_64: { stage: 'published', builder: { provider: 'aws', id: 'i-0abc', address: '10.0.0.5' } },
    s390x: { stage: 'failed', error: 'no space left on /var/tmp' },
  },
  candidates: [
    { arch: 'x86_64', target: 'aws-prod', kind: 'aws', region: 'us-east-1', imageId: 'ami-0123', name: 'copr-x86_64', type: 'ami', size: 2 * 2 ** 30, sha256: 'ab'.repeat(32) },
  ],
  publishFailures: [{ arch: 's390x', target: 'ibm-us-east', error: 'quota exceeded' }],
  approvers: ['copr-admin'],
  approvalDeadline: '2026-12-06T12:00:00Z',
};

function streams(stdoutTTY: boolean, stderrTTY = stdoutTTY) {
  const written = { stdout: '', stderr: '' };
  const sink = (name: 'stdout' | 'stderr', isTTY: boolean) => ({ isTTY, write: (s: string) => ((written[name] += s), true) });
  return { written, streams: { stdout: sink('stdout', stdoutTTY), stderr: sink('stderr', stderrTTY) } as any };
}

describe('outputStyle', () => {
  it('gives a terminal tables and colour, a pipe plain text, and --json JSON whatever the stream', () => {
    expect(outputStyle({ isTTY: true, env: {} })).toEqual({ mode: 'table', color: true });
    expect(outputStyle({ isTTY: false, env: {} })).toEqual({ mode: 'plain', color: false });
    expect(outputStyle({ isTTY: undefined, env: {} })).toEqual({ mode: 'plain', color: false });
    expect(outputStyle({ json: true, isTTY: true, env: {} })).toEqual({ mode: 'json', color: false });
  });

  it('turns colour off for any non-empty NO_COLOR (and TERM=dumb), keeping the table', () => {
    for (const value of ['1', '0', 'false', 'yes'])
      expect(outputStyle({ isTTY: true, env: { NO_COLOR: value } })).toEqual({ mode: 'table', color: false });
    expect(outputStyle({ isTTY: true, env: { NO_COLOR: '' } })).toEqual({ mode: 'table', color: true });
    expect(outputStyle({ isTTY: true, env: { TERM: 'dumb' } })).toEqual({ mode: 'table', color: false });
  });
});

describe('renderTable', () => {
  const head = ['arch', 'stage', 'detail'];
  const rows = [
    ['x86_64', 'published', ''],
    ['s390x', 'failed', 'no space left'],
  ];

  it('piped: aligned columns, a "-" for an empty cell, no box drawing, no escape codes', () => {
    const text = renderTable(PLAIN, head, rows);
    expect(text).not.toMatch(BOX);
    expect(text).not.toMatch(ANSI);
    expect(text.split('\n')).toEqual(['arch    stage      detail', 'x86_64  published  -', 's390x   failed     no space left']);
  });

  it('on a terminal: a boxed table, with a bold header only when colour is on', () => {
    expect(renderTable(TTY, head, rows)).toMatch(BOX);
    expect(renderTable(TTY, head, rows)).toContain('\x1b[1march\x1b[22m');
    expect(renderTable(TTY_NO_COLOR, head, rows)).toMatch(BOX);
    expect(renderTable(TTY_NO_COLOR, head, rows)).not.toMatch(ANSI);
  });
});

describe('formatters', () => {
  it('status: plain when piped, with every fact a person needs to decide', () => {
    const text = statusText(status, PLAIN);
    expect(text).not.toMatch(BOX);
    expect(text).not.toMatch(ANSI);
    for (const fact of ['awaiting-approval', 'aws i-0abc', 'no space left on /var/tmp', 'ami-0123', '2.0 GiB', 'quota exceeded'])
      expect(text).toContain(fact);
    expect(text).toContain(`bootc-release release approve ${status.releaseId} --by NAME`);
  });

  it('status on a terminal: stages in colour (yellow awaiting, green published, red failed), none with NO_COLOR', () => {
    const coloured = statusText(status, TTY);
    expect(coloured).toContain('\x1b[33mawaiting-approval\x1b[39m');
    expect(coloured).toContain('\x1b[32mpublished\x1b[39m');
    expect(coloured).toContain('\x1b[31mfailed\x1b[39m');
    expect(coloured).toMatch(BOX);
    const plainTable = statusText(status, TTY_NO_COLOR);
    expect(plainTable).not.toMatch(ANSI);
    expect(plainTable).toMatch(BOX);
  });

  it('list, janitor report and validate follow the same style', () => {
    const rows = [{ releaseId: 'r1', name: 'copr', stage: 'activated', status: 'COMPLETED', startedAt: '2026-11-29T12:00:00Z' }];
    const report = {
      dryRun: true,
      deleted: [{ kind: 'instance', id: 'i-1', releaseId: 'r0', reason: 'release r0 is closed' }],
      failed: [],
      kept: [{ kind: 'domain', id: 'bootc-release-x-1a2b3c4d', reason: 'no release id could be attributed' }],
    };
    for (const text of [listTable(rows, PLAIN), janitorText(report, PLAIN), validText('a.yaml', 'copr', ['x86_64'], PLAIN)]) {
      expect(text).not.toMatch(BOX);
      expect(text).not.toMatch(ANSI);
    }
    expect(listTable(rows, PLAIN).split('\n')[1]).toMatch(/^r1\s+copr\s+activated\s+COMPLETED\s+2026-11-29T12:00:00Z$/);
    expect(janitorText(report, PLAIN)).toMatch(/^would delete 1, failed 0, kept 1\n/);
    expect(janitorText(report, PLAIN)).toMatch(/domain\s+bootc-release-x-1a2b3c4d\s+-?\s*KEPT\s+no release id/);
    expect(listTable(rows, TTY)).toContain('\x1b[32mactivated\x1b[39m');
    expect(validText('a.yaml', 'copr', ['x86_64'], TTY)).toContain('\x1b[32mvalid\x1b[39m');
  });
});

describe('printer', () => {
  it('--json: the result as JSON on stdout, an error as one JSON object on stderr, even on a terminal', () => {
    const { written, streams: s } = streams(true);
    const p = printer(true, s, {});
    p.result({ releaseId: 'r1' }, () => 'r1 as text');
    p.error('a.yaml: invalid release definition', ['a.yaml: approval: required']);
    expect(JSON.parse(written.stdout)).toEqual({ releaseId: 'r1' });
    expect(JSON.parse(written.stderr)).toEqual({ error: 'a.yaml: invalid release definition', problems: ['a.yaml: approval: required'] });
  });

  it('decides each stream on its own: a piped stdout stays plain while errors on a terminal are red', () => {
    const { written, streams: s } = streams(false, true);
    const p = printer(false, s, {});
    p.result({}, (style) => `mode ${style.mode}`);
    p.error('r1: approver mallory is not in approval.approvers');
    expect(written.stdout).toBe('mode plain\n');
    expect(written.stderr).toBe('\x1b[31mr1: approver mallory is not in approval.approvers\x1b[39m\n');
    const quiet = streams(true);
    printer(false, quiet.streams, { NO_COLOR: '1' }).error('problem');
    expect(quiet.written.stderr).toBe('problem\n');
  });
});
