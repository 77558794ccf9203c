// The hand-built access line must be byte for byte what pino writes for the same record, so
// log pipelines see one format whichever path wrote it.
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { pino } from 'pino';
import { AccessLogWriter, type AccessRecord } from '../../gateway/access-log.ts';

function pair(t: ExecutionContext) {
  const out: string[] = [];
  const sink = { write: (s: string) => out.push(s) };
  const log = pino({ level: 'info', base: { pid: 4242, hostname: 'gw-1' }, timestamp: () => ',"time":1700000000000' }, sink as never);
  const child = log.child({ log: 'access' });
  const writer = new AccessLogWriter(sink, String((child as unknown as Record<symbol, unknown>)[pino.symbols.chindingsSym]));
  t.teardown(() => writer.close());
  return {
    out,
    viaPino: (r: AccessRecord) => child.info(r),
    viaWriter: (r: AccessRecord) => {
      writer.write(r, 1700000000000);
      writer.flush();
    },
  };
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
      const p = pair(t);
      p.viaPino(r);
      p.viaWriter(r);
      return p.out[0] === p.out[1];
    }),
    { numRuns: 500 },
  );
  const p = pair(t);
  p.viaWriter({ requestId: 'a"b', traceId: undefined, method: 'GET', host: 'x\n', path: '/p', route: 'r', backend: undefined, status: 200, code: undefined, ms: 1.5, upstreamMs: undefined, attempts: undefined, requestBytes: 0, responseBytes: 3, clientIp: '::1', subject: undefined });
  t.deepEqual(JSON.parse(p.out[0]!), { level: 30, time: 1700000000000, pid: 4242, hostname: 'gw-1', log: 'access', requestId: 'a"b', method: 'GET', host: 'x\n', path: '/p', route: 'r', status: 200, ms: 1.5, requestBytes: 0, responseBytes: 3, clientIp: '::1' });
  t.true(p.out[0]!.endsWith('}\n'));
});

test('access lines are handed to the destination in batches: 64 lines at once, fewer after a short wait, the rest at close', async (t) => {
  const writes: string[] = [];
  const writer = new AccessLogWriter({ write: (s: string) => writes.push(s) }, ',"log":"access"');
  t.teardown(() => writer.close());
  const rec: AccessRecord = { requestId: 'r', traceId: undefined, method: 'GET', host: 'h', path: '/', route: 'x', backend: 'y', status: 200, code: undefined, ms: 1, upstreamMs: 1, attempts: undefined, requestBytes: 0, responseBytes: 1, clientIp: '::1', subject: undefined };
  for (let i = 0; i < 64; i++) writer.write(rec, i);
  t.is(writes.length, 1);
  t.is(writes[0]!.split('\n').length - 1, 64);
  for (let i = 0; i < 3; i++) writer.write(rec, i);
  t.is(writes.length, 1, 'a partial batch waits');
  // The batch timer hands it over without more traffic.
  while (writes.length === 1) await new Promise((r) => setTimeout(r, 5));
  t.is(writes[1]!.split('\n').length - 1, 3);
  writer.write(rec, 9);
  writer.close();
  t.is(writes.length, 3, 'close hands over what is left');
  t.deepEqual(writes.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l).time).slice(-4), [0, 1, 2, 9]);
});
