import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import WebSocket, { WebSocketServer } from 'ws';
import { startGateway } from '../helpers/gateway.ts';
import { closeServer } from '../helpers/upstream.ts';

test('WebSocket upgrades pass through both ways with forwarding headers', async (t) => {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  let upgradeHeaders: Record<string, unknown> = {};
  let upgradePath = '';
  wss.on('connection', (ws, req) => {
    upgradeHeaders = req.headers;
    upgradePath = req.url ?? '';
    ws.on('message', (data) => ws.send(`echo:${data.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    await closeServer(server);
  });
  const port = (server.address() as AddressInfo).port;
  const gw = await startGateway(t, {
    upstreams: { ws: { endpoints: [`http://127.0.0.1:${port}`] } },
    routes: [
      { name: 'live', upstream: 'ws', match: { prefix: '/live' }, rewrite: { prefix: '/socket' } },
      { name: 'no-ws', upstream: 'ws', match: { prefix: '/plain' }, websocket: false },
    ],
  });
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/live/chat?room=1`);
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const reply = new Promise<string>((resolve) => ws.once('message', (d) => resolve(d.toString())));
  ws.send('hi');
  t.is(await reply, 'echo:hi');
  t.is(upgradePath, '/socket/chat?room=1');
  t.is(upgradeHeaders['x-forwarded-for'], '127.0.0.1');
  t.truthy(upgradeHeaders['x-request-id']);

  const refused = new WebSocket(`ws://127.0.0.1:${gw.port}/plain`);
  t.teardown(() => refused.terminate());
  const status = await new Promise<number>((resolve) => {
    refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    refused.once('error', () => resolve(-1));
  });
  t.is(status, 404);
});
