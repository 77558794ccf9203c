// Byte sizes as written in config: 1048576, "512", "64KiB", "1.5MiB", "1GB".
import type { ByteSizeValue } from '../config/policy-model.ts';

const UNIT: Record<string, number> = {
  B: 1,
  KB: 1000,
  KiB: 1024,
  MB: 1000 ** 2,
  MiB: 1024 ** 2,
  GB: 1000 ** 3,
  GiB: 1024 ** 3,
};

const SIZE = /^([0-9]+)(?:\.([0-9]+))?\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/;

/**
 * Bytes for a size: a whole number of bytes, or a string with an optional unit (KB/MB/GB are
 * 1000-based, KiB/MiB/GiB 1024-based). Fractions are rounded down to whole bytes. Throws on
 * anything else (the schema rejects it first).
 */
export function parseByteSize(v: ByteSizeValue): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`not a size in bytes: ${JSON.stringify(v)}`);
    return v;
  }
  const m = typeof v === 'string' ? SIZE.exec(v.trim()) : null;
  if (!m) throw new Error(`not a size: ${JSON.stringify(v)}; expected a number of bytes or e.g. "512KiB", "1MiB", "1GB"`);
  const unit = UNIT[m[3] ?? 'B']!;
  // Whole and fractional parts apart, so "4.35MB" is 4350000 and not 4349999.999….
  const frac = m[2] === undefined ? 0 : Math.floor((Number(m[2]) * unit) / 10 ** m[2].length);
  const bytes = Number(m[1]) * unit + frac;
  if (!Number.isSafeInteger(bytes)) throw new Error(`size too large: ${JSON.stringify(v)}`);
  return bytes;
}
