// How the CLI prints, decided once per stream so every command behaves the same: JSON with --json; tables and
// colour for a person at a terminal; plain, aligned text without escape codes for a pipe or a file. NO_COLOR
// (https://no-color.org: any non-empty value) and TERM=dumb turn colour off on a terminal; the tables stay.
import Table from 'cli-table3';

export type OutputMode = 'json' | 'table' | 'plain';

export interface OutputStyle {
  mode: OutputMode;
  color: boolean;
}

export function outputStyle(o: { json?: boolean; isTTY?: boolean; env?: NodeJS.ProcessEnv }): OutputStyle {
  const env = o.env ?? process.env;
  if (o.json) return { mode: 'json', color: false };
  if (!o.isTTY) return { mode: 'plain', color: false };
  return { mode: 'table', color: !env.NO_COLOR && env.TERM !== 'dumb' };
}

/** What the demo and other callers without a stream of their own get: a table, no colour. */
export const TABLE: OutputStyle = { mode: 'table', color: false };

const SGR = { bold: [1, 22], dim: [2, 22], red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39] } as const;
export type Paint = keyof typeof SGR;

export function paint(style: OutputStyle, how: Paint | undefined, text: string): string {
  if (!style.color || !how || !text) return text;
  const [on, off] = SGR[how];
  return `\x1b[${on}m${text}\x1b[${off}m`;
}

/**
 * Rows of cells as a boxed table on a terminal, or, piped, as one line per row (header first) in columns separated
 * by two spaces, an empty cell printed as "-": readable in `less`, greppable, no box-drawing characters.
 */
export function renderTable(style: OutputStyle, head: string[], rows: string[][]): string {
  if (style.mode === 'table') {
    // cli-table3 colours borders grey and headers red through its own colour library, which ignores NO_COLOR.
    const t = new Table({ head: head.map((h) => paint(style, 'bold', h)), style: { head: [], border: [] } });
    for (const row of rows) t.push(row);
    return t.toString();
  }
  const lines = [head, ...rows.map((r) => r.map((cell) => cell.replace(/\s+/g, ' ').trim() || '-'))];
  const widths = head.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  return lines.map((l) => l.map((cell, i) => (i === l.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** Where a command's result and its errors go; `json` decides for both streams. */
export interface Printer {
  readonly out: OutputStyle;
  readonly err: OutputStyle;
  /** The command's result on stdout: the value itself as JSON, or the text made for the style. */
  result(value: unknown, text: (style: OutputStyle) => string): void;
  /** A failure on stderr: `{"error": ..., "problems": [...]}` with --json, else one line per problem. */
  error(message: string, problems?: string[]): void;
}

export function printer(json: boolean, streams = { stdout: process.stdout, stderr: process.stderr }, env = process.env): Printer {
  const out = outputStyle({ json, isTTY: streams.stdout.isTTY, env });
  const err = outputStyle({ json, isTTY: streams.stderr.isTTY, env });
  return {
    out,
    err,
    result(value, text) {
      streams.stdout.write(`${out.mode === 'json' ? JSON.stringify(value, null, 2) : text(out)}\n`);
    },
    error(message, problems) {
      if (err.mode === 'json') {
        streams.stderr.write(`${JSON.stringify(problems ? { error: message, problems } : { error: message })}\n`);
        return;
      }
      const lines = problems?.length ? problems : [message];
      streams.stderr.write(`${lines.map((l) => paint(err, 'red', l)).join('\n')}\n`);
    },
  };
}
