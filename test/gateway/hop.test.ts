import test from 'ava';
import { HOP_BY_HOP, connectionTokens, isHopByHop } from '../../gateway/hop.ts';

test('HOP_BY_HOP lists the fixed hop-by-hop headers, lower-case', (t) => {
  t.deepEqual([...HOP_BY_HOP].sort(), [
    'connection',
    'keep-alive',
    'proxy-authenticate',
    'proxy-authorization',
    'proxy-connection',
    'te',
    'trailer',
    'transfer-encoding',
    'upgrade',
  ]);
  for (const name of ['host', 'content-length', 'authorization', 'x-forwarded-for', 'cookie']) t.false(HOP_BY_HOP.has(name));
});

test('connectionTokens', (t) => {
  t.deepEqual(connectionTokens(undefined), []);
  t.deepEqual(connectionTokens(''), []);
  t.deepEqual(connectionTokens([]), []);
  t.deepEqual(connectionTokens('keep-alive'), ['keep-alive']);
  t.deepEqual(connectionTokens('Keep-Alive, X-Secret-Hop'), ['keep-alive', 'x-secret-hop']);
  t.deepEqual(connectionTokens(' close ,, Upgrade,\tfoo\t,'), ['close', 'upgrade', 'foo']);
  t.deepEqual(connectionTokens(['X-A, x-b', 'X-B', 'x-c']), ['x-a', 'x-b', 'x-c']);
  t.deepEqual(connectionTokens('x-a, bad name, "quoted", ok'), ['x-a', 'ok']);
});

test('connectionTokens on a long hostile header stays linear and de-duplicated', (t) => {
  const names = Array.from({ length: 2000 }, (_, i) => `x-h${i % 500}`);
  const out = connectionTokens(names.join(','));
  t.is(out.length, 500);
  t.is(out[0], 'x-h0');
  t.is(out[499], 'x-h499');
  t.is(new Set(out).size, 500);
});

test('isHopByHop', (t) => {
  const conn = connectionTokens('close, X-Internal');
  t.true(isHopByHop('transfer-encoding'));
  t.true(isHopByHop('x-internal', conn));
  t.false(isHopByHop('x-internal'));
  t.false(isHopByHop('content-type', conn));
});
