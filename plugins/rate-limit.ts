// rateLimit: fixed-window request budgets per key (client address, consumer, subject, claim,
// header, route, or a combination), in memory or in Redis shared by every gateway replica.
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import { parseDuration } from '../config/duration.ts';
import type { Limit, RateLimitPolicyConfig, RedisConfig } from '../config/policy-model.ts';
import type { Static } from '@sinclair/typebox';
import { cap, compileKey } from './rate-limit-key.ts';
import { DEFAULT_KEY_PREFIX, redisState, sharedRedis } from './rate-limit-redis.ts';
import { FixedWindowCounter, type WindowRes } from './rate-limit-window.ts';
import { addResponseHeader, type CompiledPolicy, type PolicyContext, type PolicyDeps, type PolicyLogger, type PolicyResult, type SharedResources, type Verdict } from './policy.ts';

type LimitConfig = Static<typeof Limit>;

export const RATE_LIMITED = 'CW_RATE_LIMITED';
export const RATE_LIMIT_UNAVAILABLE = 'CW_RATE_LIMIT_UNAVAILABLE';
/** At most one store-failure warning per policy in this interval. */
export const FAILURE_LOG_INTERVAL_MS = 5000;

/** Counters for metrics. They live as long as the SharedResources (they survive reloads). */
export interface RateLimitStats {
  /** Requests let through. */
  allowed: number;
  /** Requests answered 429. */
  limited: number;
  /**
   * Requests the shared store could not decide (Redis down, slow or erroring): each was decided
   * by the per-replica in-memory limiter (failOpen) or answered 503 (failClosed).
   */
  storeFailures: number;
  /** Requests answered 503 CW_RATE_LIMIT_UNAVAILABLE (failClosed). */
  unavailable: number;
}

export interface CompiledRateLimit extends CompiledPolicy {
  kind: 'rateLimit';
  phase: 'limit';
  stats: RateLimitStats;
  /** 'memory' or 'redis'. */
  store: 'memory' | 'redis';
  /**
   * The current state of a key's budgets (admin API), read with the limiters' `get` (nothing is
   * consumed). `consumer` picks that consumer's override limits. Rejects when the store fails.
   */
  inspect(key: string, consumer?: string): Promise<RateLimitState>;
}

/** One limit's state for a key. */
export interface LimitState {
  /** The limit's name in RateLimit headers (`<policy>-<window>`). */
  name: string;
  limit: number;
  windowSeconds: number;
  consumed: number;
  remaining: number;
  /** Milliseconds until the window resets (0: no window open for this key). */
  resetMs: number;
}

export interface RateLimitState {
  /** The key as stored (long keys are hashed, as on the request path). */
  key: string;
  /** "" for the policy's own limits, else the consumer whose override applies. */
  override: string;
  limits: LimitState[];
}

interface LimitSpec {
  requests: number;
  windowSec: number;
  /** Name of the limit in RateLimit headers: `<policy>-<window>`, e.g. per-ip-1s. */
  item: string;
}

/** A limit and its limiter: rate-limiter-flexible's with Redis, a FixedWindowCounter in memory. */
interface LimitRun<L> {
  spec: LimitSpec;
  limiter: L;
}

interface LimitSet<L = RateLimiterAbstract> {
  limits: Array<LimitRun<L>>;
  /** The RateLimit-Policy header value. */
  policyHeader: string;
}

/** What the headers are made of: RateLimiterRes (Redis) or WindowRes (memory). */
interface Decided {
  remainingPoints: number;
  msBeforeNext: number;
}

interface PolicyState {
  stats: RateLimitStats;
  lastWarnAt: number;
  failuresSinceWarn: number;
  failuresInOutage: number;
  degraded: boolean;
}

/** Results that came from the in-memory insurance limiter rather than from Redis. */
const fromFallback = new WeakSet<object>();

/** The failOpen limiter: RateLimiterMemory that marks what it decides, so failures are counted. */
class FallbackMemory extends RateLimiterMemory {
  override consume(key: string | number, points?: number, options?: { [key: string]: any }): Promise<RateLimiterRes> {
    return super.consume(key, points, options).then(
      (res) => {
        fromFallback.add(res);
        return res;
      },
      (rej: unknown) => {
        if (rej !== null && typeof rej === 'object') fromFallback.add(rej);
        throw rej;
      },
    );
  }
}

/** "1s", "90s", "1m", "1h": the window as people write it. */
function windowLabel(sec: number): string {
  if (sec % 3600 === 0) return `${sec / 3600}h`;
  if (sec % 60 === 0) return `${sec / 60}m`;
  return `${sec}s`;
}

function specs(name: string, limits: readonly LimitConfig[]): LimitSpec[] {
  const out = limits.map((l) => {
    const ms = parseDuration(l.per);
    if (ms < 1000 || ms % 1000 !== 0) {
      throw new Error(`rate limit policy "${name}": a window must be a whole number of seconds (1s or more), not ${JSON.stringify(l.per)}`);
    }
    const windowSec = ms / 1000;
    return { requests: l.requests, windowSec, item: `${name}-${windowLabel(windowSec)}` };
  });
  // Two limits with the same window (pointless, but valid) still get distinct names.
  const seen = new Map<string, number>();
  for (const s of out) seen.set(s.item, (seen.get(s.item) ?? 0) + 1);
  out.forEach((s, i) => {
    if (seen.get(s.item)! > 1) s.item = `${s.item}-${i}`;
  });
  return out;
}

function policyHeader(list: readonly LimitSpec[]): string {
  return list.map((s) => `"${s.item}";q=${s.requests};w=${s.windowSec}`).join(', ');
}

function policyState(shared: SharedResources, name: string): PolicyState {
  return shared.get(`rateLimit:state:${name}`, () => ({
    value: { stats: { allowed: 0, limited: 0, storeFailures: 0, unavailable: 0 }, lastWarnAt: 0, failuresSinceWarn: 0, failuresInOutage: 0, degraded: false },
  }));
}

/**
 * The in-memory limiter of one limit (the memory store's counter, or the Redis store's failOpen
 * insurance), kept across reloads while the policy's name and this limit are unchanged, so a
 * reload does not hand everyone a fresh budget.
 */
function windowCounter(shared: SharedResources, id: string, spec: LimitSpec): FixedWindowCounter {
  return shared.get(`rateLimit:memory:${id}:${spec.requests}/${spec.windowSec}`, () => {
    const counter = new FixedWindowCounter({ points: spec.requests, windowMs: spec.windowSec * 1000 });
    return { value: counter, close: () => counter.close() };
  });
}

/** The Redis store's failOpen insurance limiter of one limit, kept across reloads likewise. */
function memoryLimiter<T extends RateLimiterMemory>(shared: SharedResources, kind: 'fallback', id: string, spec: LimitSpec, make: new (o: { points: number; duration: number; keyPrefix: string }) => T): T {
  return shared.get(`rateLimit:${kind}:${id}:${spec.requests}/${spec.windowSec}`, () => ({
    value: new make({ points: spec.requests, duration: spec.windowSec, keyPrefix: '' }),
  }));
}

function secondsCeil(ms: number): number {
  return ms > 0 ? Math.ceil(ms / 1000) : 0;
}

export function compileRateLimit(
  name: string,
  cfg: RateLimitPolicyConfig,
  deps: PolicyDeps & { redis: RedisConfig | null },
): CompiledRateLimit {
  const store = cfg.store ?? (deps.redis ? 'redis' : 'memory');
  if (store === 'redis' && !deps.redis) {
    throw new Error(`rate limit policy "${name}" uses store "redis", but the config has no top-level "redis" section`);
  }
  const failClosed = cfg.onStoreFailure === 'failClosed';
  const headers = cfg.headers ?? 'all';
  const keyOf = compileKey(cfg.key);
  const state = policyState(deps.shared, name);
  const stats = state.stats;
  const log: PolicyLogger = deps.log;

  let client: Redis | null = null;
  let keyPrefix = '';
  if (store === 'redis') {
    client = sharedRedis(deps.shared, deps.redis!, log);
    keyPrefix = deps.redis!.keyPrefix ?? DEFAULT_KEY_PREFIX;
  }

  // Redis key: <keyPrefix><policy>:[@<consumer>:]<index>:<window>:<key>. The window is part of it
  // so that changing a limit's window never reuses a counter with the old expiry. `set` names the
  // budget: "" for `limits`, "@<consumer>" for an override.
  const limitId = (set: string, i: number, spec: LimitSpec) => `${name}:${set ? `${set}:` : ''}${i}:${windowLabel(spec.windowSec)}`;

  const buildMemorySet = (set: string, limits: readonly LimitConfig[]): LimitSet<FixedWindowCounter> => {
    const list = specs(name, limits);
    const runs = list.map((spec, i) => ({ spec, limiter: windowCounter(deps.shared, limitId(set, i, spec), spec) }));
    return { limits: runs, policyHeader: policyHeader(list) };
  };

  const buildSet = (set: string, limits: readonly LimitConfig[]): LimitSet => {
    const list = specs(name, limits);
    const runs = list.map((spec, i): LimitRun<RateLimiterAbstract> => {
      const id = limitId(set, i, spec);
      const limiter = new RateLimiterRedis({
        storeClient: client!,
        points: spec.requests,
        duration: spec.windowSec,
        keyPrefix: `${keyPrefix}${id}`,
        rejectIfRedisNotReady: true,
        insuranceLimiter: failClosed ? undefined : memoryLimiter(deps.shared, 'fallback', id, spec, FallbackMemory),
      });
      return { spec, limiter };
    });
    return { limits: runs, policyHeader: policyHeader(list) };
  };

  // Exactly one of the two kinds is built: Redis limiters, or the memory store's counters.
  const base = client !== null ? buildSet('', cfg.limits) : null;
  const overrides = new Map<string, LimitSet>();
  const memBase = client === null ? buildMemorySet('', cfg.limits) : null;
  const memOverrides = new Map<string, LimitSet<FixedWindowCounter>>();
  for (const [consumer, limits] of Object.entries(cfg.overrides ?? {})) {
    if (client !== null) overrides.set(consumer, buildSet(`@${consumer}`, limits));
    else memOverrides.set(consumer, buildMemorySet(`@${consumer}`, limits));
  }

  const storeFailed = (error: unknown): void => {
    stats.storeFailures++;
    state.failuresSinceWarn++;
    state.failuresInOutage++;
    state.degraded = true;
    const now = Date.now();
    if (now - state.lastWarnAt < FAILURE_LOG_INTERVAL_MS) return;
    state.lastWarnAt = now;
    const failures = state.failuresSinceWarn;
    state.failuresSinceWarn = 0;
    log.warn(
      {
        policy: name,
        ...(client ? redisState(client) : {}),
        error: error instanceof Error ? error.message : undefined,
        failures,
        onStoreFailure: failClosed ? 'failClosed' : 'failOpen',
      },
      failClosed
        ? 'rate limit store unavailable: answering 503 CW_RATE_LIMIT_UNAVAILABLE'
        : 'rate limit store unavailable: limiting per replica in memory',
    );
  };

  const storeOk = (): void => {
    if (!state.degraded) return;
    state.degraded = false;
    log.info({ policy: name, ...(client ? redisState(client) : {}), failures: state.failuresInOutage }, 'rate limit store available again');
    state.failuresInOutage = 0;
    state.failuresSinceWarn = 0;
    state.lastWarnAt = 0;
  };

  const refund = (set: LimitSet, allowed: ReadonlyArray<RateLimiterRes | null>, key: string): void => {
    // A request refused by one limit does not use up the others (best effort).
    for (let i = 0; i < allowed.length; i++) {
      if (allowed[i]) set.limits[i]!.limiter.reward(key, 1).catch(() => {});
    }
  };

  /** The 429 when limit `worst` (of those that refused, the one freeing up last) refused. */
  const limitedVerdict = (set: LimitSet<unknown>, worst: number, msBeforeNext: number): Verdict => {
    const reset = Math.max(1, secondsCeil(msBeforeNext));
    const verdict: Verdict = { status: 429, code: RATE_LIMITED, message: 'rate limit exceeded', headers: [['Retry-After', String(reset)]] };
    if (headers !== 'none') {
      verdict.headers!.push(['RateLimit-Policy', set.policyHeader], ['RateLimit', `"${set.limits[worst]!.spec.item}";r=0;t=${reset}`]);
    }
    return verdict;
  };

  /** RateLimit headers on an allowed request, for limit `best` (the closest to exhaustion). */
  const allowedHeaders = (ctx: PolicyContext, set: LimitSet<unknown>, best: number, r: Decided): void => {
    addResponseHeader(ctx, 'RateLimit-Policy', set.policyHeader);
    addResponseHeader(ctx, 'RateLimit', `"${set.limits[best]!.spec.item}";r=${r.remainingPoints};t=${secondsCeil(r.msBeforeNext)}`);
  };

  /**
   * The memory store: decided at once, without a promise, so a route whose other policies are
   * synchronous too runs its whole chain synchronously.
   */
  const decideMemory = (ctx: PolicyContext, set: LimitSet<FixedWindowCounter>, key: string): PolicyResult => {
    const limits = set.limits;
    const n = limits.length;
    const now = Date.now();
    if (n === 1) {
      // The common case, without the arrays.
      const l = limits[0]!;
      const r = l.limiter.consume(key, now);
      if (r.consumedPoints > l.spec.requests) {
        stats.limited++;
        return limitedVerdict(set, 0, r.msBeforeNext);
      }
      stats.allowed++;
      if (headers === 'all') allowedHeaders(ctx, set, 0, r);
      return null;
    }
    const results: WindowRes[] = new Array(n);
    let worst = -1;
    for (let i = 0; i < n; i++) {
      const r = limits[i]!.limiter.consume(key, now);
      results[i] = r;
      if (r.consumedPoints > limits[i]!.spec.requests && (worst < 0 || r.msBeforeNext > results[worst]!.msBeforeNext)) worst = i;
    }
    if (worst >= 0) {
      // A request refused by one limit does not use up the others.
      for (let i = 0; i < n; i++) {
        if (results[i]!.consumedPoints <= limits[i]!.spec.requests) limits[i]!.limiter.reward(key, 1, now);
      }
      stats.limited++;
      return limitedVerdict(set, worst, results[worst]!.msBeforeNext);
    }
    stats.allowed++;
    if (headers === 'all') {
      // The limit closest to exhaustion: fewest remaining, then the one that resets last.
      let best = 0;
      for (let i = 1; i < n; i++) {
        const a = results[i]!;
        const b = results[best]!;
        if (a.remainingPoints < b.remainingPoints || (a.remainingPoints === b.remainingPoints && a.msBeforeNext > b.msBeforeNext)) best = i;
      }
      allowedHeaders(ctx, set, best, results[best]!);
    }
    return null;
  };

  const decide = async (ctx: PolicyContext, set: LimitSet, key: string): Promise<PolicyResult> => {
    const n = set.limits.length;
    const outcomes = await Promise.allSettled(set.limits.map((l) => l.limiter.consume(key, 1)));
    const allowed: Array<RateLimiterRes | null> = new Array(n).fill(null);
    let denied: number[] | null = null;
    let error: unknown = null;
    let failed = false;
    let fallback = false;
    for (let i = 0; i < n; i++) {
      const o = outcomes[i]!;
      if (o.status === 'fulfilled') {
        allowed[i] = o.value;
        if (fromFallback.has(o.value)) fallback = true;
      } else if (o.reason instanceof RateLimiterRes) {
        (denied ??= []).push(i);
        allowed[i] = null;
        if (fromFallback.has(o.reason)) fallback = true;
        outcomes[i] = { status: 'fulfilled', value: o.reason };
      } else {
        failed = true;
        error = o.reason;
      }
    }
    if (client !== null) {
      if (failed || fallback) storeFailed(error);
      else storeOk();
    }
    if (failed) {
      if (failClosed) {
        refund(set, allowed, key);
        stats.unavailable++;
        return { status: 503, code: RATE_LIMIT_UNAVAILABLE, message: 'the rate limit store is unavailable' };
      }
      // failOpen, and even the in-memory limiter failed: let the request through.
      stats.allowed++;
      return null;
    }
    const res = (i: number): RateLimiterRes => (outcomes[i] as PromiseFulfilledResult<RateLimiterRes>).value;
    if (denied) {
      refund(set, allowed, key);
      stats.limited++;
      // The limit that frees up last decides when to come back.
      let worst = denied[0]!;
      for (const i of denied) if (res(i).msBeforeNext > res(worst).msBeforeNext) worst = i;
      return limitedVerdict(set, worst, res(worst).msBeforeNext);
    }
    stats.allowed++;
    if (headers === 'all') {
      // The limit closest to exhaustion: fewest remaining, then the one that resets last.
      let best = 0;
      for (let i = 1; i < n; i++) {
        const a = res(i);
        const b = res(best);
        if (a.remainingPoints < b.remainingPoints || (a.remainingPoints === b.remainingPoints && a.msBeforeNext > b.msBeforeNext)) best = i;
      }
      allowedHeaders(ctx, set, best, res(best));
    }
    return null;
  };

  const hasOverrides = overrides.size > 0 || memOverrides.size > 0;
  const limitState = (spec: LimitSpec, r: Decided & { consumedPoints: number } | null): LimitState => {
    const consumed = r ? Math.max(0, r.consumedPoints) : 0;
    return {
      name: spec.item,
      limit: spec.requests,
      windowSeconds: spec.windowSec,
      consumed,
      remaining: Math.max(0, spec.requests - consumed),
      resetMs: r ? Math.max(0, r.msBeforeNext) : 0,
    };
  };
  return {
    name,
    kind: 'rateLimit',
    phase: 'limit',
    store,
    stats,
    async inspect(rawKey, consumer) {
      const key = cap(rawKey);
      if (memBase !== null) {
        const set = consumer !== undefined ? memOverrides.get(consumer) : undefined;
        const use = set ?? memBase;
        const now = Date.now();
        return { key, override: set ? consumer! : '', limits: use.limits.map((l) => limitState(l.spec, l.limiter.get(key, now))) };
      }
      const set = consumer !== undefined ? overrides.get(consumer) : undefined;
      const use = set ?? base!;
      const got = await Promise.all(use.limits.map((l) => l.limiter.get(key)));
      return { key, override: set ? consumer! : '', limits: use.limits.map((l, i) => limitState(l.spec, got[i] ?? null)) };
    },
    run: memBase !== null
      ? (ctx) => {
          let set = memBase;
          if (hasOverrides) {
            const consumer = ctx.identity?.consumer;
            if (consumer !== undefined) set = memOverrides.get(consumer) ?? memBase;
          }
          return decideMemory(ctx, set, keyOf(ctx));
        }
      : (ctx) => {
          let set = base!;
          if (hasOverrides) {
            const consumer = ctx.identity?.consumer;
            if (consumer !== undefined) set = overrides.get(consumer) ?? set;
          }
          return decide(ctx, set, keyOf(ctx));
        },
  };
}
