// The Causeway benchmark suite: `npm run bench` (see bench/README.md).
//
// Starts, on 127.0.0.1 and pinned to cores when taskset is there: a cheap nginx upstream (core 1,
// shared with the load tools), and in front of it, one worker each on core 0, Causeway gateways
// (plain, with policies, with many routes), nginx, HAProxy, bare Fastify + @fastify/http-proxy and
// a minimal node:http + undici proxy. Measures them interleaved over several rounds, writes
// bench/results/<date>-<time>.md and .json, and stops every process it started by PID.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import {
  gatewayConf,
  haproxyConf,
  jwtSetup,
  LARGE_BODY_BYTES,
  LARGE_PATH,
  proxyNginxConf,
  SMALL_BODY,
  SMALL_PATH,
  upstreamNginxConf,
  type GatewayVariant,
  type JwtSetup,
} from './lib/configs.ts';
import { buildLoadgen, runLoadgen, runWrk, type LoadgenResult, type WrkResult } from './lib/load.ts';
import { markCpu, otherCpuSince, processTicks } from './lib/cpu.ts';
import { describeMachine, findRoot, findTools, type Machine } from './lib/machine.ts';
import { HELP, parseOptions, type Options } from './lib/options.ts';
import {
  childPids,
  freePort,
  installCleanup,
  memoryOf,
  pinned,
  setPinning,
  startProcess,
  stopAll,
  waitReady,
  type Managed,
} from './lib/procs.ts';
import { renderMarkdown, type Results, type TargetInfo } from './lib/report.ts';

const PROXY_CPU = 0;
const LOAD_CPU = 1;

const log = (msg: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Target {
  info: TargetInfo;
  port: number;
  proc: Managed | null;
  /** The process whose memory is reported (the nginx worker, not its master). */
  memPid: () => number | null;
  headers: string[];
}

function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function headerObject(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    out[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return out;
}

/** Each target must really proxy: the small and large bodies come back intact, policies refuse a request without a token. */
async function verify(t: Target, withLarge: boolean): Promise<void> {
  const small = await get(t.port, SMALL_PATH, headerObject(t.headers));
  if (small.status !== 200 || small.body.toString() !== SMALL_BODY) {
    throw new Error(`${t.info.id}: GET ${SMALL_PATH} gave ${small.status} ${small.body.toString().slice(0, 200)}`);
  }
  if (withLarge) {
    const large = await get(t.port, LARGE_PATH, headerObject(t.headers));
    if (large.status !== 200 || large.body.length !== LARGE_BODY_BYTES) {
      throw new Error(`${t.info.id}: GET ${LARGE_PATH} gave ${large.status}, ${large.body.length} bytes`);
    }
  }
  if (t.headers.length > 0) {
    const anon = await get(t.port, SMALL_PATH, {});
    if (anon.status !== 401) throw new Error(`${t.info.id}: a request without a token gave ${anon.status}, not 401: are the policies on?`);
  }
}

async function main(): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    return 2;
  }
  if (opts === 'help') {
    console.log(HELP);
    return 0;
  }
  const o = opts;
  const root = findRoot();
  const state: { interrupted: string | null; tmp: string | null } = { interrupted: null, tmp: null };
  installCleanup(
    (why) => {
      state.interrupted = why;
      console.error(`\nbench: ${why}: stopping every process started by the benchmark`);
    },
    () => {
      if (state.tmp) rmSync(state.tmp, { recursive: true, force: true });
    },
  );

  const cpuMark = markCpu();
  // What is installed. Nothing is installed here: missing tools are reported and their targets skipped.
  const tools = findTools();
  const missing: string[] = [];
  if (!tools.nginx) missing.push('nginx (the upstream and the nginx target)');
  if (!tools.haproxy) missing.push('haproxy (the HAProxy target)');
  if (!tools.wrk) missing.push('wrk (throughput at saturation)');
  if (!tools.cc) missing.push('cc (builds the open-loop load generator for the latency runs)');
  if (missing.length > 0) {
    console.error(`bench: missing: ${missing.join('; ')}.`);
    console.error('bench: install them with: apt-get install nginx haproxy wrk gcc   (nothing is installed automatically)');
  }
  if (!tools.nginx) {
    console.error('bench: nginx is required for the upstream; stopping.');
    return 1;
  }
  if (!tools.taskset && o.pin) console.error('bench: taskset not found (util-linux): processes are not pinned to cores.');
  setPinning(o.pin ? tools.taskset : null);

  const gatewayMain = join(root, 'dist/cli/main.js');
  const undiciPeer = join(root, 'dist/bench/peers/undici-proxy.js');
  const fastifyPeer = join(root, 'dist/bench/peers/fastify-proxy.js');
  for (const f of [gatewayMain, undiciPeer, fastifyPeer]) {
    if (!existsSync(f)) {
      console.error(`bench: ${relative(root, f)} is missing: run it with \`npm run bench\`, which builds the gateway and bench/ first.`);
      return 1;
    }
  }

  const machine: Machine = describeMachine(tools, root);
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'causeway-bench-'));
  state.tmp = tmp;
  chmodSync(tmp, 0o755); // nginx workers run as another user when started by root
  log(`temporary directory ${tmp}; load average ${machine.loadAverageAtStart.join(' ')}`);
  if (machine.cores < 2) console.error('bench: fewer than 2 cores: the load tools share the core of the proxies.');

  const want = (id: string): boolean => o.only === null || o.only.has(id) || id === 'direct';
  const targets: Target[] = [];
  const skipped: Array<{ id: string; why: string }> = [];
  let failed = false;
  let results: Results | null = null;

  try {
    // The load generator, compiled now with the system cc.
    let loadgen: string | null = null;
    if (tools.cc && !o.skipLatency) {
      loadgen = await buildLoadgen(tools.cc, join(root, 'bench/loadgen/loadgen.c'), tmp);
      log('load generator compiled');
    }

    // The upstream.
    const upstreamPort = await freePort();
    const upDir = join(tmp, 'upstream');
    const up = startProcess('upstream nginx', tools.nginx, ['-e', join(upDir, 'error.log'), '-p', upDir, '-c', upstreamNginxConf(upDir, upstreamPort)], {
      cpu: LOAD_CPU,
      logFile: join(tmp, 'upstream.log'),
    });
    await waitReady(up, upstreamPort, SMALL_PATH);
    up.children = childPids(up.pid);
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
    targets.push({
      info: { id: 'direct', label: 'upstream called directly (nginx `return 200`)', kind: 'direct' },
      port: upstreamPort,
      proc: up,
      memPid: () => up.children[0] ?? null,
      headers: [],
    });

    const jwt: JwtSetup = await jwtSetup(tmp, o.jwtAlg);
    const bearer = [`Authorization: Bearer ${jwt.token}`];

    const start = async (
      info: TargetInfo,
      make: (port: number) => Promise<Managed>,
      headers: string[] = [],
      memOfChild = false,
    ): Promise<void> => {
      if (!want(info.id)) return;
      const port = await freePort();
      const proc = await make(port);
      await waitReady(proc, port, SMALL_PATH, headerObject(headers));
      if (memOfChild) proc.children = childPids(proc.pid);
      targets.push({ info, port, proc, memPid: () => (memOfChild ? (proc.children[0] ?? null) : proc.pid), headers });
    };

    await start(
      { id: 'nginx', label: 'nginx proxy_pass, keepalive upstream', kind: 'peer' },
      async (port) => {
        const dir = join(tmp, 'nginx-proxy');
        return startProcess('nginx proxy', tools.nginx!, ['-e', join(dir, 'error.log'), '-p', dir, '-c', proxyNginxConf(dir, port, upstreamPort)], {
          cpu: PROXY_CPU,
          logFile: join(tmp, 'nginx-proxy.log'),
        });
      },
      [],
      true,
    );
    if (tools.haproxy) {
      await start({ id: 'haproxy', label: 'HAProxy, 1 thread, http-reuse always', kind: 'peer' }, async (port) =>
        startProcess('haproxy', tools.haproxy!, ['-db', '-f', haproxyConf(join(tmp, 'haproxy'), port, upstreamPort)], {
          cpu: PROXY_CPU,
          logFile: join(tmp, 'haproxy.log'),
        }),
      );
    } else {
      skipped.push({ id: 'haproxy', why: 'haproxy is not installed (apt-get install haproxy)' });
    }
    await start({ id: 'undici', label: 'minimal node:http + undici Pool (bench/peers)', kind: 'peer' }, async (port) =>
      startProcess('undici proxy', process.execPath, [undiciPeer, String(port), upstreamUrl], { cpu: PROXY_CPU, logFile: join(tmp, 'undici.log') }),
    );
    await start({ id: 'fastify', label: 'bare Fastify + @fastify/http-proxy', kind: 'peer' }, async (port) =>
      startProcess('fastify proxy', process.execPath, [fastifyPeer, String(port), upstreamUrl], { cpu: PROXY_CPU, logFile: join(tmp, 'fastify.log') }),
    );

    const adminPorts = new Map<string, number>();
    const gateway = (id: string, label: string, variant: GatewayVariant, headers: string[] = []): Promise<void> =>
      start(
        { id, label, kind: 'causeway' },
        async (port) => {
          const adminPort = await freePort();
          adminPorts.set(id, adminPort);
          const conf = gatewayConf(join(tmp, 'gateways'), id, port, adminPort, upstreamPort, variant, jwt);
          // The CLI's defaults (log level info): what a user runs, access log and metrics included where they exist.
          return startProcess(id, process.execPath, [gatewayMain, 'gateway', '-c', conf, '--no-watch'], {
            cpu: PROXY_CPU,
            cwd: root,
            env: { ...process.env, ...jwt.env, NODE_ENV: 'production' },
            logFile: join(tmp, `${id}.log`),
          });
        },
        headers,
      );
    await gateway('cw-plain', 'Causeway gateway, 1 route, no policies', { kind: 'plain' });
    await gateway('cw-jwt-rl', `Causeway gateway, JWT (${jwt.alg}) + rate limit (memory)`, { kind: 'policies', set: 'jwt+rateLimit' }, bearer);
    await gateway('cw-5-policies', 'Causeway gateway, 5 policies (cors, methods, jwt, authz, rate limit)', { kind: 'policies', set: 'five' }, bearer);
    await gateway('cw-100-routes', 'Causeway gateway, 100 routes', { kind: 'routes', count: 100 });
    await gateway('cw-1000-routes', 'Causeway gateway, 1000 routes', { kind: 'routes', count: 1000 });
    // Workers: the plain route with 1 and with 2 worker processes, neither pinned, so both share
    // the machine's two cores with wrk and the upstream (the only way to give a second worker a
    // core of its own here). Their ratio is what a second worker buys on this machine.
    const unpinned = (id: string, label: string, workers: number): Promise<void> =>
      start(
        { id, label, kind: 'causeway' },
        async (port) => {
          const adminPort = await freePort();
          adminPorts.set(id, adminPort);
          const conf = gatewayConf(join(tmp, 'gateways'), id, port, adminPort, upstreamPort, { kind: 'plain' }, jwt);
          return startProcess(id, process.execPath, [gatewayMain, 'gateway', '-c', conf, '--no-watch', '--workers', String(workers)], {
            cwd: root,
            env: { ...process.env, ...jwt.env, NODE_ENV: 'production' },
            logFile: join(tmp, `${id}.log`),
          });
        },
        [],
        workers > 1,
      );
    await unpinned('cw-1w-shared', 'Causeway gateway, 1 worker, not pinned (shares both cores with wrk)', 1);
    await unpinned('cw-2w-shared', 'Causeway gateway, 2 workers, not pinned (shares both cores with wrk)', 2);

    const largeIds = new Set(['direct', 'nginx', 'haproxy', 'undici', 'fastify', 'cw-plain']);
    const latencyIds = new Set(['direct', 'nginx', 'haproxy', 'undici', 'fastify', 'cw-plain', 'cw-jwt-rl']);
    for (const t of targets) await verify(t, largeIds.has(t.info.id));
    log(`started and checked: ${targets.map((t) => `${t.info.id} (pid ${t.proc?.pid}, :${t.port})`).join(', ')}`);

    interface Case {
      key: string;
      target: Target;
      path: string;
    }
    const throughputCases: Case[] = [];
    if (tools.wrk && !o.skipThroughput) {
      for (const t of targets) throughputCases.push({ key: `${t.info.id}|small`, target: t, path: SMALL_PATH });
      for (const t of targets) if (largeIds.has(t.info.id)) throughputCases.push({ key: `${t.info.id}|large`, target: t, path: LARGE_PATH });
    } else if (!tools.wrk) {
      skipped.push({ id: 'throughput', why: 'wrk is not installed (apt-get install wrk)' });
    }
    const latencyCases: Array<Case & { rate: number }> = [];
    if (loadgen) {
      for (const rate of o.rates) for (const t of targets) if (latencyIds.has(t.info.id)) latencyCases.push({ key: `${t.info.id}|${rate}`, target: t, path: SMALL_PATH, rate });
    } else if (!o.skipLatency) {
      skipped.push({ id: 'latency', why: 'no C compiler for the load generator (apt-get install gcc)' });
    }

    const throughput: Record<string, WrkResult[]> = {};
    const latency: Record<string, LoadgenResult[]> = {};
    const wrkOpts = (seconds: number, t: Target) => ({
      seconds,
      connections: o.wrkConnections,
      threads: 1,
      headers: t.headers,
      cpu: LOAD_CPU,
    });

    const estimate =
      throughputCases.length * (o.warmupSeconds + 0.3) +
      o.rounds * (throughputCases.length * (o.throughputSeconds + 0.3) + latencyCases.length * (o.latencySeconds + o.latencyWarmup + 0.4));
    log(`measuring for about ${Math.ceil(estimate / 60)} min (${o.rounds} round(s))`);
    if (throughputCases.length > 0 && o.warmupSeconds > 0) {
      log(`warm-up: ${throughputCases.length} × ${o.warmupSeconds} s`);
      for (const c of throughputCases) await runWrk(tools.wrk!, `http://127.0.0.1:${c.target.port}${c.path}`, wrkOpts(o.warmupSeconds, c.target));
    }

    for (let round = 0; round < o.rounds && !state.interrupted; round++) {
      // Interleaved: every target once per round; the order flips every other round.
      const tc = round % 2 === 0 ? throughputCases : [...throughputCases].reverse();
      const lc = round % 2 === 0 ? latencyCases : [...latencyCases].reverse();
      log(`round ${round + 1}/${o.rounds}: ${tc.length} throughput runs, ${lc.length} fixed-rate runs`);
      for (const c of tc) {
        if (state.interrupted) break;
        const r = await runWrk(tools.wrk!, `http://127.0.0.1:${c.target.port}${c.path}`, wrkOpts(o.throughputSeconds, c.target));
        (throughput[c.key] ??= []).push(r);
        log(`  ${c.key.padEnd(22)} ${r.rps.toFixed(0).padStart(7)} req/s${r.non2xx + r.socketErrors > 0 ? `  errors ${r.non2xx + r.socketErrors}` : ''}`);
        await sleep(200);
      }
      for (const c of lc) {
        if (state.interrupted) break;
        const r = await runLoadgen(loadgen!, c.target.port, c.path, {
          rate: c.rate,
          seconds: o.latencySeconds,
          warmup: o.latencyWarmup,
          connections: o.latencyConnections,
          headers: c.target.headers,
          cpu: LOAD_CPU,
        });
        (latency[c.key] ??= []).push(r);
        log(`  ${c.key.padEnd(22)} p50 ${(r.p50_us / 1000).toFixed(2)} p99 ${(r.p99_us / 1000).toFixed(2)} max ${(r.max_us / 1000).toFixed(2)} ms${r.errors > 0 ? `  errors ${r.errors}` : ''}`);
        await sleep(200);
      }
    }
    if (state.interrupted) throw new Error(`interrupted (${state.interrupted})`);

    const memory: Record<string, { hwmKiB: number; rssKiB: number } | null> = {};
    for (const t of targets) {
      const pid = t.memPid();
      memory[t.info.id] = pid ? memoryOf(pid) : null;
    }
    // What observability the measured gateways had: GET /metrics on the admin port, access log lines written.
    const observability: Results['observability'] = {};
    for (const t of targets) {
      if (t.info.kind !== 'causeway' || !t.proc) continue;
      const admin = adminPorts.get(t.info.id);
      const metrics = admin ? await get(admin, '/metrics', {}).then((r) => r.status, () => 0) : 0;
      let accessLogLines = 0;
      try {
        accessLogLines = readFileSync(t.proc.logFile, 'utf8').split('"log":"access"').length - 1;
      } catch {
        // no log
      }
      observability[t.info.id] = { metricsStatus: metrics, accessLogLines };
    }
    machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
    let benchTicks = 0;
    for (const t of targets) {
      if (!t.proc) continue;
      benchTicks += processTicks(t.proc.pid);
      for (const c of t.proc.children) benchTicks += processTicks(c);
    }
    const otherCpu = otherCpuSince(cpuMark, benchTicks);

    results = {
      started: started.toISOString(),
      finished: new Date().toISOString(),
      options: { ...o, only: o.only ? [...o.only] : null },
      machine,
      pinned: pinned(),
      jwtAlg: jwt.alg,
      targets: targets.map((t) => t.info),
      skipped,
      throughput,
      latency,
      memory,
      otherCpu,
      observability,
    };
  } catch (err) {
    failed = true;
    if (!state.interrupted) console.error(`bench: ${(err as Error).stack ?? err}`);
  } finally {
    log('stopping every process started by the benchmark');
    await stopAll();
  }

  if (!results) {
    console.error(`bench: no results; logs of the processes are kept in ${tmp}`);
    return 1;
  }
  rmSync(tmp, { recursive: true, force: true });
  state.tmp = null;

  const stamp = results.started.slice(0, 16).replace('T', '-').replace(':', '');
  const outDir = o.outDir ?? (o.quick ? mkdtempSync(join(tmpdir(), 'causeway-bench-quick-')) : join(root, 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const md = renderMarkdown(results);
  const base = join(outDir, stamp);
  writeFileSync(`${base}.md`, md);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${md}`);
  log(`results: ${base}.md and ${base}.json`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
