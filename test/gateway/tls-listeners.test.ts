// Several listeners, certificates by SNI, hot-swapped certificate files, redirect to HTTPS,
// HSTS and client certificates: real TLS with certificates made in the test.
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { rename, writeFile } from 'node:fs/promises';
import { request as httpsRequest, Agent } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import test from 'ava';
import { Gateway } from '../../gateway/server.ts';
import { rawRequest } from '../helpers/http.ts';
import { startGateway, tempDir } from '../helpers/gateway.ts';
import { makeCa, type TestCa } from '../helpers/tls.ts';
import { startUpstream } from '../helpers/upstream.ts';

const run = promisify(execFile);

/** The certificate a TLS listener presents for an SNI name (undefined: no SNI). */
function peerCert(port: number, ca: string, servername?: string): Promise<{ cn: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ca, rejectUnauthorized: false }, () => {
      const c = s.getPeerCertificate();
      resolve({ cn: String(c.subject.CN), fingerprint: c.fingerprint256 });
      s.end();
    });
    s.on('error', reject);
  });
}

interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peer: string;
}

function get(port: number, path: string, opts: { servername?: string; ca: string; cert?: string; key?: string; agent?: Agent; host?: string }): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername: opts.servername,
        ca: opts.ca,
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        agent: opts.agent ?? false,
        headers: opts.host ? { host: opts.host } : {},
      },
      (r) => {
        let body = '';
        const peer = String((r.socket as TLSSocket).getPeerCertificate().subject?.CN);
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body, peer }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function writeCert(dir: string, name: string, c: { cert: string; key: string }): Promise<void> {
  await writeFile(join(dir, `${name}.crt`), c.cert);
  await writeFile(join(dir, `${name}.key`), c.key);
}

async function sniGateway(t: import('ava').ExecutionContext, ca: TestCa) {
  const up = await startUpstream(t, 'svc');
  const dir = await tempDir(t);
  await writeCert(dir, 'default', await ca.issue({ names: ['default.test'] }));
  await writeCert(dir, 'api', await ca.issue({ names: ['api.example.test'] }));
  await writeCert(dir, 'wild', await ca.issue({ names: ['*.apps.example.test'] }));
  await writeFile(
    join(dir, 'gateway.yaml'),
    [
      'gateway:',
      '  listeners:',
      '    - name: https',
      '      listen: { host: 127.0.0.1, port: 0 }',
      '      tls:',
      '        cert: default.crt',
      '        key: default.key',
      '        certificates:',
      '          - { cert: api.crt, key: api.key }',
      '          - { cert: wild.crt, key: wild.key }',
      'admin:',
      '  listen: { host: 127.0.0.1, port: 0 }',
      'upstreams:',
      `  svc: { endpoints: ["${up.url}"] }`,
      'routes:',
      '  - { name: r, upstream: svc }',
      '',
    ].join('\n'),
  );
  const gw = await Gateway.start({ config: dir, logger: 'silent', watch: false });
  t.teardown(() => gw.close());
  return { gw, dir, up, port: gw.address().port };
}

test('SNI picks the certificate: exact name, wildcard one label deep, default otherwise', async (t) => {
  const ca = await makeCa();
  const { port } = await sniGateway(t, ca);
  t.is((await peerCert(port, ca.cert, 'api.example.test')).cn, 'api.example.test');
  t.is((await peerCert(port, ca.cert, 'API.Example.Test')).cn, 'api.example.test');
  t.is((await peerCert(port, ca.cert, 'shop.apps.example.test')).cn, '*.apps.example.test');
  // A wildcard covers one label only.
  t.is((await peerCert(port, ca.cert, 'a.b.apps.example.test')).cn, 'default.test');
  t.is((await peerCert(port, ca.cert, 'other.test')).cn, 'default.test');
  t.is((await peerCert(port, ca.cert)).cn, 'default.test');
  // And a verifying HTTPS client gets through on each name.
  const r = await get(port, '/x', { servername: 'shop.apps.example.test', ca: ca.cert, host: 'shop.apps.example.test' });
  t.is(r.status, 200);
  t.is(r.peer, '*.apps.example.test');
});

test('curl --resolve verifies the SNI certificate against the CA', async (t) => {
  const ca = await makeCa();
  const { port, dir } = await sniGateway(t, ca);
  await writeFile(join(dir, 'ca.pem'), ca.cert);
  const { stdout } = await run('curl', [
    '-sS',
    '--cacert',
    join(dir, 'ca.pem'),
    '--resolve',
    `api.example.test:${port}:127.0.0.1`,
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{http_version}',
    `https://api.example.test:${port}/curl`,
  ]);
  t.is(stdout, '200 2');
  // A name no certificate has gets the default one, which curl refuses.
  const bad = await run('curl', ['-sS', '--cacert', join(dir, 'ca.pem'), '--resolve', `nope.test:${port}:127.0.0.1`, `https://nope.test:${port}/`]).catch((e: { code: number; stderr: string }) => e);
  t.is((bad as { code: number }).code, 60); // peer certificate cannot be authenticated
});

test('a renewed certificate (read again on reload/SIGHUP) is served to new connections; open connections keep working', async (t) => {
  const ca = await makeCa();
  const { gw, port, dir } = await sniGateway(t, ca);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const first = await get(port, '/a', { servername: 'api.example.test', ca: ca.cert, agent });
  t.is(first.status, 200);
  const before = await peerCert(port, ca.cert, 'api.example.test');

  // Renew as certbot does: write new files next to the old ones, then move them into place.
  const renewed = await ca.issue({ names: ['api.example.test'] });
  await writeFile(join(dir, 'api.crt.new'), renewed.cert);
  await writeFile(join(dir, 'api.key.new'), renewed.key);
  const next = once(gw, 'certificates');
  await rename(join(dir, 'api.key.new'), join(dir, 'api.key'));
  await rename(join(dir, 'api.crt.new'), join(dir, 'api.crt'));
  await gw.reload('test');
  const [result] = (await next) as [{ ok: boolean }];
  t.true(result.ok);

  const after = await peerCert(port, ca.cert, 'api.example.test');
  t.not(after.fingerprint, before.fingerprint);
  // The keep-alive connection made before the swap still serves requests.
  const again = await get(port, '/b', { servername: 'api.example.test', ca: ca.cert, agent });
  t.is(again.status, 200);
  t.is((agent.sockets[Object.keys(agent.sockets)[0]!] ?? []).length + (agent.freeSockets[Object.keys(agent.freeSockets)[0]!] ?? []).length, 1);
  // The admin API shows each certificate's expiry.
  const cfg = (await (await fetch(`${gw.adminUrl()}/config`)).json()) as { listeners: Array<{ certificates: Array<{ names: string[]; notAfter: string; fingerprint256: string }> }> };
  const api = cfg.listeners[0]!.certificates.find((c) => c.names.includes('api.example.test'))!;
  t.is(api.fingerprint256, after.fingerprint);
  t.true(Date.parse(api.notAfter) > Date.now());
});

test('watched files: a broken certificate file is rejected, logged with its name, and the old certificate keeps serving', async (t) => {
  const ca = await makeCa();
  const up = await startUpstream(t, 'svc');
  const dir = await tempDir(t);
  await writeCert(dir, 'gw', await ca.issue({ names: ['gw.test'] }));
  await writeFile(
    join(dir, 'gateway.json'),
    JSON.stringify({
      gateway: { listen: { host: '127.0.0.1', port: 0 }, tls: { cert: 'gw.crt', key: 'gw.key' } },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
      upstreams: { svc: { endpoints: [up.url] } },
      routes: [{ name: 'r', upstream: 'svc' }],
    }),
  );
  const lines: string[] = [];
  const { pino } = await import('pino');
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const gw = await Gateway.start({ config: join(dir, 'gateway.json'), logger: logger as never, watch: true });
  t.teardown(() => gw.close());
  const port = gw.address().port;
  const before = await peerCert(port, ca.cert, 'gw.test');

  // A half-written certificate file: the watcher sees it, rejects it, keeps the old one.
  let result = once(gw, 'certificates');
  await writeFile(join(dir, 'gw.crt'), '-----BEGIN CERTIFICATE-----\nnot really\n');
  const [bad] = (await result) as [{ ok: boolean; errors: string[] }];
  t.false(bad.ok);
  t.regex(bad.errors[0]!, /gw\.crt/);
  t.true(lines.some((l) => l.includes('CW_TLS_FILE') && l.includes(join(dir, 'gw.crt'))));
  t.is((await peerCert(port, ca.cert, 'gw.test')).fingerprint, before.fingerprint);
  t.is((await get(port, '/still', { servername: 'gw.test', ca: ca.cert })).status, 200);

  // The complete renewal (key first, then the certificate) is picked up without a restart.
  const renewed = await ca.issue({ names: ['gw.test'] });
  await writeFile(join(dir, 'gw.key'), renewed.key);
  for (;;) {
    result = once(gw, 'certificates');
    await writeFile(join(dir, 'gw.crt'), renewed.cert);
    const [r] = (await result) as [{ ok: boolean }];
    if (r.ok) break;
  }
  t.not((await peerCert(port, ca.cert, 'gw.test')).fingerprint, before.fingerprint);
});

test('a plain listener redirects to HTTPS with 308, path and query kept; the TLS listener sends HSTS', async (t) => {
  const ca = await makeCa();
  const dir = await tempDir(t);
  const c = await ca.issue({ names: ['shop.test'] });
  const { port, gw } = await startGateway(t, {
    gateway: {
      listeners: [
        { name: 'http', listen: { host: '127.0.0.1', port: 0 }, redirectToHttps: { port: 8443 } },
        { name: 'https', listen: { host: '127.0.0.1', port: 0 }, tls: { cert: c.cert, key: c.key }, hsts: { maxAge: 63072000, includeSubDomains: true } },
      ],
    },
    upstreams: { svc: { endpoints: [(await startUpstream(t, 'svc')).url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  void dir;
  const r = await rawRequest({ port, path: '/cart/items?id=7&x=%20y', headers: { host: 'Shop.Test:8080' } });
  t.is(r.status, 308);
  t.is(r.headers.location, 'https://shop.test:8443/cart/items?id=7&x=%20y');
  t.is(r.headers['strict-transport-security'], undefined);
  // ACME HTTP-01 challenges still reach the routes over plain HTTP.
  const acme = await rawRequest({ port, path: '/.well-known/acme-challenge/token', headers: { host: 'shop.test' } });
  t.is(acme.status, 200);
  const noHost = await rawRequest({ port, path: '/x', headers: { host: 'bad host!' } });
  t.is(noHost.status, 400);
  t.is(noHost.json().error.code, 'CW_BAD_HOST');

  // An upgrade is not proxied in plain text either.
  const { connect: netConnect } = await import('node:net');
  const raw = await new Promise<string>((resolve, reject) => {
    const so = netConnect(port, '127.0.0.1', () =>
      so.write('GET /ws?x=1 HTTP/1.1\r\nhost: shop.test\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'),
    );
    let text = '';
    so.on('data', (c: Buffer) => (text += c.toString()));
    so.on('end', () => resolve(text));
    so.on('error', reject);
  });
  t.regex(raw, /^HTTP\/1\.1 308 /);
  t.regex(raw, /\r\nlocation: https:\/\/shop\.test:8443\/ws\?x=1\r\n/);

  const s = await get(gw.address(1).port, '/x', { servername: 'shop.test', ca: ca.cert });
  t.is(s.status, 200);
  t.is(s.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains');
  const missing = await get(gw.address(1).port, '/x', { servername: 'shop.test', ca: ca.cert, host: 'shop.test' });
  t.is(missing.headers['strict-transport-security'], 'max-age=63072000; includeSubDomains');
});

test('listeners serve only their routes and hosts', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const { gw } = await startGateway(t, {
    gateway: {
      listeners: [
        { name: 'public', listen: { host: '127.0.0.1', port: 0 }, routes: ['public'] },
        { name: 'internal', listen: { host: '127.0.0.1', port: 0 }, hosts: ['*.internal.test'] },
      ],
    },
    upstreams: { a: { endpoints: [a.url] }, b: { endpoints: [b.url] } },
    routes: [
      { name: 'public', match: { prefix: '/' }, upstream: 'a' },
      { name: 'admin', match: { prefix: '/admin' }, upstream: 'b' },
    ],
  });
  const pub = gw.address(0).port;
  const internal = gw.address(1).port;
  // /admin is not served on the public listener: the catch-all it does serve takes it.
  t.is((await rawRequest({ port: pub, path: '/admin/x' })).headers['x-upstream'], 'a');
  t.is((await rawRequest({ port: internal, path: '/admin/x', headers: { host: 'ops.internal.test' } })).headers['x-upstream'], 'b');
  const other = await rawRequest({ port: internal, path: '/admin/x', headers: { host: 'www.example.test' } });
  t.is(other.status, 404);
  t.is(other.json().error.code, 'CW_ROUTE_NOT_FOUND');
});

async function mtlsGateway(t: import('ava').ExecutionContext, mode: 'require' | 'optional') {
  const ca = await makeCa('Server CA');
  const clients = await makeCa('Client CA');
  const server = await ca.issue({ names: ['gw.test'] });
  const up = await startUpstream(t, 'svc');
  const { gw } = await startGateway(t, {
    gateway: {
      listeners: [{ listen: { host: '127.0.0.1', port: 0 }, tls: { cert: server.cert, key: server.key, clientAuth: { mode, ca: clients.cert } } }],
    },
    policies: {
      orders: { authz: { allow: [{ kinds: ['service'], subjects: ['spiffe://example.test/ns/shop/sa/orders'] }] } },
    },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [
      { name: 'orders', match: { prefix: '/orders' }, upstream: 'svc', policies: ['orders'] },
      { name: 'open', match: { prefix: '/' }, upstream: 'svc' },
    ],
  });
  return { gw, ca, clients, up, port: gw.address().port };
}

test('clientAuth require: no handshake without a client certificate; a verified one is the identity authz sees', async (t) => {
  const { ca, clients, port } = await mtlsGateway(t, 'require');
  const err = await get(port, '/open', { servername: 'gw.test', ca: ca.cert }).catch((e: NodeJS.ErrnoException) => e);
  t.true(err instanceof Error);
  t.regex(String((err as NodeJS.ErrnoException).code), /ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET|EPIPE/);

  const rogue = await (await makeCa('Rogue CA')).issue({ uris: ['spiffe://example.test/ns/shop/sa/orders'], client: true });
  const bad = await get(port, '/open', { servername: 'gw.test', ca: ca.cert, cert: rogue.cert, key: rogue.key }).catch((e: Error) => e);
  t.true(bad instanceof Error);

  const orders = await clients.issue({ cn: 'orders', uris: ['spiffe://example.test/ns/shop/sa/orders'], client: true });
  const ok = await get(port, '/orders/1', { servername: 'gw.test', ca: ca.cert, cert: orders.cert, key: orders.key });
  t.is(ok.status, 200);
  const billing = await clients.issue({ cn: 'billing', uris: ['spiffe://example.test/ns/shop/sa/billing'], client: true });
  const no = await get(port, '/orders/1', { servername: 'gw.test', ca: ca.cert, cert: billing.cert, key: billing.key });
  t.is(no.status, 403);
  t.is(JSON.parse(no.body).error.code, 'CW_AUTHZ_FORBIDDEN');
});

test('clientAuth optional: without a certificate authz answers 401; a user certificate is kind user', async (t) => {
  const { ca, clients, port } = await mtlsGateway(t, 'optional');
  const anon = await get(port, '/orders/1', { servername: 'gw.test', ca: ca.cert });
  t.is(anon.status, 401);
  t.is(JSON.parse(anon.body).error.code, 'CW_AUTH_REQUIRED');
  t.is((await get(port, '/open', { servername: 'gw.test', ca: ca.cert })).status, 200);
  const alice = await clients.issue({ cn: 'alice', names: ['alice.example.test'], client: true });
  const user = await get(port, '/orders/1', { servername: 'gw.test', ca: ca.cert, cert: alice.cert, key: alice.key });
  t.is(user.status, 403);
  t.regex(JSON.parse(user.body).error.message, /kinds/);
  const orders = await clients.issue({ uris: ['spiffe://example.test/ns/shop/sa/orders'], client: true });
  t.is((await get(port, '/orders/1', { servername: 'gw.test', ca: ca.cert, cert: orders.cert, key: orders.key })).status, 200);
});

test('PEM from ${ENV}; a reload naming other certificates swaps them in, one that cannot load rejects the reload', async (t) => {
  const ca = await makeCa();
  const up = await startUpstream(t, 'svc');
  const dir = await tempDir(t);
  const first = await ca.issue({ names: ['env.test'] });
  const second = await ca.issue({ names: ['env.test'] });
  const file = join(dir, 'gateway.yaml');
  const yaml = (cert: string, key: string, extra = '') =>
    [
      'gateway:',
      '  listeners:',
      '    - listen: { host: 127.0.0.1, port: 0 }',
      `      tls: { cert: "${cert}", key: "${key}"${extra} }`,
      'admin:',
      '  listen: { host: 127.0.0.1, port: 0 }',
      'upstreams:',
      `  svc: { endpoints: ["${up.url}"] }`,
      'routes:',
      '  - { name: r, upstream: svc }',
      '',
    ].join('\n');
  await writeFile(file, yaml('${GW_CERT}', '${GW_KEY}'));
  const gw = await Gateway.start({ config: file, logger: 'silent', watch: false, env: { GW_CERT: first.cert, GW_KEY: first.key } });
  t.teardown(() => gw.close());
  const port = gw.address().port;
  const before = await peerCert(port, ca.cert, 'env.test');

  await writeCert(dir, 'second', second);
  await writeFile(file, yaml('second.crt', 'second.key'));
  const ok = await gw.reload('test');
  t.true(ok.ok);
  t.deepEqual(ok.ok && ok.restartNeeded, []);
  t.not((await peerCert(port, ca.cert, 'env.test')).fingerprint, before.fingerprint);

  await writeFile(file, yaml('missing.crt', 'second.key'));
  const bad = await gw.reload('test');
  t.false(bad.ok);
  t.regex(bad.ok ? '' : bad.message, /gateway\.listeners\[0\]\.tls\.cert .*missing\.crt: no such file/);

  // TLS protocol settings are bound to the server: applied after a restart.
  await writeFile(file, yaml('second.crt', 'second.key', ', minVersion: TLSv1.3'));
  const later = await gw.reload('test');
  t.deepEqual(later.ok && later.restartNeeded, ['gateway.listeners[0].tls']);
});

test('a client certificate is the identity of HTTP/2 requests too', async (t) => {
  const { connect } = await import('node:http2');
  const { ca, clients, port } = await mtlsGateway(t, 'optional');
  const orders = await clients.issue({ uris: ['spiffe://example.test/ns/shop/sa/orders'], client: true });
  const status = (cert?: { cert: string; key: string }) =>
    new Promise<number>((resolve, reject) => {
      const s = connect(`https://gw.test:${port}`, {
        createConnection: () => tlsConnect({ host: '127.0.0.1', port, servername: 'gw.test', ca: ca.cert, ALPNProtocols: ['h2'], ...(cert ?? {}) }),
      });
      s.on('error', reject);
      const st = s.request({ ':path': '/orders/1' });
      st.on('response', (h) => {
        resolve(Number(h[':status']));
        s.close();
      });
      st.on('error', reject);
      st.resume();
    });
  t.is(await status(orders), 200);
  t.is(await status(), 401);
});
