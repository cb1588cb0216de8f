// Durations as the definition writes them and Temporal reads them: 90s, 30m, 6h, 7d. Pure (no zod), so workflow code
// in Temporal's sandbox, activities and the schema share this one parser and this one type.
export const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration as written: "90s", "7d" (DURATION is the exact pattern: a whole number, then the unit). */
export type Duration = `${number}${keyof typeof UNIT_MS}`;

export const isDuration = (value: string): value is Duration => DURATION.test(value);

/** Milliseconds of a duration the schema accepted ("90s", "7d"); throws on anything else. */
export function durationMs(value: string): number {
  const m = DURATION.exec(value);
  if (!m) throw new Error(`not a duration: ${value}`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}
