// `gateway.workers: N`: N gateway processes share the listeners through node:cluster.
//
// The primary runs no gateway. It forks the workers, restarts one that dies, drains them all on
// SIGTERM/SIGINT, passes SIGHUP on as a reload, replaces them one at a time on SIGUSR2, and owns
// the admin listener (admin.listen). Each worker is a whole Gateway with its own state (routes,
// pools, in-memory rate limits: shared-nothing except Redis) and an admin listener of its own on
// 127.0.0.1 at a port only the primary uses; the primary's admin API asks every worker and
// merges the answers (metrics summed by prom-client's AggregatorRegistry, reload sent to all).
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { pino } from 'pino';
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import { compile, resolveWorkers } from '../config/compile.ts';
import { loadConfig } from '../config/load.ts';
import { warnIfAdminExposed } from './admin.ts';
import type { Gateway } from './server.ts';

/** Messages between the primary and a worker (over the cluster IPC channel). */
type WorkerMessage =
  | { cw: 'ready'; admin: string; urls: string[]; address: AddressInfo }
  | { cw: 'reload'; reason: string };

/**
 * undici's request, imported on the primary's first admin call: a worker (and a single gateway)
 * imports this module too, and undici costs ≈ 18 MiB resident where nothing else loads it.
 */
const request: typeof import('undici').request = async (...args) => (await import('undici')).request(...args);

/** How a worker that died during start-up is retried: longer waits while it keeps dying. */
const RESTART_BACKOFF_MS = [100, 500, 1000, 2000, 5000, 10_000];

interface WorkerState {
  id: number;
  worker: Worker;
  /** The worker's own admin URL once it is ready. */
  admin: string | null;
  startedAt: number;
  /** Replaced in a rolling restart or stopping: its exit is expected. */
  retiring: boolean;
}

/** What a cluster runs with: the worker count and the settings the primary needs. */
export interface ClusterPlan {
  count: number;
  settings: ReturnType<typeof compile>;
}

/**
 * Load the config once and decide: a plan when more than one worker is asked for (--workers,
 * else gateway.workers), else null. An invalid config gives null too: the single-process start
 * reports it, with every issue, as it would without workers.
 */
export async function clusterPlan(opts: { config: string; workers: number | null }): Promise<ClusterPlan | null> {
  if (opts.workers === 1) return null;
  const loaded = await loadConfig(opts.config);
  if (!loaded.ok) return null;
  const count = opts.workers ?? resolveWorkers(loaded.model.gateway?.workers);
  return count > 1 ? { count, settings: compile(loaded.model, loaded.sources, () => null) } : null;
}

/** Run the primary until it is stopped; the exit code. */
export async function runPrimary(logLevel: string, plan: ClusterPlan): Promise<number> {
  const log = pino({ level: logLevel, base: { pid: process.pid, role: 'primary' } }, pino.destination({ dest: 1, sync: false }));
  const { count, settings } = plan;
  const workers = new Map<number, WorkerState>();
  let stopping = false;
  let everReady = false;
  let restarts = 0;
  let failures = 0;
  // Workers run this same command (process.argv, execArgv): CAUSEWAY_WORKER makes it a worker.
  cluster.setupPrimary({});

  const registry = new Registry();
  new Gauge({
    name: 'causeway_cluster_workers',
    help: 'Worker processes of this gateway (gateway.workers), by state (ready, starting).',
    labelNames: ['state'],
    registers: [registry],
    aggregator: 'first',
    collect() {
      let ready = 0;
      for (const w of workers.values()) if (w.admin !== null) ready++;
      this.set({ state: 'ready' }, ready);
      this.set({ state: 'starting' }, workers.size - ready);
    },
  });
  new Gauge({
    name: 'causeway_cluster_worker_restarts',
    help: 'Workers the primary started again after one exited unexpectedly.',
    registers: [registry],
    aggregator: 'first',
    collect() {
      this.set(restarts);
    },
  });

  let resolveStarted!: (ok: boolean) => void;
  const started = new Promise<boolean>((r) => (resolveStarted = r));
  let resolveStopped!: () => void;
  const allStopped = new Promise<void>((r) => (resolveStopped = r));

  const spawn = (id: number): WorkerState => {
    const worker = cluster.fork({ CAUSEWAY_WORKER: String(id) });
    const state: WorkerState = { id, worker, admin: null, startedAt: Date.now(), retiring: false };
    workers.set(worker.id, state);
    worker.on('message', (msg: WorkerMessage) => {
      if (msg?.cw !== 'ready') return;
      state.admin = msg.admin;
      failures = 0;
      if (!everReady && [...workers.values()].filter((w) => w.admin !== null).length === count) {
        everReady = true;
        resolveStarted(true);
        log.info(
          { workers: count, urls: msg.urls, address: msg.address, admin: admin.server.address(), pids: [...workers.values()].map((w) => w.worker.process.pid) },
          `causeway gateway listening on ${msg.urls.join(', ')} (admin ${adminUrl(admin)}) with ${count} workers`,
        );
      }
    });
    worker.on('exit', (code, signal) => {
      workers.delete(worker.id);
      if (workers.size === 0 && stopping) resolveStopped();
      if (stopping || state.retiring) return;
      if (!everReady) {
        // A worker that cannot start (port in use, bad certificate…) will not start on a retry
        // either: stop the rest and exit with its message (it printed it).
        log.error({ worker: id, code, signal }, 'a worker failed to start; stopping');
        resolveStarted(false);
        return;
      }
      failures++;
      restarts++;
      const wait = RESTART_BACKOFF_MS[Math.min(failures - 1, RESTART_BACKOFF_MS.length - 1)]!;
      log.warn({ worker: id, pid: worker.process.pid, exitCode: code, signal, restartInMs: wait, code: 'CW_WORKER_EXITED' }, 'a worker exited; starting another');
      setTimeout(() => {
        if (!stopping) spawn(id);
      }, wait).unref();
    });
    return state;
  };

  /** Each ready worker's admin API answer for a path (the client's Authorization passed on). */
  const askAll = async (method: 'GET' | 'POST', path: string, authorization: string | undefined) => {
    const ready = [...workers.values()].filter((w) => w.admin !== null);
    return Promise.all(
      ready.map(async (w) => {
        try {
          const res = await request(`${w.admin}${path}`, {
            method,
            headers: authorization ? { authorization } : {},
            headersTimeout: 10_000,
            bodyTimeout: 10_000,
          });
          const text = await res.body.text();
          return { worker: w, status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text };
        } catch (err) {
          return { worker: w, status: 502, contentType: 'application/json', text: JSON.stringify({ error: { code: 'CW_WORKER_UNREACHABLE', message: (err as Error).message } }) };
        }
      }),
    );
  };

  /** Every ready worker's answer; null once the reply is sent (a worker's failure passed on, or none ready). */
  const askEvery = async (reply: FastifyReply, method: 'GET' | 'POST', path: string, authorization: string | undefined) => {
    const answers = await askAll(method, path, authorization);
    const bad = answers.find((a) => a.status !== 200);
    if (bad) {
      passOn(reply, bad);
      return null;
    }
    if (answers.length === 0) {
      noWorker(reply);
      return null;
    }
    return answers as [(typeof answers)[number], ...typeof answers];
  };

  const admin: FastifyInstance = Fastify({ logger: false });
  admin.get('/healthz', async () => ({ status: 'ok', workers: workers.size }));
  admin.get('/readyz', async (_req, reply) => {
    const ready = [...workers.values()].filter((w) => w.admin !== null).length;
    if (stopping) return reply.code(503).send({ ready: false, reason: 'draining' });
    if (ready === 0) return reply.code(503).send({ ready: false, reason: 'no worker is ready', workers: workers.size });
    return { ready: true, workers: { ready, total: workers.size, configured: count } };
  });
  admin.get('/metrics', async (req, reply) => {
    const answers = await askEvery(reply, 'GET', '/metrics.json', req.headers.authorization);
    if (answers === null) return reply;
    const parts = answers.map((a) => JSON.parse(a.text) as object[]);
    parts.push(await registry.getMetricsAsJSON());
    const merged = AggregatorRegistry.aggregate(parts);
    reply.header('content-type', merged.contentType);
    return merged.metrics();
  });
  admin.get('/config', async (req, reply) => {
    const answers = await askAll('GET', '/config', req.headers.authorization);
    const first = answers[0];
    if (!first) return noWorker(reply);
    if (first.status !== 200) return passOn(reply, first);
    const body = JSON.parse(first.text) as Record<string, unknown>;
    const processErrors = { unhandledRejections: 0, uncaughtExceptions: 0 };
    const versions = new Set<string>();
    for (const a of answers) {
      if (a.status !== 200) continue;
      const b = JSON.parse(a.text) as { version: string; processErrors: typeof processErrors };
      versions.add(b.version);
      processErrors.unhandledRejections += b.processErrors.unhandledRejections;
      processErrors.uncaughtExceptions += b.processErrors.uncaughtExceptions;
    }
    return {
      ...body,
      processErrors,
      workers: {
        configured: count,
        restarts,
        versions: [...versions],
        list: [...workers.values()].map((w) => ({ worker: w.id, pid: w.worker.process.pid, ready: w.admin !== null, startedAt: new Date(w.startedAt).toISOString() })),
      },
    };
  });
  admin.post('/reload', async (req, reply) => {
    const answers = await askEvery(reply, 'POST', '/reload', req.headers.authorization);
    if (answers === null) return reply;
    return { ...(JSON.parse(answers[0].text) as object), workers: answers.length };
  });
  admin.get('/.well-known/jwks.json', async (req, reply) => {
    const answers = await askAll('GET', '/.well-known/jwks.json', req.headers.authorization);
    const keys = new Map<string, unknown>();
    for (const a of answers) {
      if (a.status !== 200) continue;
      for (const k of (JSON.parse(a.text) as { keys: Array<{ kid?: string }> }).keys) keys.set(k.kid ?? JSON.stringify(k), k);
    }
    reply.header('cache-control', 'max-age=60');
    return { keys: [...keys.values()] };
  });
  // Live route stats: every worker's raw counters, merged, turned into the answer by one worker
  // (it has the route table).
  admin.get('/api/routes', async (req, reply) => {
    const answers = await askEvery(reply, 'GET', '/cluster/stats', req.headers.authorization);
    if (answers === null) return reply;
    const res = await request(`${answers[0].worker.admin}/cluster/routes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) },
      body: `[${answers.map((a) => a.text).join(',')}]`,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    return passOn(reply, { status: res.statusCode, contentType: String(res.headers['content-type'] ?? 'application/json'), text: await res.body.text() });
  });
  // Everything else (the JSON API, the dashboard) is asked of one ready worker.
  admin.all('/*', async (req, reply) => {
    const one = [...workers.values()].find((w) => w.admin !== null);
    if (!one) return noWorker(reply);
    const res = await request(`${one.admin}${req.url}`, {
      method: req.method as 'GET',
      headers: req.headers.authorization ? { authorization: req.headers.authorization } : {},
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    reply.code(res.statusCode);
    for (const h of ['content-type', 'cache-control', 'location']) if (res.headers[h] !== undefined) reply.header(h, res.headers[h]);
    return reply.send(body);
  });

  try {
    await admin.listen({ host: settings.admin.host, port: settings.admin.port });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    console.error(`causeway: cannot listen on ${settings.admin.host}:${settings.admin.port} (admin.listen): ${e.code === 'EADDRINUSE' ? 'the address is already in use' : e.message}`);
    return 1;
  }

  warnIfAdminExposed(log, settings.admin, settings.model.admin?.token);

  for (let i = 1; i <= count; i++) spawn(i);

  const stopAll = async (signal: NodeJS.Signals): Promise<number> => {
    stopping = true;
    log.info({ signal, workers: workers.size }, 'shutting down: draining every worker');
    if (workers.size === 0) resolveStopped();
    const codes: number[] = [];
    for (const w of workers.values()) {
      w.worker.once('exit', (code) => codes.push(code ?? 1));
      w.worker.process.kill('SIGTERM');
    }
    // The workers drain within drainTimeout; past it (and a margin) they are killed.
    const deadline = delay(settings.gateway.drainTimeoutMs + 5000, 'late' as const, { ref: false });
    if ((await Promise.race([allStopped.then(() => 'done' as const), deadline])) === 'late') {
      log.error({ workers: workers.size }, 'workers did not stop in time; killing them');
      for (const w of workers.values()) w.worker.process.kill('SIGKILL');
      await allStopped;
      codes.push(1);
    }
    await admin.close();
    log.info({}, 'stopped');
    return codes.every((c) => c === 0) ? 0 : 1;
  };

  /** SIGUSR2: replace the workers one at a time, each after its successor is ready. */
  let rolling = false;
  const rollingRestart = async () => {
    if (rolling || stopping) return;
    rolling = true;
    log.info({ workers: workers.size }, 'rolling restart');
    for (const old of [...workers.values()]) {
      if (stopping) break;
      const next = spawn(old.id);
      while (next.admin === null && workers.has(next.worker.id) && !stopping) await delay(20);
      if (!workers.has(next.worker.id)) {
        log.error({ worker: old.id }, 'rolling restart: the new worker did not start; keeping the old one');
        break;
      }
      old.retiring = true;
      const exited = new Promise((r) => old.worker.once('exit', r));
      old.worker.process.kill('SIGTERM');
      await exited;
    }
    rolling = false;
    log.info({ workers: workers.size }, 'rolling restart done');
  };

  return new Promise<number>((resolveExit) => {
    let stopRequested = false;
    const onStop = (signal: NodeJS.Signals) => {
      if (stopRequested) {
        log.warn({ signal }, 'second signal: killing the workers now');
        for (const w of workers.values()) w.worker.process.kill('SIGKILL');
        process.exit(1);
      }
      stopRequested = true;
      void stopAll(signal).then(resolveExit);
    };
    process.on('SIGTERM', () => onStop('SIGTERM'));
    process.on('SIGINT', () => onStop('SIGINT'));
    process.on('SIGHUP', () => {
      for (const w of workers.values()) w.worker.send({ cw: 'reload', reason: 'SIGHUP' } satisfies WorkerMessage);
    });
    process.on('SIGUSR2', () => void rollingRestart());
    void started.then(async (ok) => {
      if (ok || stopRequested) return;
      stopRequested = true;
      await stopAll('SIGTERM');
      resolveExit(1);
    });
  });
}

/** In a worker: tell the primary where its admin API is, and take reloads from it. */
export function joinCluster(gw: Gateway): void {
  const send = process.send?.bind(process);
  if (!send) return;
  process.on('message', (msg: WorkerMessage) => {
    if (msg?.cw === 'reload') void gw.reload(msg.reason);
  });

  releaseChannel();
  const urls = gw.listenerInfo().map((l) => l.url);
  send({ cw: 'ready', admin: gw.adminUrl(), urls, address: gw.address() } satisfies WorkerMessage);
}

/** The worker number in a cluster worker, else undefined. */
export function workerNumber(): number | undefined {
  if (cluster.isPrimary) return undefined;
  const n = Number(process.env.CAUSEWAY_WORKER);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * The channel to the primary must not keep a worker alive: once started (or failed), a worker
 * exits like a single gateway when its listeners are closed. (Until then the channel must hold
 * the process: a worker's listen() waits for the primary's answer.)
 */
export function releaseChannel(): void {
  (process.channel as { unref?: () => void } | undefined)?.unref?.();
}

function adminUrl(app: FastifyInstance): string {
  const a = app.server.address();
  if (a === null || typeof a === 'string') return String(a);
  return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
}

function noWorker(reply: FastifyReply): FastifyReply {
  return reply.code(503).send({ error: { code: 'CW_NO_WORKER', message: 'no worker is ready' } });
}

function passOn(reply: FastifyReply, a: { status: number; contentType: string; text: string }): FastifyReply {
  return reply.code(a.status).header('content-type', a.contentType).send(a.text);
}

