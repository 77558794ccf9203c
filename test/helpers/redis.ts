// A real redis-server for tests, on 127.0.0.1 and a free port, killed by its PID in t.teardown.
// Never the default port 6379: a Redis there belongs to someone else.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';

export interface TestRedis {
  port: number;
  url: string;
  /** SIGKILL the server (by PID) and wait until it has exited. */
  stop(): Promise<void>;
  /** Start it again on the same port (empty: nothing is saved) and wait until it answers PING. */
  start(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing (a "slow" Redis). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** The running server's PID, or null while stopped. */
  pid(): number | null;
}

const PING_ATTEMPTS = 200;
const PING_DELAY_MS = 25;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** One PING over a fresh connection: true when the answer is +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

export async function startRedis(t: ExecutionContext): Promise<TestRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'causeway-redis-'));
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';

  const start = async (): Promise<void> => {
    if (child) throw new Error('redis-server is already running');
    const c = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = c;
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    let spawnError: Error | null = null;
    c.once('error', (e) => (spawnError = e));
    void exited.then(() => {
      if (child === c) child = null;
    });
    for (let i = 0; i < PING_ATTEMPTS; i++) {
      if (spawnError) throw spawnError;
      if (child !== c) throw new Error(`redis-server exited before answering PING: ${stderr}`);
      if (await ping(port)) return;
      await delay(PING_DELAY_MS);
    }
    throw new Error(`redis-server on port ${port} did not answer PING`);
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.pid === undefined) return;
    process.kill(c.pid, 'SIGKILL');
    await exited;
  };

  t.teardown(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  await start();

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    stop,
    pause() {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGSTOP');
    },
    resume() {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGCONT');
    },
    pid: () => child?.pid ?? null,
  };
}
