// Instructions per proxied request, counted by valgrind's callgrind: `npm run bench:icount`.
//
// Wall-clock throughput on a shared or virtualised 2-core machine moves by 2× between rounds (see
// bench/NOTES.md); an instruction count does not: the same build, inputs and request sequence give
// the same count whatever else the machine does. So this is the figure to compare two builds of
// the hot path with. It counts user-space instructions of every thread of the proxy process (V8's
// helper threads and libuv's pool included), not time: the kernel's share of a request (the
// socket reads and writes, the same four syscalls for every Node proxy here) is not in it, and
// instructions are not all equally fast.
//
// Each target runs under `valgrind --tool=callgrind` against the suite's nginx upstream (not under
// valgrind); this process sends `--warmup` requests, zeroes the counters (`callgrind_control -z`),
// sends `--requests` more over 8 keep-alive connections, dumps (`callgrind_control -d`) and reads
// the total. Writes bench/results/<date>-<time>-icount.md and .json.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayConf, jwtSetup, SMALL_PATH, upstreamNginxConf, type GatewayVariant } from './lib/configs.ts';
import { describeMachine, findRoot, findTools, which } from './lib/machine.ts';
import { childPids, freePort, installCleanup, startProcess, stopAll, waitReady, type Managed } from './lib/procs.ts';

interface Options {
  requests: number;
  warmup: number;
  only: string[] | null;
  out: string | null;
  /** Extra node flags for the Causeway targets (e.g. --max-semi-space-size=8). */
  nodeArgs: string[];
  /** Where to keep each target's callgrind dump (for callgrind_annotate), or null. */
  keepDumps: string | null;
}

const HELP = `npm run bench:icount -- [options]

  --requests N   requests counted per target (default 4000)
  --warmup N     requests before counting starts (default 10000)
  --only a,b     only these targets (ids below)
  --out DIR      write the results there instead of bench/results
  --node-args S  extra node flags for the Causeway targets, space-separated
                 (e.g. "--max-semi-space-size=8"); recorded with the results
  --keep-dumps DIR  keep each target's callgrind dump of the counted requests
                 there as <id>.callgrind (read with callgrind_annotate)

Targets: undici, fastify, cw-plain, cw-plain-nolog, cw-jwt-rl, cw-1000-routes.
Needs valgrind (apt-get install valgrind) and nginx. Takes about a minute per target.`;

function parse(argv: string[]): Options | 'help' {
  const o: Options = { requests: 4000, warmup: 10000, only: null, out: null, nodeArgs: [], keepDumps: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--help' || a === '-h') return 'help';
    else if (a === '--requests') o.requests = positive(a, next());
    else if (a === '--warmup') o.warmup = positive(a, next());
    else if (a === '--only') o.only = next().split(',');
    else if (a === '--out') o.out = next();
    else if (a === '--node-args') o.nodeArgs = next().split(' ').filter((x) => x !== '');
    else if (a === '--keep-dumps') o.keepDumps = next();
    else throw new Error(`unknown option ${a} (--help lists them)`);
  }
  return o;
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} wants a positive integer, not ${JSON.stringify(v)}`);
  return n;
}

const log = (msg: string): void => console.log(`[icount ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Exactly `n` GETs over `conc` keep-alive connections; throws unless every answer is a 200. */
async function send(port: number, n: number, headers: Record<string, string>, conc = 8): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: conc });
  let sent = 0;
  let done = 0;
  let bad = 0;
  await new Promise<void>((resolve) => {
    const next = (): void => {
      if (sent >= n) return;
      sent++;
      get({ host: '127.0.0.1', port, path: SMALL_PATH, agent, headers }, (res) => {
        if (res.statusCode !== 200) bad++;
        res.resume();
        res.on('end', () => (++done === n ? resolve() : next()));
      }).on('error', () => {
        bad++;
        if (++done === n) resolve();
        else next();
      });
    };
    for (let i = 0; i < conc; i++) next();
  });
  agent.destroy();
  if (bad > 0) throw new Error(`${bad} of ${n} requests did not get a 200`);
}

function callgrindControl(flag: '-z' | '-d', pid: number): void {
  const r = spawnSync('callgrind_control', [flag, String(pid)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`callgrind_control ${flag} ${pid} failed: ${r.stderr || r.stdout}`);
}

/** The newest dump `callgrind_control -d` wrote for `pid`. */
function newestDump(dir: string, pid: number): string {
  const dumps = readdirSync(dir)
    .filter((f) => f.startsWith(`cg.${pid}.`))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (dumps.length === 0) throw new Error(`no callgrind dump for pid ${pid} in ${dir}`);
  return dumps[0]!;
}

/** The total instruction count of a callgrind dump. */
function dumpTotal(file: string): number {
  const m = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no totals line in ${file}`);
  return Number(m[1]);
}

/**
 * Instructions V8's background TurboFan jobs spent in a dump: the inclusive cost of their entry
 * point, as `callgrind_annotate` reads it (0 when no job ran in the counted window). Optimising
 * compilation goes on for tens of thousands of requests after start (bench/NOTES.md, session 6);
 * it is a cost of warming up, not of a request, and it is what made runs of one build differ.
 */
function compileInstructions(file: string): number {
  const r = spawnSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', '--auto=no', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`callgrind_annotate ${file} failed: ${r.stderr}`);
  const m = /^\s*([\d,]+) \([^)]*\)\s+\S*OptimizingCompileDispatcher::CompileTask::RunInternal\(/m.exec(r.stdout);
  return m ? Number(m[1]!.replace(/,/g, '')) : 0;
}

interface Row {
  id: string;
  label: string;
  /** All user-space instructions of the counted window, per request. */
  instructionsPerRequest: number;
  /** Of those, TurboFan's background compilation. */
  compilePerRequest: number;
  /** instructionsPerRequest without compilePerRequest: the request's own work. */
  steadyPerRequest: number;
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  if (o === 'help') {
    console.log(HELP);
    return 0;
  }
  const tools = findTools();
  const missing = ['valgrind', 'callgrind_control'].filter((b) => which(b) === null);
  if (tools.nginx === null) missing.push('nginx');
  if (missing.length > 0) {
    console.error(`icount needs ${missing.join(', ')}: apt-get install valgrind nginx`);
    return 2;
  }
  const root = findRoot();
  const tmp = mkdtempSync(join(tmpdir(), 'causeway-icount-'));
  installCleanup(
    (why) => log(`stopping (${why})`),
    () => rmSync(tmp, { recursive: true, force: true }),
  );
  const rows: Row[] = [];
  try {
    const upstreamPort = await freePort();
    const upDir = join(tmp, 'upstream');
    const up = startProcess('upstream nginx', tools.nginx!, ['-e', join(upDir, 'error.log'), '-p', upDir, '-c', upstreamNginxConf(upDir, upstreamPort)], {
      logFile: join(tmp, 'upstream.log'),
    });
    await waitReady(up, upstreamPort, SMALL_PATH);
    up.children = childPids(up.pid);
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
    mkdirSync(join(tmp, 'jwt'));
    const jwt = await jwtSetup(join(tmp, 'jwt'), 'RS256');
    const cgDir = join(tmp, 'callgrind');
    mkdirSync(cgDir);
    const gatewayMain = join(root, 'dist/cli/main.js');
    const gateway = async (id: string, port: number, variant: GatewayVariant, accessLog = true): Promise<string[]> => {
      const adminPort = await freePort();
      const conf = gatewayConf(join(tmp, 'gateways'), id, port, adminPort, upstreamPort, variant, jwt);
      if (!accessLog) {
        const c = JSON.parse(readFileSync(conf, 'utf8')) as { gateway: Record<string, unknown> };
        c.gateway.accessLog = { enabled: false };
        writeFileSync(conf, JSON.stringify(c, null, 2));
      }
      return [...o.nodeArgs, gatewayMain, 'gateway', '-c', conf, '--no-watch'];
    };
    const bearer = { authorization: `Bearer ${jwt.token}` };
    const targets: Array<{ id: string; label: string; args: (port: number) => Promise<string[]>; headers?: Record<string, string> }> = [
      { id: 'undici', label: 'minimal node:http + undici Pool (bench/peers)', args: async (p) => [join(root, 'dist/bench/peers/undici-proxy.js'), String(p), upstreamUrl] },
      { id: 'fastify', label: 'bare Fastify + @fastify/http-proxy', args: async (p) => [join(root, 'dist/bench/peers/fastify-proxy.js'), String(p), upstreamUrl] },
      { id: 'cw-plain', label: 'Causeway gateway, 1 route, no policies (access log and metrics on)', args: (p) => gateway('cw-plain', p, { kind: 'plain' }) },
      { id: 'cw-plain-nolog', label: 'Causeway gateway, 1 route, no policies, access log off', args: (p) => gateway('cw-plain-nolog', p, { kind: 'plain' }, false) },
      { id: 'cw-jwt-rl', label: 'Causeway gateway, JWT (RS256) + rate limit (memory)', args: (p) => gateway('cw-jwt-rl', p, { kind: 'policies', set: 'jwt+rateLimit' }), headers: bearer },
      // The request falls through 999 generated routes to the catch-all: its cost over cw-plain is
      // what the route table costs, without the 2× wall-clock noise of the suite's throughput rounds.
      { id: 'cw-1000-routes', label: 'Causeway gateway, 1000 routes (the request falls through to the catch-all)', args: (p) => gateway('cw-1000-routes', p, { kind: 'routes', count: 1000 }) },
    ];
    for (const t of targets) {
      if (o.only !== null && !o.only.includes(t.id)) continue;
      const port = await freePort();
      const args = await t.args(port);
      log(`${t.id}: starting under callgrind`);
      const proc: Managed = startProcess(
        t.id,
        'valgrind',
        ['--tool=callgrind', `--callgrind-out-file=${join(cgDir, 'cg.%p')}`, '--dump-instr=no', process.execPath, ...args],
        { cwd: root, env: { ...process.env, ...jwt.env, NODE_ENV: 'production' }, logFile: join(tmp, `${t.id}.log`) },
      );
      await waitReady(proc, port, SMALL_PATH, t.headers ?? {}, 180_000);
      await send(port, o.warmup, t.headers ?? {});
      callgrindControl('-z', proc.pid);
      await send(port, o.requests, t.headers ?? {});
      callgrindControl('-d', proc.pid);
      const dump = newestDump(cgDir, proc.pid);
      const total = dumpTotal(dump);
      const compile = compileInstructions(dump);
      const perRequest = Math.round(total / o.requests);
      const compilePerRequest = Math.round(compile / o.requests);
      if (o.keepDumps !== null) {
        mkdirSync(o.keepDumps, { recursive: true });
        copyFileSync(dump, join(o.keepDumps, `${t.id}.callgrind`));
      }
      rows.push({ id: t.id, label: t.label, instructionsPerRequest: perRequest, compilePerRequest, steadyPerRequest: perRequest - compilePerRequest });
      log(`${t.id}: ${perRequest.toLocaleString('en-US')} instructions per request, ${compilePerRequest.toLocaleString('en-US')} of them TurboFan compiling`);
      proc.child.kill('SIGKILL');
      await proc.done;
    }
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  const now = new Date();
  const stamp = `${now.toISOString().slice(0, 10)}-${now.toISOString().slice(11, 16).replace(':', '')}`;
  const outDir = o.out ?? join(root, 'bench/results');
  mkdirSync(outDir, { recursive: true });
  const machine = describeMachine(findTools(), root);
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
  const base = (id: string): number | null => rows.find((r) => r.id === id)?.steadyPerRequest ?? null;
  const ratio = (n: number, id: string): string => {
    const b = base(id);
    return b === null ? '—' : `${(n / b).toFixed(2)}×`;
  };
  const md = [
    `# Instructions per request ${now.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Produced by \`npm run bench:icount\` (bench/icount.ts) at commit \`${commit}\`: each proxy under \`valgrind --tool=callgrind\`, ${o.warmup} requests of warm-up, then ${o.requests} counted (GET, ~100-byte JSON answer from an nginx upstream, 8 keep-alive connections). User-space instructions of all the proxy's threads; the kernel's share of a request is not in it. "TurboFan compiling" is what V8's background optimising compiler did in the counted window (a cost of warming up, which goes on for tens of thousands of requests); "without it" is the request's own work, and the ratios are of that column. Fewer is better; "× undici" below 1 means less work per request than the minimal undici proxy.`,
    '',
    ...(o.nodeArgs.length > 0 ? [`Causeway targets ran with \`node ${o.nodeArgs.join(' ')}\`.`, ''] : []),
    `Machine: ${machine.cpuModel}, ${machine.cores} cores; Node ${process.versions.node}; valgrind ${spawnSync('valgrind', ['--version'], { encoding: 'utf8' }).stdout.trim()}.`,
    '',
    '| target | instructions per request | of which TurboFan compiling | without it | × undici proxy | × Fastify proxy |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.instructionsPerRequest.toLocaleString('en-US')} | ${r.compilePerRequest.toLocaleString('en-US')} | ${r.steadyPerRequest.toLocaleString('en-US')} | ${ratio(r.steadyPerRequest, 'undici')} | ${ratio(r.steadyPerRequest, 'fastify')} |`,
    ),
    '',
  ].join('\n');
  writeFileSync(join(outDir, `${stamp}-icount.md`), md);
  writeFileSync(join(outDir, `${stamp}-icount.json`), JSON.stringify({ date: now.toISOString(), commit, options: { requests: o.requests, warmup: o.warmup, only: o.only, nodeArgs: o.nodeArgs }, machine, rows }, null, 2));
  console.log(`\n${md}`);
  log(`results: ${join(outDir, `${stamp}-icount.md`)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    console.error(`icount: ${(err as Error).message}`);
    await stopAll();
    process.exit(1);
  },
);
