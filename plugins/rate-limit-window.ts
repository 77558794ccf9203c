// A synchronous fixed-window counter for the rateLimit policy's memory store: the semantics of
// rate-limiter-flexible's RateLimiterMemory as the policy uses it, without its promises and
// without a timer per key.
//
// Per key, a window opens at the key's first consume and lasts `windowMs`; each consume adds a
// point; a request is allowed while the points consumed in the window are <= `points`. Once the
// window has ended the next consume opens a new one.
//
// Memory: the Map's insertion order is the order in which windows end (every window lasts the
// same time, and a key whose window restarts is moved to the end), so expired keys are always at
// the front. One unref'd timer, armed for the first window's end, removes them from there and
// re-arms for the next; reads treat an ended window as absent even before the timer has run. A
// key is thus kept at most its window plus `minSweepMs`.

/** What a consume, reward or get reports, as rate-limiter-flexible's RateLimiterRes does. */
export interface WindowRes {
  /** Points consumed in the current window (after this call). */
  consumedPoints: number;
  /** max(points - consumedPoints, 0). */
  remainingPoints: number;
  /** Milliseconds until the window ends. */
  msBeforeNext: number;
}

interface Entry {
  consumed: number;
  /** Date.now() at which the window ends. */
  end: number;
}

/** The sweep never runs more often than this (a key outlives its window by at most this much). */
export const MIN_SWEEP_MS = 100;

export class FixedWindowCounter {
  readonly points: number;
  readonly windowMs: number;
  private readonly minSweepMs: number;
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | null = null;

  constructor(opts: { points: number; windowMs: number; minSweepMs?: number }) {
    if (!(opts.windowMs > 0)) throw new Error(`a window must be longer than 0 ms, not ${opts.windowMs}`);
    this.points = opts.points;
    this.windowMs = opts.windowMs;
    this.minSweepMs = opts.minSweepMs ?? MIN_SWEEP_MS;
  }

  /** Keys held (open windows, and ended ones the sweep has not removed yet). */
  get size(): number {
    return this.entries.size;
  }

  /** Consume one point of `key`'s budget; allowed when `consumedPoints <= points`. */
  consume(key: string, now: number = Date.now()): WindowRes {
    let e = this.entries.get(key);
    if (e === undefined) {
      e = { consumed: 1, end: now + this.windowMs };
      this.entries.set(key, e);
      if (this.timer === null) this.arm();
    } else if (e.end <= now) {
      // The window ended: a new one opens now; moved to the end to keep the Map in end order.
      this.entries.delete(key);
      e.consumed = 1;
      e.end = now + this.windowMs;
      this.entries.set(key, e);
      if (this.timer === null) this.arm();
    } else {
      e.consumed++;
    }
    return this.res(e, now);
  }

  /** Give `points` back to `key`'s current window (nothing happens when it has none). */
  reward(key: string, points = 1, now: number = Date.now()): WindowRes | null {
    const e = this.entries.get(key);
    if (e === undefined || e.end <= now) return null;
    e.consumed -= points;
    return this.res(e, now);
  }

  /** `key`'s current window, nothing consumed; null when it has none. */
  get(key: string, now: number = Date.now()): WindowRes | null {
    const e = this.entries.get(key);
    if (e === undefined || e.end <= now) return null;
    return this.res(e, now);
  }

  /** Stop the sweep timer and forget every key (a later consume starts afresh). */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.entries.clear();
  }

  private res(e: Entry, now: number): WindowRes {
    return { consumedPoints: e.consumed, remainingPoints: Math.max(this.points - e.consumed, 0), msBeforeNext: e.end - now };
  }

  /** Arm the timer for the first window's end (the earliest), if there is a window. */
  private arm(): void {
    const first = this.entries.values().next();
    if (first.done) return;
    this.timer = setTimeout(this.sweep, Math.max(first.value.end - Date.now(), this.minSweepMs));
    this.timer.unref();
  }

  private readonly sweep = (): void => {
    this.timer = null;
    const now = Date.now();
    for (const [key, e] of this.entries) {
      // In end order, so the first open window ends the sweep. (Should the wall clock step back,
      // a later key may end before an earlier one; it is removed by a later sweep, and reads
      // already treat it as absent.)
      if (e.end > now) break;
      this.entries.delete(key);
    }
    this.arm();
  };
}
