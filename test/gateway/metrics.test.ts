import test from 'ava';
import { startGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/http.ts';
import { freePort, startUpstream } from '../helpers/upstream.ts';

function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

test('GET /metrics on the admin port: the numbers move as traffic flows', async (t) => {
  const up = await startUpstream(t, 'svc');
  const dead = await freePort();
  const gw = await startGateway(t, {
    upstreams: { svc: { endpoints: [up.url] }, gone: { endpoints: [`http://127.0.0.1:${dead}`] } },
    policies: { keys: { apiKey: {} } },
    consumers: { acme: { keys: ['acme-key-0123456789abcdef'] } },
    routes: [
      { name: 'api', upstream: 'svc', match: { prefix: '/api' } },
      { name: 'private', upstream: 'svc', match: { prefix: '/private' }, policies: ['keys'] },
      { name: 'broken', upstream: 'gone', match: { prefix: '/broken' } },
    ],
  });
  const scrape = async () => {
    const res = await fetch(`${gw.adminUrl}/metrics`);
    t.regex(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  };
  const before = await scrape();
  const ok = { route: 'api', backend: 'svc', method: 'GET', status_class: '2xx', reporter: 'gateway' };
  t.is(sample(before, 'causeway_requests_total', ok), 0);
  for (let i = 0; i < 3; i++) t.is((await rawRequest({ port: gw.port, path: '/api/x' })).status, 200);
  t.is((await rawRequest({ port: gw.port, path: '/private' })).status, 401);
  t.is((await rawRequest({ port: gw.port, path: '/broken' })).status, 502);
  t.is((await rawRequest({ port: gw.port, path: '/nowhere/%2F' })).status, 400);
  const after = await scrape();
  t.is(sample(after, 'causeway_requests_total', ok), 3);
  t.is(sample(after, 'causeway_request_duration_seconds_count', ok), 3);
  t.true(sample(after, 'causeway_response_bytes_total', ok) > 0);
  t.is(sample(after, 'causeway_requests_total', { route: 'private', backend: '-', status_class: '4xx' }), 1);
  t.is(sample(after, 'causeway_policy_denials_total', { route: 'private', code: 'CW_AUTH_MISSING' }), 1);
  t.is(sample(after, 'causeway_requests_total', { route: 'broken', backend: 'gone', status_class: '5xx' }), 1);
  t.is(sample(after, 'causeway_upstream_connect_failures', { upstream: 'gone' }), 1);
  t.is(sample(after, 'causeway_upstream_endpoint_ejected', { upstream: 'gone' }), 1);
  t.is(sample(after, 'causeway_requests_total', { route: '-', status_class: '4xx' }), 1, 'a rejected path counts without a route label of its own');
  t.is(sample(after, 'causeway_config_info', { version: gw.gw.snapshot.version }), 1);
});
