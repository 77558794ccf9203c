import test from 'ava';
import { byteSizeError, byteSizeOr, parseByteSize } from '../../config/size.ts';

test('parseByteSize: bytes, 1000-based and 1024-based units, fractions', (t) => {
  t.is(parseByteSize(0), 0);
  t.is(parseByteSize(1048576), 1048576);
  t.is(parseByteSize('512'), 512);
  t.is(parseByteSize('512B'), 512);
  t.is(parseByteSize('64KB'), 64_000);
  t.is(parseByteSize('64KiB'), 65_536);
  t.is(parseByteSize('1MiB'), 1_048_576);
  t.is(parseByteSize('1 MiB'), 1_048_576);
  t.is(parseByteSize('2MB'), 2_000_000);
  t.is(parseByteSize('1GB'), 1_000_000_000);
  t.is(parseByteSize('1GiB'), 1_073_741_824);
  t.is(parseByteSize('1.5MiB'), 1_572_864);
  t.is(parseByteSize('1.1KiB'), 1126); // a fraction of a byte is dropped
  t.is(parseByteSize('4.35MB'), 4_350_000); // not 4349999 (4.35 * 1e6 in floating point)
  t.is(parseByteSize('1.0'), 1);
  t.is(byteSizeOr(undefined, 42), 42);
  t.is(byteSizeOr('1KiB', 42), 1024);
});

test('byteSizeError: what is not a size, and parseByteSize throws for it', (t) => {
  for (const ok of [0, 10, '10', '10B', '0.5KiB', '3 GB']) t.is(byteSizeError(ok), undefined, String(ok));
  t.is(byteSizeError('1.5'), '"1.5" is not a whole number of bytes');
  t.is(byteSizeError('1.5B'), '"1.5B" is not a whole number of bytes');
  t.is(byteSizeError('99999999999999GiB'), '"99999999999999GiB" is too large');
  t.is(byteSizeError('1mb'), 'expected a size like "1MiB" or a number of bytes');
  t.is(byteSizeError('lots'), 'expected a size like "1MiB" or a number of bytes');
  t.is(byteSizeError(-1), 'a size in bytes must be a whole number from 0 up');
  t.is(byteSizeError(1.5), 'a size in bytes must be a whole number from 0 up');
  t.is(byteSizeError(true), 'expected a size like "1MiB" or a number of bytes');
  t.throws(() => parseByteSize('1.5'), { message: /not a size: "1\.5"/ });
  t.throws(() => parseByteSize('1 megabyte'));
});
