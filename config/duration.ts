import type { DurationValue } from './model.ts';

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds for a validated duration ("250ms", "2s", "1.5m", "1h" or a number of ms). */
export function parseDuration(value: DurationValue): number {
  if (typeof value === 'number') return value;
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(value);
  if (!m) throw new Error(`not a duration: ${JSON.stringify(value)}`);
  return Math.round(Number(m[1]) * UNIT[m[2]!]!);
}

/** Like parseDuration, with a default for an absent value. */
export function durationOr(value: DurationValue | undefined, fallback: number): number {
  return value === undefined ? fallback : parseDuration(value);
}
