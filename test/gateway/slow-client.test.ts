// A client that goes silent inside its request body gets a 408 and does not keep holding the
// upstream connection it was streaming to.
import { connect } from 'node:net';
import test from 'ava';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { startUpstream } from '../helpers/upstream.ts';

function stalledPost(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
    // Announces 1000 bytes, sends one, then says nothing more.
    s.write('POST /upload HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1000\r\n\r\nx');
  });
}

test('a request body that stalls: 408 CW_REQUEST_TIMEOUT, and the upstream pool is free for others', async (t) => {
  const up = await startUpstream(t, 'svc');
  const gw = await startGateway(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, requestTimeouts: { bodyIdle: '300ms' } },
    upstreams: { svc: { endpoints: [up.url], connections: 2 } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  // More stalled uploads than the upstream pool has connections.
  const answers = await Promise.all([stalledPost(gw.port), stalledPost(gw.port), stalledPost(gw.port)]);
  for (const a of answers) {
    t.regex(a, /^HTTP\/1\.1 408 /);
    t.true(a.includes('"code":"CW_REQUEST_TIMEOUT"'));
  }
  t.is(up.seen.length, 0, 'no truncated body was passed off as a complete request');
  const ok = await rawRequest({ port: gw.port, path: '/after' });
  t.is(ok.status, 200, 'the pool is usable again');
  t.is(up.seen.at(-1)!.url, '/after');
});
