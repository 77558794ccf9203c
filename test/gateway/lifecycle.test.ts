// The gateway as a real process: SIGTERM drains in-flight requests, SIGHUP reloads,
// a busy port gives a clear message.
import { request } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { tempDir, withTestListeners } from '../helpers/gateway.ts';
import { rawRequest, type RawResponse } from '../helpers/http.ts';
import { runCli, startCli } from '../helpers/process.ts';
import { startUpstream } from '../helpers/upstream.ts';

test('SIGTERM: requests in flight complete, readiness turns off, the process exits 0', async (t) => {
  const held: Array<() => void> = [];
  let arrived: () => void = () => {};
  const allArrived = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream(t, 'slow', (_req, res) => {
    held.push(() => res.end('finished'));
    if (held.length === 3) arrived();
  });
  const dir = await tempDir(t);
  const file = join(dir, 'gw.json');
  await writeFile(file, JSON.stringify(withTestListeners({ gateway: { drainTimeout: '30s' }, upstreams: { slow: { endpoints: [up.url] } }, routes: [{ name: 'r', upstream: 'slow' }] })));
  const gw = startCli(t, ['gateway', '-c', file]);
  const ready = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  const port: number = ready.address.port;
  const adminPort: number = ready.admin.port;

  const inflight: Array<Promise<RawResponse>> = [];
  for (let i = 0; i < 3; i++) inflight.push(rawRequest({ port, path: `/work/${i}` }));
  await allArrived;
  gw.child.kill('SIGTERM');
  await gw.waitForLog((l) => l.msg === 'draining');
  const readyz = await rawRequest({ port: adminPort, path: '/readyz' });
  t.is(readyz.status, 503);
  // New connections are refused once draining has begun.
  await t.throwsAsync(rawRequest({ port, path: '/late' }), { code: 'ECONNREFUSED' });
  for (const release of held) release();
  const responses = await Promise.all(inflight);
  t.deepEqual(responses.map((r) => [r.status, r.text]), [[200, 'finished'], [200, 'finished'], [200, 'finished']]);
  const exit = await gw.exited;
  t.deepEqual(exit, { code: 0, signal: null });
  t.truthy(gw.logs.find((l) => l.msg === 'stopped' && l.drained === true));
});

test('the drain deadline ends requests that take too long, and the process still exits 0', async (t) => {
  let arrived: () => void = () => {};
  const hanging = new Promise<void>((r) => (arrived = r));
  const up = await startUpstream(t, 'stuck', () => arrived());
  const dir = await tempDir(t);
  const file = join(dir, 'gw.json');
  await writeFile(file, JSON.stringify(withTestListeners({ gateway: { drainTimeout: '300ms' }, upstreams: { s: { endpoints: [up.url] } }, routes: [{ name: 'r', upstream: 's' }] })));
  const gw = startCli(t, ['gateway', '-c', file]);
  const ready = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  const pending = new Promise<string>((resolve) => {
    const req = request({ host: '127.0.0.1', port: ready.address.port, path: '/', agent: false }, (res) => resolve(`status ${res.statusCode}`));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    req.end();
  });
  await hanging;
  gw.child.kill('SIGTERM');
  t.is(await pending, 'ECONNRESET');
  t.deepEqual(await gw.exited, { code: 0, signal: null });
  t.truthy(gw.logs.find((l) => l.msg === 'stopped' && l.drained === false));
});

test('SIGHUP reloads the config', async (t) => {
  const a = await startUpstream(t, 'a');
  const b = await startUpstream(t, 'b');
  const dir = await tempDir(t);
  const file = join(dir, 'gw.json');
  const cfg = (url: string) => JSON.stringify(withTestListeners({ upstreams: { u: { endpoints: [url] } }, routes: [{ name: 'r', upstream: 'u' }] }));
  await writeFile(file, cfg(a.url));
  const gw = startCli(t, ['gateway', '-c', file, '--no-watch']);
  const ready = await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('causeway gateway listening'));
  t.is((await rawRequest({ port: ready.address.port, path: '/' })).json().upstream, 'a');
  await writeFile(file, cfg(b.url));
  gw.child.kill('SIGHUP');
  const loaded = await gw.waitForLog((l) => l.reason === 'SIGHUP');
  t.regex(loaded.msg, /^config [0-9a-f]{12} loaded$/);
  t.is((await rawRequest({ port: ready.address.port, path: '/' })).json().upstream, 'b');
  gw.child.kill('SIGTERM');
  t.is((await gw.exited).code, 0);
});

test('a port in use and an invalid config give clear messages and exit 1', async (t) => {
  const busy = await startUpstream(t, 'busy');
  const dir = await tempDir(t);
  const file = join(dir, 'gw.yaml');
  await writeFile(file, `gateway:\n  listen: { host: 127.0.0.1, port: ${busy.port} }\nadmin:\n  listen: { host: 127.0.0.1, port: 0 }\nroutes: []\n`);
  const inUse = await runCli(['gateway', '-c', file]);
  t.is(inUse.code, 1);
  t.regex(inUse.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busy.port} \\(gateway\\.listen\\): the address is already in use`));

  await writeFile(file, 'routes:\n  - name: r\n    upstream: nowhere\n');
  const invalid = await runCli(['gateway', '-c', file]);
  t.is(invalid.code, 1);
  t.regex(invalid.stderr, /gw\.yaml:3:\d+ routes\[0\]\.upstream: .*unknown upstream "nowhere"/);

  const missing = await runCli(['gateway', '-c', join(dir, 'nope.yaml')]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /nope\.yaml.*(does not exist|not found)/i);

  const badFlag = await runCli(['gateway', '-c', file, '--confg', 'x']);
  t.is(badFlag.code, 1);
  t.regex(badFlag.stderr, /unknown option '--confg'/);
});
