// The process supervisor behind `npm start` (examples/demo/start.ts), with small real child
// processes, and the log formatter that makes the gateway's pino lines readable.
import test from 'ava';
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { formatLogLine } from '../../examples/demo/log-format.ts';
import { canConnect, portIsFree, probeHost, Supervisor, type ChildSpec } from '../../examples/demo/supervisor.ts';
import { freePort } from '../helpers/upstream.ts';


/** A child that listens on `port`, says so, and exits 0 on SIGTERM (after a line of goodbye). */
function listener(name: string, port: number, extra = ''): ChildSpec {
  const code = `
    const net = require('node:net');
    const server = net.createServer((s) => s.end()).listen(${port}, '127.0.0.1', () => console.log('${name} listening'));
    process.on('SIGTERM', () => { console.log('${name} got SIGTERM'); server.close(() => process.exit(0)); });
    ${extra}
  `;
  return { name, command: process.execPath, args: ['-e', code], ports: [{ host: '127.0.0.1', port }], readyTimeoutMs: 10_000 };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('starts children, waits until they listen, passes their lines on, stops them last-first with SIGTERM', async (t) => {
  const [pa, pb] = [await freePort(), await freePort()];
  const lines: string[] = [];
  const sup = new Supervisor({ onLine: (name, stream, line) => lines.push(`${name}/${stream}: ${line}`) });
  t.teardown(() => sup.killAll());

  await sup.start([listener('a', pa), listener('b', pb, `console.error('b warns');`)]);
  t.true(await canConnect('127.0.0.1', pa));
  t.true(await canConnect('0.0.0.0', pb));
  const pids = sup.pids;
  t.is(pids.length, 2);

  await sup.stop();
  t.deepEqual(sup.pids, []);
  for (const pid of pids) t.false(isAlive(pid));
  t.false(await canConnect('127.0.0.1', pa));
  t.true(lines.includes('a/stdout: a listening'));
  t.true(lines.includes('b/stderr: b warns'));
  // Stopped in reverse order, each after a SIGTERM it could handle.
  const goodbyes = lines.filter((l) => l.endsWith('got SIGTERM'));
  t.deepEqual(goodbyes, ['b/stdout: b got SIGTERM', 'a/stdout: a got SIGTERM']);
  await sup.stop(); // idempotent
});

test('a child that dies while starting is reported with its output, and start() rejects', async (t) => {
  const port = await freePort();
  const sup = new Supervisor();
  t.teardown(() => sup.killAll());
  const crasher: ChildSpec = {
    name: 'gateway',
    command: process.execPath,
    args: ['-e', `console.log('booting'); console.error('Error: listen EADDRINUSE: address already in use 0.0.0.0:8080'); process.exit(3);`],
    ports: [{ host: '0.0.0.0', port: await freePort() }],
  };
  await t.throwsAsync(sup.start([listener('monolith', port), crasher]));
  const failure = await sup.failure;
  t.is(failure.name, 'gateway');
  t.is(failure.reason, 'exited with code 3');
  t.false(failure.wasReady);
  t.deepEqual(failure.tail, ['booting', 'Error: listen EADDRINUSE: address already in use 0.0.0.0:8080']);

  // The others are still running until stopped; stop() takes them down.
  t.is(sup.pids.length, 1);
  await sup.stop();
  t.deepEqual(sup.pids, []);
  t.true(await portIsFree('127.0.0.1', port));
});

test('a child that stops after it was ready is a failure too', async (t) => {
  const port = await freePort();
  const sup = new Supervisor();
  t.teardown(() => sup.killAll());
  // The child dies on its second connection: the first is the supervisor's readiness probe, the
  // second is ours, made once start() has seen it ready (no timer to race a loaded machine).
  const dieOnSecond = `let n = 0; server.on('connection', () => { if (++n === 2) { console.error('out of memory, pretend'); process.exit(1); } });`;
  await sup.start([listener('orders-service', port, dieOnSecond)]);
  const poke = connect(port, '127.0.0.1');
  poke.on('error', () => undefined);
  t.teardown(() => poke.destroy());
  const failure = await sup.failure;
  t.is(failure.name, 'orders-service');
  t.true(failure.wasReady);
  t.is(failure.reason, 'exited with code 1');
  t.is(failure.tail.at(-1), 'out of memory, pretend');
  await sup.stop();
});

test('a child that never listens fails after its ready timeout; one that ignores SIGTERM gets SIGKILL', async (t) => {
  const notes: string[] = [];
  let sawUp!: () => void;
  const up = new Promise<void>((resolve) => (sawUp = resolve));
  const sup = new Supervisor({ onNote: (m) => notes.push(m), onLine: (_n, _s, line) => line === 'up' && sawUp(), pollIntervalMs: 50 });
  t.teardown(() => sup.killAll());
  const port = await freePort();
  const stubborn: ChildSpec = {
    name: 'stubborn',
    command: process.execPath,
    args: ['-e', `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); setInterval(() => {}, 1000); console.log('up')`],
    ports: [{ host: '127.0.0.1', port }],
    readyTimeoutMs: 700,
    stopTimeoutMs: 300,
  };
  await t.throwsAsync(sup.start([stubborn]));
  const failure = await sup.failure;
  t.is(failure.name, 'stubborn');
  t.is(failure.reason, `did not accept connections on 127.0.0.1:${port} within 1s`);
  const [pid] = sup.pids;
  t.truthy(pid);
  await up; // its SIGTERM handler is in place
  await sup.stop();
  t.false(isAlive(pid!));
  t.deepEqual(notes, ['stubborn did not stop within 0.3s; sending SIGKILL']);
});

test('a command that cannot be spawned is a failure', async (t) => {
  const sup = new Supervisor();
  t.teardown(() => sup.killAll());
  await t.throwsAsync(
    sup.start([{ name: 'ghost', command: '/nonexistent/causeway-demo-binary', args: [], ports: [{ host: '127.0.0.1', port: 1 }] }]),
  );
  const failure = await sup.failure;
  t.is(failure.name, 'ghost');
  t.regex(failure.reason, /^could not be started: .*ENOENT/);
  await sup.stop();
});

test('stop() during start() ends start() without reporting a failure', async (t) => {
  const sup = new Supervisor();
  t.teardown(() => sup.killAll());
  const slow: ChildSpec = { ...listener('slow', await freePort()), args: ['-e', `setInterval(() => {}, 1000)`] };
  const starting = sup.start([slow]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await sup.stop();
  await t.throwsAsync(starting, { message: 'stopped while starting' });
  const outcome = await Promise.race([sup.failure.then(() => 'failed'), new Promise((r) => setTimeout(() => r('quiet'), 700))]);
  t.is(outcome, 'quiet');
});

test('portIsFree and probeHost', async (t) => {
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  t.false(await portIsFree('127.0.0.1', port));
  await new Promise((resolve) => server.close(resolve));
  t.true(await portIsFree('127.0.0.1', port));

  t.is(probeHost('0.0.0.0'), '127.0.0.1');
  t.is(probeHost('::'), '::1');
  t.is(probeHost('[::1]'), '::1');
  t.is(probeHost('10.1.2.3'), '10.1.2.3');
});

test('formatLogLine makes pino lines readable and leaves other lines alone', (t) => {
  const time = new Date(2024, 0, 2, 3, 4, 5, 67).getTime();
  t.is(
    formatLogLine(JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', msg: 'gateway listening', url: 'http://0.0.0.0:8080' })),
    '03:04:05.067 INFO  gateway listening url=http://0.0.0.0:8080',
  );
  t.is(
    formatLogLine(JSON.stringify({ level: 40, time, msg: 'slow', req: { method: 'GET', url: '/x' }, route: 'has space' })),
    '03:04:05.067 WARN  slow req={"method":"GET","url":"/x"} route="has space"',
  );
  t.is(
    formatLogLine(JSON.stringify({ level: 50, time, msg: 'boom', err: { type: 'Error', message: 'bad thing', code: 'CW_X', stack: 'Error: bad thing\n    at x' } })),
    '03:04:05.067 ERROR boom err="bad thing" code=CW_X\nError: bad thing\n    at x',
  );
  t.is(formatLogLine('monolith listening on http://127.0.0.1:3001'), 'monolith listening on http://127.0.0.1:3001');
  t.is(formatLogLine('{not json'), '{not json');
  t.is(formatLogLine('{"just":"json"}'), '{"just":"json"}');
});
