// Command-line options of `npm run bench -- [options]`.

export interface Options {
  quick: boolean;
  rounds: number;
  /** wrk seconds per target per round. */
  throughputSeconds: number;
  /** wrk seconds per target before the first round (not recorded). */
  warmupSeconds: number;
  /** Open-loop seconds per target per rate per round (recorded), after latencyWarmup (not recorded). */
  latencySeconds: number;
  latencyWarmup: number;
  rates: number[];
  wrkConnections: number;
  latencyConnections: number;
  jwtAlg: 'RS256' | 'HS256';
  pin: boolean;
  only: Set<string> | null;
  skipThroughput: boolean;
  skipLatency: boolean;
  /** Where the .md and .json go; default bench/results (a temp dir with --quick). */
  outDir: string | null;
}

export const HELP = `npm run bench -- [options]

  --quick                 smoke run: 1 round, 1 s per measurement (results go to a temp dir)
  --rounds N              interleaved rounds (default 5)
  --duration S            wrk seconds per target per round (default 2)
  --warmup S              wrk warm-up seconds per target before round 1 (default 2)
  --latency-duration S    open-loop seconds per target, rate and round (default 2)
  --latency-warmup S      open-loop warm-up inside each latency run, not recorded (default 0.5)
  --rates A,B             fixed rates in req/s (default 2000,1000)
  --connections N         wrk connections (default 50; one wrk thread)
  --latency-connections N keep-alive connections of the open-loop generator (default 16)
  --jwt RS256|HS256       JWT algorithm of the policy routes (default RS256 with a local JWKS file)
  --only a,b,...          only these targets (ids: direct, nginx, haproxy, undici, fastify,
                          cw-plain, cw-jwt-rl, cw-5-policies, cw-100-routes, cw-1000-routes,
                          cw-1w-shared, cw-2w-shared)
  --no-throughput         skip wrk measurements
  --no-latency            skip fixed-rate measurements
  --no-pin                do not pin processes to cores with taskset
  --out DIR               write the results there
  --help
`;

function num(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < min) throw new Error(`${name} needs a number ≥ ${min}`);
  return n;
}

export function parseOptions(argv: string[]): Options | 'help' {
  const quick = argv.includes('--quick');
  const o: Options = {
    quick,
    rounds: quick ? 1 : 5,
    throughputSeconds: quick ? 1 : 2,
    warmupSeconds: quick ? 0.5 : 2,
    latencySeconds: quick ? 1 : 2,
    latencyWarmup: quick ? 0.3 : 0.5,
    rates: [2000, 1000],
    wrkConnections: 50,
    latencyConnections: 16,
    jwtAlg: 'RS256',
    pin: true,
    only: null,
    skipThroughput: false,
    skipLatency: false,
    outDir: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = (): string | undefined => argv[++i];
    switch (a) {
      case '--quick':
        break;
      case '--help':
      case '-h':
        return 'help';
      case '--rounds':
        o.rounds = Math.round(num(a, next(), 1));
        break;
      case '--duration':
        o.throughputSeconds = num(a, next(), 1);
        break;
      case '--warmup':
        o.warmupSeconds = num(a, next(), 0);
        break;
      case '--latency-duration':
        o.latencySeconds = num(a, next(), 0.5);
        break;
      case '--latency-warmup':
        o.latencyWarmup = num(a, next(), 0);
        break;
      case '--rates':
        o.rates = (next() ?? '').split(',').map((r) => num(a, r, 1));
        break;
      case '--connections':
        o.wrkConnections = Math.round(num(a, next(), 1));
        break;
      case '--latency-connections':
        o.latencyConnections = Math.round(num(a, next(), 1));
        break;
      case '--jwt': {
        const v = (next() ?? '').toUpperCase();
        if (v !== 'RS256' && v !== 'HS256') throw new Error('--jwt takes RS256 or HS256');
        o.jwtAlg = v;
        break;
      }
      case '--only':
        o.only = new Set((next() ?? '').split(',').filter(Boolean));
        break;
      case '--no-throughput':
        o.skipThroughput = true;
        break;
      case '--no-latency':
        o.skipLatency = true;
        break;
      case '--no-pin':
        o.pin = false;
        break;
      case '--out':
        o.outDir = next() ?? null;
        break;
      default:
        throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  // wrk takes whole seconds.
  o.throughputSeconds = Math.max(1, Math.round(o.throughputSeconds));
  o.warmupSeconds = Math.round(o.warmupSeconds);
  return o;
}
