// Certificate rotation under load: the certificate and key files of a TLS listener are
// replaced several times (write to a temporary file, rename into place, as cert-manager and
// certbot do) while clients keep opening new TLS connections. No request may fail, and new
// connections get the newest certificate.
import { X509Certificate } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import test from 'ava';
import { tempDir } from '../helpers/gateway.ts';
import { makeCa, type TestCert } from '../helpers/tls.ts';
import { startUpstream } from '../helpers/upstream.ts';
import { startGatewayProcess } from '../hardening/helpers/process.ts';
import { load } from './helpers/load.ts';

function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const cert: PeerCertificate = s.getPeerCertificate();
      s.destroy();
      resolve(cert.fingerprint256);
    });
    s.on('error', reject);
  });
}

test('certificate files rewritten several times under load: zero failed requests, new connections get the new certificate', async (t) => {
  const ca = await makeCa();
  const dir = await tempDir(t);
  const certFile = join(dir, 'gw.crt');
  const keyFile = join(dir, 'gw.key');
  const install = async (c: TestCert) => {
    await writeFile(`${keyFile}.tmp`, c.key);
    await writeFile(`${certFile}.tmp`, c.cert);
    await rename(`${keyFile}.tmp`, keyFile);
    await rename(`${certFile}.tmp`, certFile);
  };
  await install(await ca.issue({ names: ['localhost'], ips: ['127.0.0.1'] }));
  const up = await startUpstream(t, 'svc');
  const gp = await startGatewayProcess(t, {
    gateway: { listen: { host: '127.0.0.1', port: 0 }, tls: { cert: certFile, key: keyFile }, accessLog: { enabled: false } },
    upstreams: { svc: { endpoints: [up.url] } },
    routes: [{ name: 'r', upstream: 'svc' }],
  });
  const cli = gp.cli;
  const next = await Promise.all([1, 2, 3].map(() => ca.issue({ names: ['localhost'], ips: ['127.0.0.1'] })));
  const fingerprint = (c: TestCert) => new X509Certificate(c.cert).fingerprint256;

  let rotated!: () => void;
  const rotations = new Promise<void>((r) => (rotated = r));
  const renewedSeen: string[] = [];
  const rotate = async () => {
    for (const c of next) {
      const mark = cli.logs.length;
      await install(c);
      // The renewal is logged once the new certificate is installed.
      await cli.waitForLog((l) => cli.logs.indexOf(l) >= mark && typeof l.msg === 'string' && l.msg.endsWith('renewed'));
      renewedSeen.push(await servedFingerprint(gp.port, ca.cert));
    }
    rotated();
  };
  const result = await load({ port: gp.port, total: 20_000, concurrency: 8, ca: ca.cert, fresh: true, until: rotations, at: { 100: rotate } });
  await result.hooks;
  t.deepEqual(result.failed, [], JSON.stringify(result.tally));
  t.true(result.answers.length > 100 && result.answers.length < 20_000, `${result.answers.length} requests spanned the rotations`);
  t.deepEqual(renewedSeen, next.map(fingerprint), 'after each rotation, a new connection got the new certificate');
});
