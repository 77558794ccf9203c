// TLS to upstreams: a private CA verifies, a wrong name or an unknown CA is a clear 502,
// client certificates for mTLS backends, insecureSkipVerify only when asked (and logged).
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { pino } from 'pino';
import { Gateway } from '../../gateway/server.ts';
import { startGateway, tempDir, withTestListeners } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { makeCa, type TestCert } from '../helpers/tls.ts';

async function httpsUpstream(
  t: import('ava').ExecutionContext,
  cert: TestCert,
  opts: { clientCa?: string } = {},
): Promise<{ port: number; seen: Array<{ host?: string; client?: string }> }> {
  const seen: Array<{ host?: string; client?: string }> = [];
  const server: Server = createServer(
    { cert: cert.cert, key: cert.key, ...(opts.clientCa ? { ca: opts.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({ host: req.headers.host, ...(peer?.subject ? { client: String(peer.subject.CN) } : {}) });
      res.writeHead(200, { 'content-type': 'text/plain', 'x-sni': String((req.socket as TLSSocket & { servername?: string }).servername) });
      res.end('secure hello');
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return { port: (server.address() as AddressInfo).port, seen };
}

test('an https:// upstream signed by a private CA verifies with tls.ca, and SNI carries the name', async (t) => {
  const ca = await makeCa('Backend CA');
  const up = await httpsUpstream(t, await ca.issue({ names: ['backend.internal'] }));
  const { port } = await startGateway(t, {
    upstreams: {
      svc: { endpoints: [`https://127.0.0.1:${up.port}`], passHost: false, tls: { ca: ca.cert, servername: 'backend.internal' } },
    },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const r = await rawRequest({ port, path: '/x' });
  t.is(r.status, 200);
  t.is(r.text, 'secure hello');
  t.is(r.headers['x-sni'], 'backend.internal');
});

test('a certificate for another name is a 502 CW_UPSTREAM_TLS_NAME; an unknown CA is CW_UPSTREAM_TLS_UNTRUSTED', async (t) => {
  const ca = await makeCa('Backend CA');
  const up = await httpsUpstream(t, await ca.issue({ names: ['backend.internal'] }));
  const { port } = await startGateway(t, {
    upstreams: {
      wrongName: { endpoints: [`https://127.0.0.1:${up.port}`], tls: { ca: ca.cert, servername: 'other.internal' } },
      // The endpoint's own host (an address) is checked when no servername is set.
      byAddress: { endpoints: [`https://127.0.0.1:${up.port}`], tls: { ca: ca.cert } },
      systemRoots: { endpoints: [`https://127.0.0.1:${up.port}`] },
    },
    routes: [
      { name: 'a', match: { prefix: '/a' }, upstream: 'wrongName' },
      { name: 'b', match: { prefix: '/b' }, upstream: 'byAddress' },
      { name: 'c', match: { prefix: '/c' }, upstream: 'systemRoots' },
    ],
  });
  for (const path of ['/a', '/b']) {
    const r = await rawRequest({ port, path });
    t.is(r.status, 502, path);
    t.is(r.json().error.code, 'CW_UPSTREAM_TLS_NAME', path);
  }
  const c = await rawRequest({ port, path: '/c' });
  t.is(c.status, 502);
  t.is(c.json().error.code, 'CW_UPSTREAM_TLS_UNTRUSTED');
  t.regex(c.json().error.message, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
  // A TLS failure is not a dead endpoint: nothing is ejected, the same clear error again.
  t.is((await rawRequest({ port, path: '/a' })).json().error.code, 'CW_UPSTREAM_TLS_NAME');
  t.is(up.seen.length, 0);
});

test('a client certificate from files (relative to the config) for an mTLS backend', async (t) => {
  const ca = await makeCa('Backend CA');
  const clients = await makeCa('Gateway client CA');
  const up = await httpsUpstream(t, await ca.issue({ names: ['legacy.internal'], ips: ['127.0.0.1'] }), { clientCa: clients.cert });
  const dir = await tempDir(t);
  const me = await clients.issue({ cn: 'causeway-gateway', client: true });
  await writeFile(join(dir, 'ca.pem'), ca.cert);
  await writeFile(join(dir, 'client.crt'), me.cert);
  await writeFile(join(dir, 'client.key'), me.key);
  const config = withTestListeners({
    upstreams: {
      legacy: { endpoints: [`https://127.0.0.1:${up.port}`], tls: { ca: 'ca.pem', cert: 'client.crt', key: 'client.key' } },
      anonymous: { endpoints: [`https://127.0.0.1:${up.port}`], tls: { ca: 'ca.pem' } },
    },
    routes: [
      { name: 'legacy', match: { prefix: '/legacy' }, upstream: 'legacy' },
      { name: 'anon', match: { prefix: '/anon' }, upstream: 'anonymous' },
    ],
  });
  await writeFile(join(dir, 'gateway.json'), JSON.stringify(config));
  const gw = await Gateway.start({ config: join(dir, 'gateway.json'), logger: 'silent', watch: false });
  t.teardown(() => gw.close());
  const ok = await rawRequest({ port: gw.address().port, path: '/legacy' });
  t.is(ok.status, 200);
  t.is(up.seen[0]!.client, 'causeway-gateway');
  const refused = await rawRequest({ port: gw.address().port, path: '/anon' });
  t.is(refused.status, 502);
  t.regex(refused.json().error.code, /^CW_UPSTREAM_(TLS|RESET)$/);
});

test('insecureSkipVerify skips the checks only when set, and is logged loudly at load', async (t) => {
  const ca = await makeCa('Unknown CA');
  const up = await httpsUpstream(t, await ca.issue({ names: ['whatever.internal'] }));
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'gateway.json'),
    JSON.stringify(withTestListeners({ upstreams: { lab: { endpoints: [`https://127.0.0.1:${up.port}`], tls: { insecureSkipVerify: true } } }, routes: [{ name: 'r', upstream: 'lab' }] })),
  );
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const gw = await Gateway.start({ config: join(dir, 'gateway.json'), logger: logger as never, watch: false });
  t.teardown(() => gw.close());
  t.is((await rawRequest({ port: gw.address().port, path: '/' })).status, 200);
  const warning = lines.map((l) => JSON.parse(l) as { level: number; code?: string; msg: string }).find((l) => l.code === 'CW_TLS_INSECURE');
  t.truthy(warning);
  t.is(warning!.level, 40);
  t.regex(warning!.msg, /upstreams\.lab\.tls\.insecureSkipVerify/);
});

test('config checks: tls on an upstream without https endpoints, cert without key, listeners with listen, h2 without TLS', async (t) => {
  const { loadConfigText } = await import('../../config/load.ts');
  const r = loadConfigText([
    {
      file: 'bad.yaml',
      text: [
        'gateway:',
        '  listen: { host: 127.0.0.1, port: 8080 }',
        '  listeners:',
        '    - listen: { host: 127.0.0.1, port: 8081 }',
        '      http2: { maxConcurrentStreams: 10 }',
        '      routes: [nope]',
        '    - listen: { host: 127.0.0.1, port: 8081 }',
        '      tls: { cert: a.pem }',
        '      redirectToHttps: true',
        'upstreams:',
        '  u: { endpoints: [http://10.0.0.1:80], tls: { cert: c.pem } }',
        'routes:',
        '  - { name: r, upstream: u }',
        '',
      ].join('\n'),
    },
  ]);
  t.false(r.ok);
  const messages = r.ok ? [] : r.issues.map((i) => `${i.line} ${i.path}: ${i.message}`);
  const has = (re: RegExp) => t.true(messages.some((m) => re.test(m)), `${re} in\n${messages.join('\n')}`);
  has(/^3 gateway\.listeners: set either listeners or gateway\.listen, not both/);
  has(/^5 gateway\.listeners\[0\]\.http2: HTTP\/2 is offered on TLS listeners only/);
  has(/^6 gateway\.listeners\[0\]\.routes\[0\]: unknown route "nope"/);
  has(/^7 gateway\.listeners\[1\]\.listen: 127\.0\.0\.1:8081 clashes with listeners\[0\]/);
  has(/^8 gateway\.listeners\[1\]\.tls: set both cert and key/);
  has(/^9 gateway\.listeners\[1\]\.redirectToHttps: redirectToHttps belongs on a plain listener/);
  has(/^11 upstreams\.u\.tls: set both cert and key/);
  has(/^11 upstreams\.u\.tls: no endpoint of this upstream uses https:\/\//);
});
