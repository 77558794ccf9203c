// Turns one run's raw figures into the results file: medians over rounds, ratios to nginx and to
// the bare Node proxies from the same run, cost growth, and the issue's targets.
import type { LoadgenResult, WrkResult } from './load.ts';
import type { OtherCpu } from './cpu.ts';
import type { Machine } from './machine.ts';

export interface TargetInfo {
  id: string;
  label: string;
  kind: 'direct' | 'peer' | 'causeway';
}

export interface Results {
  started: string;
  finished: string;
  options: Record<string, unknown>;
  machine: Machine;
  pinned: boolean;
  jwtAlg: string;
  targets: TargetInfo[];
  skipped: Array<{ id: string; why: string }>;
  /** Key `<target>|small` or `<target>|large`: one wrk result per round. */
  throughput: Record<string, WrkResult[]>;
  /** Key `<target>|<rate>`: one load generator result per round. */
  latency: Record<string, LoadgenResult[]>;
  memory: Record<string, { hwmKiB: number; rssKiB: number } | null>;
  /** Per Causeway target: status of GET /metrics on its admin port, access log lines it wrote. */
  observability: Record<string, { metricsStatus: number; accessLogLines: number }>;
  /** CPU used by other work on the machine during the run. */
  otherCpu: OtherCpu | null;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fmtRatio = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '—');
const fmtMs = (us: number): string => (Number.isFinite(us) ? (us / 1000).toFixed(2) : '—');
const fmtSignedMs = (us: number): string => (Number.isFinite(us) ? `${us >= 0 ? '+' : ''}${(us / 1000).toFixed(2)}` : '—');
const fmtMiB = (kib: number | undefined): string => (kib === undefined ? '—' : `${(kib / 1024).toFixed(0)} MiB`);

export interface Summary {
  rps: Record<string, number>;
  lat: Record<string, { p50: number; p90: number; p99: number; max: number; errors: number; achieved: number }>;
}

export function summarise(r: Results): Summary {
  const rps: Record<string, number> = {};
  for (const [k, runs] of Object.entries(r.throughput)) rps[k] = median(runs.map((x) => x.rps));
  const lat: Summary['lat'] = {};
  for (const [k, runs] of Object.entries(r.latency)) {
    lat[k] = {
      p50: median(runs.map((x) => x.p50_us)),
      p90: median(runs.map((x) => x.p90_us)),
      p99: median(runs.map((x) => x.p99_us)),
      max: median(runs.map((x) => x.max_us)),
      errors: runs.reduce((a, x) => a + x.errors, 0),
      achieved: median(runs.map((x) => x.achieved_rps)),
    };
  }
  return { rps, lat };
}

function verdict(ok: boolean | null): string {
  return ok === null ? 'not measured' : ok ? '**met**' : '**missed**';
}

export function renderMarkdown(r: Results): string {
  const s = summarise(r);
  const o = r.options as { rounds: number; throughputSeconds: number; warmupSeconds: number; latencySeconds: number; latencyWarmup: number; rates: number[]; wrkConnections: number; latencyConnections: number; quick: boolean };
  const label = new Map(r.targets.map((t) => [t.id, t.label]));
  const has = (id: string): boolean => label.has(id);
  const out: string[] = [];
  const rps = (id: string, body = 'small'): number => s.rps[`${id}|${body}`] ?? NaN;
  const mem = (id: string) => r.memory[id] ?? undefined;
  const m = r.machine;
  const load0 = m.loadAverageAtStart[0] ?? 0;
  const load1 = m.loadAverageAtEnd?.[0] ?? 0;

  out.push(`# Benchmark run ${r.started.slice(0, 16).replace('T', ' ')} UTC${o.quick ? ' (quick smoke run)' : ''}`);
  out.push('');
  out.push(
    `Produced by \`npm run bench\` (bench/run.ts) at commit \`${m.git.commit}\`` +
      (m.git.dirty.length > 0 ? ` with uncommitted changes in ${m.git.dirty.length} tracked file(s) (${m.git.dirty.slice(0, 8).join(', ')}${m.git.dirty.length > 8 ? ', …' : ''})` : '') +
      `. ${o.rounds} interleaved round(s): every target once per round, order reversed every other round; the figures are medians over the rounds.`,
  );
  out.push('');
  out.push('## Machine');
  out.push('');
  out.push(`- CPU: ${m.cpuModel}, ${m.cores} cores; ${m.memoryGiB} GiB memory; Linux ${m.kernel}`);
  out.push(`- Node ${m.node}; nginx ${m.nginx ?? 'not installed'}; HAProxy ${m.haproxy ?? 'not installed'}; wrk ${m.wrk ?? 'not installed'}; cc: ${m.cc ?? 'none'}`);
  out.push(
    `- Pinning: ${r.pinned ? 'with `taskset`: every proxy on core 0 (one worker / thread / process each); the upstream nginx, wrk and the load generator share core 1' : 'none (taskset missing or --no-pin): every process floats'}.`,
  );
  const oc = r.otherCpu;
  const busyElsewhere = oc ? oc.otherCores > 0.1 : Math.max(load0, load1) > 1;
  out.push(
    `- Load average (1, 5, 15 min) at start ${m.loadAverageAtStart.join(' / ')}, at end ${m.loadAverageAtEnd?.join(' / ') ?? '?'}.` +
      (oc
        ? ` CPU time during the run (${oc.wallSeconds} s): ${oc.totalCpuSeconds} s on the whole machine, ${oc.benchCpuSeconds} s by the benchmark's processes, **${oc.otherCpuSeconds} s by other work (${oc.otherCores} cores busy on average, of ${m.cores})**.`
        : ''),
  );
  if (busyElsewhere) {
    out.push(
      '- **Other work was running on this machine during the run**, on the same cores as the targets: absolute figures are lower and noisier (tail latencies above all) than on an idle machine. Ratios between targets measured in the same interleaved rounds are what to read.',
    );
  }
  out.push('');

  const obs = Object.entries(r.observability ?? {});
  const metricsOn = obs.length > 0 && obs.every(([, v]) => v.metricsStatus === 200);
  const accessOn = obs.length > 0 && obs.every(([, v]) => v.accessLogLines > 0);
  const accessSome = obs.some(([, v]) => v.accessLogLines > 0);
  if (obs.length > 0) {
    out.push('## What the Causeway targets ran');
    out.push('');
    out.push(
      `Gateways ran with the CLI's defaults (log level info). Metrics: ${metricsOn ? '**on** (GET /metrics on each admin port answered 200)' : `**${obs.some(([, v]) => v.metricsStatus === 200) ? 'on for some' : 'not present'}** (GET /metrics: ${obs.map(([k, v]) => `${k} ${v.metricsStatus || 'no answer'}`).join(', ')})`}. ` +
        `Access log: ${accessOn ? '**on** (every gateway wrote access log lines)' : accessSome ? `**on for some**: ${obs.map(([k, v]) => `${k} ${v.accessLogLines} lines`).join(', ')}` : '**none written** (not implemented in this build, or off by default)'}.`,
    );
    out.push('');
  }

  // Throughput.
  const peers = ['direct', 'nginx', 'haproxy', 'undici', 'fastify'];
  const order = [...peers, 'cw-plain', 'cw-jwt-rl', 'cw-5-policies', 'cw-100-routes', 'cw-1000-routes', 'cw-1w-shared', 'cw-2w-shared'].filter(has);
  if (Object.keys(s.rps).length > 0) {
    out.push(`## Throughput at saturation (wrk -t1 -c${o.wrkConnections}, ${o.throughputSeconds} s per round after ${o.warmupSeconds} s of warm-up, ~100-byte JSON body)`);
    out.push('');
    out.push('| target | req/s (median) | per round | × nginx | × undici proxy | × Fastify proxy | errors | peak RSS |');
    out.push('| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const id of order) {
      const runs = r.throughput[`${id}|small`] ?? [];
      if (runs.length === 0) continue;
      const v = rps(id);
      const errors = runs.reduce((a, x) => a + x.non2xx + x.socketErrors, 0);
      out.push(
        `| ${label.get(id)} | ${fmtInt(v)} | ${runs.map((x) => fmtInt(x.rps)).join(', ')} | ${id === 'direct' ? '—' : fmtRatio(v / rps('nginx'))} | ${fmtRatio(v / rps('undici'))} | ${fmtRatio(v / rps('fastify'))} | ${errors} | ${fmtMiB(mem(id)?.hwmKiB)} |`,
      );
    }
    out.push('');
    out.push('wrk and the upstream share one core, so "direct" is bounded by that core, not by nginx alone.');
    out.push('');
  }

  // Latency.
  if (Object.keys(s.lat).length > 0) {
    out.push(`## Latency at fixed rates (open loop, ${o.latencyConnections} keep-alive connections, ${o.latencySeconds} s recorded per round after ${o.latencyWarmup} s unrecorded)`);
    out.push('');
    out.push(
      'Each request is due at a fixed time (request k at t0 + k/rate) and its latency counts from that time, so a stall shows as latency for every request that should have been sent during it (no coordinated omission). Milliseconds; "added" is the target minus the upstream called directly in the same run (medians of the per-round percentiles).',
    );
    out.push('');
    for (const rate of o.rates) {
      const direct = s.lat[`direct|${rate}`];
      out.push(`### ${rate} req/s`);
      out.push('');
      out.push('| target | p50 | p90 | p99 | max | added p50 | added p99 | achieved req/s | errors | rate ÷ its saturation req/s |');
      out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
      for (const id of order) {
        const l = s.lat[`${id}|${rate}`];
        if (!l) continue;
        const add50 = id === 'direct' || !direct ? NaN : l.p50 - direct.p50;
        const add99 = id === 'direct' || !direct ? NaN : l.p99 - direct.p99;
        out.push(
          `| ${label.get(id)} | ${fmtMs(l.p50)} | ${fmtMs(l.p90)} | ${fmtMs(l.p99)} | ${fmtMs(l.max)} | ${id === 'direct' ? '—' : fmtSignedMs(add50)} | ${id === 'direct' ? '—' : fmtSignedMs(add99)} | ${fmtInt(l.achieved)} | ${l.errors} | ${Number.isFinite(rps(id)) ? `${Math.round((rate / rps(id)) * 100)}%` : '—'} |`,
        );
      }
      out.push('');
    }
    out.push(
      'The last column is the fixed rate as a share of the same target\'s saturation throughput in this run (wrk, above). Near or above ~70%, a single-worker proxy spends much of its time with a queue, and its percentiles measure that queueing more than the per-request cost.',
    );
    out.push('');
  }

  // Growth of cost with work.
  if (Object.keys(s.rps).length > 0) {
    out.push('## Growth of cost with work (throughput, wrk as above)');
    out.push('');
    const plain = rps('cw-plain');
    if (has('cw-plain') && (has('cw-100-routes') || has('cw-1000-routes'))) {
      out.push('Routes in the table (the measured request falls through every generated route — prefixes, `:param` paths, header predicates, regexes (1 in 5), host-bound — to the catch-all):');
      out.push('');
      out.push('| routes | req/s | × 1 route | peak RSS |');
      out.push('| ---: | ---: | ---: | ---: |');
      for (const [n, id] of [[1, 'cw-plain'], [100, 'cw-100-routes'], [1000, 'cw-1000-routes']] as const) {
        if (!has(id)) continue;
        out.push(`| ${n} | ${fmtInt(rps(id))} | ${fmtRatio(rps(id) / plain)} | ${fmtMiB(mem(id)?.hwmKiB)} |`);
      }
      out.push('');
    }
    if (has('cw-plain') && (has('cw-jwt-rl') || has('cw-5-policies'))) {
      out.push(`Policies on the route (JWT ${r.jwtAlg}, one token for every request; rate limit in memory, keyed by client address, never reached):`);
      out.push('');
      out.push('| policies | req/s | × no policies |');
      out.push('| --- | ---: | ---: |');
      out.push(`| 0 | ${fmtInt(plain)} | 1.00× |`);
      if (has('cw-jwt-rl')) out.push(`| 2: jwt, rateLimit | ${fmtInt(rps('cw-jwt-rl'))} | ${fmtRatio(rps('cw-jwt-rl') / plain)} |`);
      if (has('cw-5-policies')) out.push(`| 5: cors, methods, jwt, authz, rateLimit | ${fmtInt(rps('cw-5-policies'))} | ${fmtRatio(rps('cw-5-policies') / plain)} |`);
      out.push('');
    }
    if (has('cw-1w-shared') && has('cw-2w-shared')) {
      out.push('Workers (the plain route; neither gateway pinned, so wrk, the upstream and the workers share both cores; peak RSS of the 2-worker gateway is one worker\'s):');
      out.push('');
      out.push('| workers | req/s | × 1 worker |');
      out.push('| ---: | ---: | ---: |');
      out.push(`| 1 | ${fmtInt(rps('cw-1w-shared'))} | 1.00× |`);
      out.push(`| 2 | ${fmtInt(rps('cw-2w-shared'))} | ${fmtRatio(rps('cw-2w-shared') / rps('cw-1w-shared'))} |`);
      out.push('');
    }
    const bodyIds = order.filter((id) => r.throughput[`${id}|large`]);
    if (bodyIds.length > 0) {
      out.push('Response body size (100 B vs a 64 KiB static file from the same upstream):');
      out.push('');
      out.push('| target | 100 B req/s | 64 KiB req/s | 64 KiB ÷ 100 B | 64 KiB × nginx |');
      out.push('| --- | ---: | ---: | ---: | ---: |');
      for (const id of bodyIds) {
        out.push(
          `| ${label.get(id)} | ${fmtInt(rps(id))} | ${fmtInt(rps(id, 'large'))} | ${fmtRatio(rps(id, 'large') / rps(id))} | ${id === 'direct' ? '—' : fmtRatio(rps(id, 'large') / rps('nginx', 'large'))} |`,
        );
      }
      out.push('');
    }
  }

  // Memory.
  out.push('## Memory (after all rounds)');
  out.push('');
  out.push('| process | peak RSS (VmHWM) | RSS at the end |');
  out.push('| --- | ---: | ---: |');
  for (const id of order) {
    const mm = mem(id);
    out.push(`| ${label.get(id)}${id === 'nginx' || id === 'direct' ? ' (worker)' : ''} | ${fmtMiB(mm?.hwmKiB)} | ${fmtMiB(mm?.rssKiB)} |`);
  }
  out.push('');

  // Targets.
  const two = s.lat[`cw-plain|2000`];
  const direct2000 = s.lat[`direct|2000`];
  const add50 = two && direct2000 ? two.p50 - direct2000.p50 : NaN;
  const add99 = two && direct2000 ? two.p99 - direct2000.p99 : NaN;
  const known = (x: number): boolean | null => (Number.isFinite(x) ? true : null);
  const check = (x: number, ok: (v: number) => boolean): boolean | null => (known(x) ? ok(x) : null);
  const gwMem = mem('cw-plain')?.hwmKiB;
  const rows: Array<[string, string, string, boolean | null]> = [
    ['Plain route vs minimal undici proxy', '≥ 1.1×', fmtRatio(rps('cw-plain') / rps('undici')), check(rps('cw-plain') / rps('undici'), (v) => v >= 1.1)],
    ['Plain route vs nginx', '≥ 0.33×', fmtRatio(rps('cw-plain') / rps('nginx')), check(rps('cw-plain') / rps('nginx'), (v) => v >= 0.33)],
    [
      'JWT + rate limit + metrics + access log vs bare Fastify proxy',
      '≥ 1.0×',
      `${fmtRatio(rps('cw-jwt-rl') / rps('fastify'))} (JWT + rate limit; metrics ${r.observability?.['cw-jwt-rl']?.metricsStatus === 200 ? 'on' : 'absent'}; access log ${(r.observability?.['cw-jwt-rl']?.accessLogLines ?? 0) > 0 ? 'on' : 'absent'})`,
      check(rps('cw-jwt-rl') / rps('fastify'), (v) => v >= 1.0),
    ],
    ['Added latency at 2000 req/s, p50', '≤ 0.5 ms', `${fmtSignedMs(add50)} ms`, check(add50, (v) => v <= 500)],
    ['Added latency at 2000 req/s, p99', '≤ 2 ms', `${fmtSignedMs(add99)} ms`, check(add99, (v) => v <= 2000)],
    ['Sidecar pair with mTLS, added p99 at 1000 req/s', '≤ 2.5 ms', 'the sidecar does not exist yet', null],
    ['Sidecar RSS under 1000 req/s', '≤ 60 MB', 'the sidecar does not exist yet', null],
    ['Gateway peak RSS (plain route, after all rounds)', '≤ 120 MB', gwMem === undefined ? '—' : `${(gwMem / 1024).toFixed(0)} MiB (${((gwMem * 1024) / 1e6).toFixed(0)} MB)`, gwMem === undefined ? null : (gwMem * 1024) / 1e6 <= 120],
    ['1000 routes vs 1 route', '≥ 0.90× (≤ 10% cost)', fmtRatio(rps('cw-1000-routes') / rps('cw-plain')), check(rps('cw-1000-routes') / rps('cw-plain'), (v) => v >= 0.9)],
    [
      '2 workers vs 1 worker (load generator elsewhere)',
      '≥ 1.7×',
      `${fmtRatio(rps('cw-2w-shared') / rps('cw-1w-shared'))} with wrk and the upstream on the same 2 cores (no core to spare here)`,
      null,
    ],
  ];
  out.push('## Issue #9 targets');
  out.push('');
  out.push('| target | wanted | measured | verdict |');
  out.push('| --- | --- | --- | --- |');
  for (const [what, wanted, measured, ok] of rows) out.push(`| ${what} | ${wanted} | ${measured} | ${verdict(ok)} |`);
  out.push('');

  out.push('## Not measured');
  out.push('');
  out.push('- **Causeway sidecar pair** (client sidecar → mTLS → server sidecar): `causeway sidecar` does not exist yet.');
  if (!metricsOn || !accessOn) {
    out.push(
      `- **${!metricsOn && !accessOn ? 'Metrics and access log' : !metricsOn ? 'Metrics' : 'Access log'}** on the policy route: not present in the gateway build measured (see "What the Causeway targets ran"), so the "JWT + rate limit" target is measured without ${!metricsOn && !accessOn ? 'them' : 'it'}.`,
    );
  }
  out.push(
    '- **Workers with the load generator on another machine**: this machine has 2 cores, so `cw-2w-shared` vs `cw-1w-shared` measures the workers with wrk and the upstream on the same cores; every other target is one process / worker / thread pinned to core 0.',
  );
  for (const sk of r.skipped) out.push(`- **${sk.id}**: skipped, ${sk.why}.`);
  out.push('');
  out.push('## Setup');
  out.push('');
  out.push('- Upstream: nginx, 1 worker, `return 200` with a ~100-byte JSON body, and a 64 KiB static file; `keepalive_requests` high so proxies keep their connections.');
  out.push('- nginx proxy: 1 worker, `proxy_pass` to an `upstream` block with `keepalive 128`, HTTP/1.1, `Connection ""`, proxy buffers large enough for 64 KiB in memory, no access log.');
  out.push('- HAProxy: `nbthread 1`, `mode http`, `http-reuse always`, no logs.');
  out.push('- Minimal undici proxy: `bench/peers/undici-proxy.ts`, node:http + one undici `Pool` with `pool.stream`, hop-by-hop headers removed.');
  out.push('- Fastify proxy: `bench/peers/fastify-proxy.ts`, Fastify 5 with logging off + `@fastify/http-proxy` defaults.');
  out.push('- Causeway: `node dist/cli/main.js gateway -c <generated config> --no-watch` (CLI defaults otherwise: log level info, logs to a file), compiled JavaScript (no tsx), `NODE_ENV=production`.');
  out.push('- Every response is checked before measuring (body intact, policy routes answer 401 without a token); wrk counts non-2xx/3xx and socket errors, the load generator counts non-2xx/3xx, connection errors, timeouts (5 s) and requests it could not send before the end.');
  out.push('');
  return out.join('\n');
}
