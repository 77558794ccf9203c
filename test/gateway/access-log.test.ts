// The hand-built access line must be byte for byte what pino writes for the same record, so
// log pipelines see one format whichever path wrote it.
import test from 'ava';
import fc from 'fast-check';
import { pino } from 'pino';
import { AccessLogWriter, type AccessRecord } from '../../gateway/access-log.ts';

function pair() {
  const out: string[] = [];
  const sink = { write: (s: string) => out.push(s) };
  const log = pino({ level: 'info', base: { pid: 4242, hostname: 'gw-1' }, timestamp: () => ',"time":1700000000000' }, sink as never);
  const child = log.child({ log: 'access' });
  const writer = new AccessLogWriter(sink, String((child as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym]));
  return { out, viaPino: (r: AccessRecord) => child.info(r), viaWriter: (r: AccessRecord) => writer.write(r, 1700000000000) };
}

const text = fc.string({ unit: 'binary', maxLength: 40 });
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const record: fc.Arbitrary<AccessRecord> = fc.record({
  requestId: text,
  traceId: maybe(text),
  method: maybe(text),
  host: maybe(text),
  path: text,
  route: maybe(text),
  backend: maybe(text),
  status: fc.integer({ min: 0, max: 599 }),
  code: maybe(text),
  ms: fc.double({ min: 0, max: 1e6, noNaN: true }),
  upstreamMs: maybe(fc.double({ min: 0, max: 1e6, noNaN: true })),
  attempts: maybe(fc.integer({ min: 2, max: 5 })),
  requestBytes: fc.nat(),
  responseBytes: fc.nat(),
  clientIp: maybe(text),
  subject: maybe(text),
});

test('access line: identical to pino for any record (quotes, control characters, unicode, absent fields)', (t) => {
  fc.assert(
    fc.property(record, (r) => {
      const p = pair();
      p.viaPino(r);
      p.viaWriter(r);
      return p.out[0] === p.out[1];
    }),
    { numRuns: 500 },
  );
  const p = pair();
  p.viaWriter({ requestId: 'a"b', traceId: undefined, method: 'GET', host: 'x\n', path: '/p', route: 'r', backend: undefined, status: 200, code: undefined, ms: 1.5, upstreamMs: undefined, attempts: undefined, requestBytes: 0, responseBytes: 3, clientIp: '::1', subject: undefined });
  t.deepEqual(JSON.parse(p.out[0]!), { level: 30, time: 1700000000000, pid: 4242, hostname: 'gw-1', log: 'access', requestId: 'a"b', method: 'GET', host: 'x\n', path: '/p', route: 'r', status: 200, ms: 1.5, requestBytes: 0, responseBytes: 3, clientIp: '::1' });
  t.true(p.out[0]!.endsWith('}\n'));
});
