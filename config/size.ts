// Sizes in config (`bodyLimit`): "512", "64KiB", "1.5MiB", "1GB", or a whole number of bytes.
// KB, MB and GB are 1000-based; KiB, MiB and GiB 1024-based. The syntax is the one of ByteSize
// in config/policy-model.ts; the policy implementations use this parser too.
import type { ByteSizeValue } from './policy-model.ts';

const UNIT: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

const SIZE = /^([0-9]+)(?:\.([0-9]+))?\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/;

/** Whole and fractional parts apart, so "4.35MB" is 4350000 and not 4349999.999…. */
function bytesOf(m: RegExpExecArray): number {
  const unit = UNIT[m[3] ?? '']!;
  const frac = m[2] === undefined ? 0 : Math.floor((Number(m[2]) * unit) / 10 ** m[2].length);
  return Number(m[1]) * unit + frac;
}

/** Why `value` is not a size, or undefined when it is one. */
export function byteSizeError(value: unknown): string | undefined {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) return 'a size in bytes must be a whole number from 0 up';
    return undefined;
  }
  if (typeof value !== 'string') return 'expected a size like "1MiB" or a number of bytes';
  const m = SIZE.exec(value);
  if (!m) return 'expected a size like "1MiB" or a number of bytes';
  if (UNIT[m[3] ?? ''] === 1 && m[2] !== undefined && /[1-9]/.test(m[2])) return `"${value}" is not a whole number of bytes`;
  if (!Number.isSafeInteger(bytesOf(m))) return `"${value}" is too large`;
  return undefined;
}

/**
 * Bytes for a validated size: 1048576, "512KiB", "1MiB", "1.5GB" (fractions of a byte are
 * dropped). Throws on anything else; check config values with `byteSizeError` first.
 */
export function parseByteSize(value: ByteSizeValue): number {
  const err = byteSizeError(value);
  if (err) throw new Error(`not a size: ${JSON.stringify(value)}: ${err}`);
  if (typeof value === 'number') return value;
  return bytesOf(SIZE.exec(value)!);
}

/** Like parseByteSize, with a default for an absent value. */
export function byteSizeOr(value: ByteSizeValue | undefined, fallback: number): number {
  return value === undefined ? fallback : parseByteSize(value);
}
