// docs/tls.md's working example, as written: the openssl command and the config.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:http2';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { Gateway } from '../../gateway/server.ts';
import { tempDir } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { startUpstream } from '../helpers/upstream.ts';

const run = promisify(execFile);

test('docs/tls.md: the openssl certificate and the example config serve HTTP/2 with HSTS and redirect plain HTTP', async (t) => {
  const doc = await readFile(new URL('../../docs/tls.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## A working example'), doc.indexOf('## Listeners'));
  const openssl = /```sh\n(openssl[\s\S]*?)```/.exec(section)?.[1];
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  if (!openssl || !yaml) return t.fail('the example blocks are missing');
  const dir = await tempDir(t);
  await run('bash', ['-euc', openssl], { cwd: dir });

  const up = await startUpstream(t, 'monolith');
  // Free ports for the test; everything else as written.
  const config = yaml
    .replace(/listen: \{ host: 0\.0\.0\.0, port: \d+ \}/g, 'listen: { host: 127.0.0.1, port: 0 }')
    .replace('http://127.0.0.1:3000', up.url)
    .concat('admin:\n  listen: { host: 127.0.0.1, port: 0 }\n');
  await writeFile(join(dir, 'gateway.yaml'), config);
  const gw = await Gateway.start({ config: join(dir, 'gateway.yaml'), logger: 'silent', watch: false });
  t.teardown(() => gw.close());

  const redirect = await rawRequest({ port: gw.address(0).port, path: '/orders?id=7', headers: { host: 'localhost:8080' } });
  t.is(redirect.status, 308);
  t.is(redirect.headers.location, 'https://localhost:8443/orders?id=7');

  const ca = await readFile(join(dir, 'gateway.crt'));
  const session = connect(`https://localhost:${gw.address(1).port}`, { ca });
  t.teardown(() => session.close());
  const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const st = session.request({ ':path': '/' });
    st.on('response', (h) => resolve(h));
    st.on('error', reject);
    st.resume();
  });
  t.is(headers[':status'], 200);
  t.is(headers['strict-transport-security'], 'max-age=31536000');
  t.is(session.alpnProtocol, 'h2');
});
