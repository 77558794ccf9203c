// Live per-route, per-backend traffic stats for the admin API and the dashboard.
//
// The hot path does a Map lookup and a few typed-array increments per request: counters and a
// fixed-bucket latency histogram in a ring of 5-second slots. Rates and percentiles are computed
// only when asked, from the raw data, by pure functions. The raw data is plain JSON and
// mergeable (mergeRawStats), so a cluster primary can ask each worker for its raw stats, sum
// them and compute one view (statsView) for the whole process group.

/** Width of one slot. */
export const SLOT_MS = 5000;
/** Slots kept: the window the rates and percentiles cover (12 × 5 s = 60 s). */
export const SLOTS = 12;
/** Latency buckets: ≤ 64 µs, then half-powers of two up to 2^19 × 64 µs ≈ 33.5 s, then overflow. */
export const LATENCY_BUCKETS = 40;
const FIRST_US = 64;

/** Upper bound (ms) of each latency bucket; the last is Infinity. */
export const LATENCY_BOUNDS_MS: readonly number[] = boundsFor(LATENCY_BUCKETS);

/** The histogram bucket of a duration in milliseconds. */
export function latencyBucket(ms: number): number {
  const us = ms * 1000;
  if (!(us > FIRST_US)) return 0;
  const b = Math.ceil(Math.log2(us / FIRST_US) * 2);
  return b >= LATENCY_BUCKETS ? LATENCY_BUCKETS - 1 : b;
}

// Per slot: requests, 4xx, 5xx.
const COUNTS = 3;

/** One (route, backend) pair's ring of slots. */
class Cell {
  readonly ids = new Float64Array(SLOTS).fill(-1);
  readonly counts = new Uint32Array(SLOTS * COUNTS);
  readonly hist = new Uint32Array(SLOTS * LATENCY_BUCKETS);
  /** Since start: requests, 4xx, 5xx. */
  readonly totals = new Float64Array(COUNTS);

  record(slot: number, status: number, ms: number): void {
    const i = slot % SLOTS;
    if (this.ids[i] !== slot) {
      // A slot older than the one in its place is out of the window already.
      if (this.ids[i]! > slot) return;
      this.ids[i] = slot;
      this.counts.fill(0, i * COUNTS, i * COUNTS + COUNTS);
      this.hist.fill(0, i * LATENCY_BUCKETS, i * LATENCY_BUCKETS + LATENCY_BUCKETS);
    }
    const c = i * COUNTS;
    this.counts[c]!++;
    this.totals[0]!++;
    if (status >= 500) {
      this.counts[c + 2]!++;
      this.totals[2]!++;
    } else if (status >= 400) {
      this.counts[c + 1]!++;
      this.totals[1]!++;
    }
    this.hist[i * LATENCY_BUCKETS + latencyBucket(ms)]!++;
  }

  raw(backend: string, current: number): RawBackendStats {
    const slots: RawSlot[] = [];
    for (let i = 0; i < SLOTS; i++) {
      const id = this.ids[i]!;
      if (id <= current - SLOTS || id > current || this.counts[i * COUNTS] === 0) continue;
      slots.push({
        id,
        counts: [this.counts[i * COUNTS]!, this.counts[i * COUNTS + 1]!, this.counts[i * COUNTS + 2]!],
        latency: Array.from(this.hist.subarray(i * LATENCY_BUCKETS, (i + 1) * LATENCY_BUCKETS)),
      });
    }
    slots.sort((a, b) => a.id - b.id);
    return { backend, totals: [this.totals[0]!, this.totals[1]!, this.totals[2]!], slots };
  }
}

interface RouteCells {
  /** Backend names; "" is the gateway answering itself (404, policy refusals, …). */
  names: string[];
  cells: Cell[];
}

// ---- raw, mergeable data (plain JSON: safe over IPC) ----

/** One slot of one (route, backend): [requests, 4xx, 5xx] and requests per latency bucket. */
export interface RawSlot {
  /** Slot number: floor(epoch ms / slotMs). Equal ids from different workers are the same 5 s. */
  id: number;
  counts: [number, number, number];
  /** LATENCY_BUCKETS numbers: requests whose duration fell in each bucket (LATENCY_BOUNDS_MS). */
  latency: number[];
}

export interface RawBackendStats {
  /** Upstream name, or "" for requests the gateway answered itself. */
  backend: string;
  /** Since the stats started: [requests, 4xx, 5xx]. */
  totals: [number, number, number];
  /** Non-empty slots of the window, oldest first. */
  slots: RawSlot[];
}

export interface RawRouteStats {
  /** Route name, or "" for requests no route matched. */
  route: string;
  backends: RawBackendStats[];
}

export interface RawStats {
  format: 1;
  slotMs: number;
  slots: number;
  buckets: number;
  /** Epoch ms when the oldest of the merged stats started counting. */
  since: number;
  /** Epoch ms when the data was taken (the latest, once merged). */
  at: number;
  routes: RawRouteStats[];
}

/** The live stats of one gateway process. */
export class LiveStats {
  private readonly routes = new Map<string, RouteCells>();
  readonly since = Date.now();

  /** Record one finished request. `epochMs` is the time it finished. No allocation once warm. */
  record(route: string, backend: string, status: number, ms: number, epochMs: number): void {
    let r = this.routes.get(route);
    if (r === undefined) this.routes.set(route, (r = { names: [], cells: [] }));
    const i = r.names.indexOf(backend);
    let cell: Cell;
    if (i === -1) {
      cell = new Cell();
      r.names.push(backend);
      r.cells.push(cell);
    } else {
      cell = r.cells[i]!;
    }
    cell.record(Math.floor(epochMs / SLOT_MS), status, ms);
  }

  /**
   * After a reload: drop the routes the config no longer has. Routes that keep their name keep
   * their stats, including those of backends they no longer use (still part of their totals).
   */
  retain(routes: ReadonlyArray<{ name: string }>): void {
    const keep = new Set(routes.map((r) => r.name));
    for (const name of this.routes.keys()) if (name !== '' && !keep.has(name)) this.routes.delete(name);
  }

  raw(now = Date.now()): RawStats {
    const current = Math.floor(now / SLOT_MS);
    const routes: RawRouteStats[] = [];
    for (const [route, r] of this.routes) routes.push({ route, backends: r.cells.map((c, i) => c.raw(r.names[i]!, current)) });
    return { format: 1, slotMs: SLOT_MS, slots: SLOTS, buckets: LATENCY_BUCKETS, since: this.since, at: now, routes };
  }
}

function add<T extends number[]>(into: T, from: readonly number[]): void {
  for (let i = 0; i < into.length; i++) into[i] = into[i]! + (from[i] ?? 0);
}

/**
 * Sum the raw stats of several processes (cluster workers) into one. Pure: the inputs are not
 * changed. Throws if their layouts (slot width, slot count, buckets) differ.
 */
export function mergeRawStats(list: readonly RawStats[]): RawStats {
  const first = list[0];
  const out: RawStats = {
    format: 1,
    slotMs: first?.slotMs ?? SLOT_MS,
    slots: first?.slots ?? SLOTS,
    buckets: first?.buckets ?? LATENCY_BUCKETS,
    since: first?.since ?? Date.now(),
    at: first?.at ?? Date.now(),
    routes: [],
  };
  const routes = new Map<string, Map<string, { totals: [number, number, number]; slots: Map<number, RawSlot> }>>();
  for (const s of list) {
    if (s.format !== 1 || s.slotMs !== out.slotMs || s.slots !== out.slots || s.buckets !== out.buckets) {
      throw new Error('mergeRawStats: the stats have different layouts (format, slotMs, slots or buckets)');
    }
    out.since = Math.min(out.since, s.since);
    out.at = Math.max(out.at, s.at);
    for (const r of s.routes) {
      let backends = routes.get(r.route);
      if (!backends) routes.set(r.route, (backends = new Map()));
      for (const b of r.backends) {
        let m = backends.get(b.backend);
        if (!m) backends.set(b.backend, (m = { totals: [0, 0, 0], slots: new Map() }));
        add(m.totals, b.totals);
        for (const slot of b.slots) {
          let into = m.slots.get(slot.id);
          if (!into) m.slots.set(slot.id, (into = { id: slot.id, counts: [0, 0, 0], latency: new Array<number>(out.buckets).fill(0) }));
          add(into.counts, slot.counts);
          add(into.latency, slot.latency);
        }
      }
    }
  }
  // Only the slots inside the window of the latest sample are kept.
  const current = Math.floor(out.at / out.slotMs);
  for (const [route, backends] of routes) {
    out.routes.push({
      route,
      backends: [...backends].map(([backend, m]) => ({
        backend,
        totals: m.totals,
        slots: [...m.slots.values()].filter((x) => x.id > current - out.slots && x.id <= current).sort((a, b) => a.id - b.id),
      })),
    });
  }
  return out;
}

// ---- the view: rates and percentiles, computed from raw data ----

/** Figures over the recent window. */
export interface WindowStats {
  requests: number;
  /** Requests per second over the window. */
  rate: number;
  /** Share of requests answered 5xx (0..1; 0 without requests). */
  errorRate5xx: number;
  /** Share of requests answered 4xx. */
  errorRate4xx: number;
  /** Latency percentiles in ms (null without requests). */
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface BackendView {
  upstream: string;
  /** Configured weight and the share it stands for (weight / sum of weights). */
  weight: number;
  configuredShare: number;
  /** Share of the route's proxied requests in the window that went to this backend (null: none). */
  actualShare: number | null;
  total: number;
  window: WindowStats;
}

export interface RouteView {
  name: string;
  /** Requests since the stats started (this process, or every worker once merged). */
  total: { requests: number; status4xx: number; status5xx: number };
  window: WindowStats;
  backends: BackendView[];
  /** Requests of the window the gateway answered itself (policy refusals, errors before a backend). */
  answeredByGateway: number;
  /** Filled by the migration toolkit (rollout stage, SLO gate); null until it exists. */
  migration: null;
}

export interface StatsView {
  /** Seconds the window covers (less right after start). */
  windowSeconds: number;
  routes: RouteView[];
  /** Requests no route matched (404 CW_ROUTE_NOT_FOUND and the like). */
  unmatched: { total: number; window: WindowStats };
}

export interface ConfiguredRoute {
  name: string;
  backends: ReadonlyArray<{ upstream: string; weight: number }>;
}

function percentile(hist: readonly number[], total: number, q: number, bounds: readonly number[]): number {
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    const n = hist[i]!;
    if (n === 0) continue;
    if (seen + n >= rank) {
      const upper = bounds[i]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      if (!Number.isFinite(upper)) return lower;
      const f = Math.max(0, Math.min(1, (rank - seen) / n));
      const v = i === 0 ? upper * f : lower * (upper / lower) ** f;
      return Math.round(v * 1000) / 1000;
    }
    seen += n;
  }
  return bounds[hist.length - 2] ?? 0;
}

interface Acc {
  counts: [number, number, number];
  latency: number[];
}

function accumulate(into: Acc, b: RawBackendStats | undefined, from: number, to: number): void {
  if (!b) return;
  for (const s of b.slots) {
    if (s.id < from || s.id > to) continue;
    add(into.counts, s.counts);
    add(into.latency, s.latency);
  }
}

function windowStats(a: Acc, seconds: number): WindowStats {
  const n = a.counts[0];
  const bounds = LATENCY_BOUNDS_MS.length === a.latency.length ? LATENCY_BOUNDS_MS : boundsFor(a.latency.length);
  return {
    requests: n,
    rate: Math.round((n / seconds) * 100) / 100,
    errorRate5xx: n === 0 ? 0 : Math.round((a.counts[2] / n) * 10000) / 10000,
    errorRate4xx: n === 0 ? 0 : Math.round((a.counts[1] / n) * 10000) / 10000,
    p50Ms: n === 0 ? null : percentile(a.latency, n, 0.5, bounds),
    p99Ms: n === 0 ? null : percentile(a.latency, n, 0.99, bounds),
  };
}

/** Upper bounds (ms) of n buckets √2 apart from FIRST_US; the last is Infinity. */
function boundsFor(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? Infinity : (FIRST_US * 2 ** (i / 2)) / 1000));
}

const emptyAcc = (buckets: number): Acc => ({ counts: [0, 0, 0], latency: new Array<number>(buckets).fill(0) });

/**
 * The admin API's view of raw stats: per configured route, the window's rate, error rates and
 * latency percentiles, and each backend's actual share against its configured weight. Pure.
 */
export function statsView(raw: RawStats, routes: readonly ConfiguredRoute[], now = raw.at): StatsView {
  const current = Math.floor(now / raw.slotMs);
  const from = current - raw.slots + 1;
  const elapsedMs = now - Math.max(from * raw.slotMs, raw.since);
  const seconds = Math.max(1, elapsedMs / 1000);
  const byRoute = new Map(raw.routes.map((r) => [r.route, new Map(r.backends.map((b) => [b.backend, b]))]));
  const views = routes.map((route): RouteView => {
    const data = byRoute.get(route.name) ?? new Map<string, RawBackendStats>();
    const all = emptyAcc(raw.buckets);
    const total = { requests: 0, status4xx: 0, status5xx: 0 };
    for (const b of data.values()) {
      accumulate(all, b, from, current);
      total.requests += b.totals[0];
      total.status4xx += b.totals[1];
      total.status5xx += b.totals[2];
    }
    const self = emptyAcc(raw.buckets);
    accumulate(self, data.get(''), from, current);
    const proxied = all.counts[0] - self.counts[0];
    const weights = route.backends.reduce((s, b) => s + b.weight, 0);
    const backends = route.backends.map((b): BackendView => {
      const acc = emptyAcc(raw.buckets);
      const d = data.get(b.upstream);
      accumulate(acc, d, from, current);
      return {
        upstream: b.upstream,
        weight: b.weight,
        configuredShare: weights === 0 ? 0 : Math.round((b.weight / weights) * 10000) / 10000,
        actualShare: proxied === 0 ? null : Math.round((acc.counts[0] / proxied) * 10000) / 10000,
        total: d?.totals[0] ?? 0,
        window: windowStats(acc, seconds),
      };
    });
    return { name: route.name, total, window: windowStats(all, seconds), backends, answeredByGateway: self.counts[0], migration: null };
  });
  const unmatched = emptyAcc(raw.buckets);
  let unmatchedTotal = 0;
  for (const b of byRoute.get('')?.values() ?? []) {
    accumulate(unmatched, b, from, current);
    unmatchedTotal += b.totals[0];
  }
  return { windowSeconds: Math.round(seconds * 10) / 10, routes: views, unmatched: { total: unmatchedTotal, window: windowStats(unmatched, seconds) } };
}
