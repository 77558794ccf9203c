import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import test from 'ava';
import { Gateway } from '../../gateway/server.ts';
import { tempDir } from '../helpers/gateway.ts';
import { selfSigned } from '../helpers/tls.ts';
import { startUpstream } from '../helpers/upstream.ts';

test('gateway.tls serves HTTPS with the configured certificate and forwards proto=https', async (t) => {
  const up = await startUpstream(t, 'svc');
  const { cert, key } = await selfSigned(['gw.test']);
  const dir = await tempDir(t);
  await writeFile(join(dir, 'gw.crt'), cert);
  await writeFile(join(dir, 'gw.key'), key);
  await writeFile(
    join(dir, 'gateway.yaml'),
    [
      'gateway:',
      '  listen: { host: 127.0.0.1, port: 0 }',
      '  tls: { cert: gw.crt, key: gw.key }   # relative to this file',
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
  t.true(gw.url().startsWith('https://'));
  const res = await new Promise<{ status: number; body: string; peer: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: gw.address().port, path: '/secure', servername: 'gw.test', ca: cert, agent: false },
      (r) => {
        let body = '';
        r.on('data', (c: Buffer) => (body += c.toString()));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body, peer: String((r.socket as import("node:tls").TLSSocket).getPeerCertificate().subject.CN) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
  t.is(res.status, 200);
  t.is(res.peer, 'gw.test');
  const seen = up.seen[0]!;
  t.is(seen.url, '/secure');
  t.is(seen.headers['x-forwarded-proto'], 'https');
  t.regex(String(seen.headers.forwarded), /proto=https/);
  const metrics = await fetch(`${gw.adminUrl()}/metrics`).then((r) => r.text());
  const expiry = /^causeway_tls_certificate_expiry_seconds\{[^}]*subject="CN=gw\.test"[^}]*\} (-?\d+)$/m.exec(metrics);
  t.truthy(expiry, 'the certificate expiry is a metric');
  t.true(Number(expiry![1]) > 23 * 3600 && Number(expiry![1]) <= 24 * 3600, 'the test certificate is valid for a day');
});

test('a missing certificate file is a clear start-up error', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'gateway.yaml'),
    'gateway:\n  listen: { host: 127.0.0.1, port: 0 }\n  tls: { cert: missing.crt, key: missing.key }\nadmin:\n  listen: { host: 127.0.0.1, port: 0 }\n',
  );
  await t.throwsAsync(Gateway.start({ config: dir, logger: 'silent', watch: false }), {
    message: `cannot read gateway.tls.cert ${join(dir, 'missing.crt')}: no such file`,
  });
});
