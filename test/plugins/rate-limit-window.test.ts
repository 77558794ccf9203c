// The memory store's synchronous fixed-window counter: windows open at a key's first consume,
// end after `windowMs`, reward and get, and the sweep that keeps memory bounded.
import test, { type ExecutionContext } from 'ava';
import { FixedWindowCounter } from '../../plugins/rate-limit-window.ts';

/** Bounded poll on the real clock: returns when `check` is true, fails the test after `attempts`. */
async function until(t: ExecutionContext, what: string, check: () => boolean, attempts = 400, delayMs = 25): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  t.fail(`timed out waiting for: ${what}`);
  throw new Error(`timed out waiting for: ${what}`);
}

function counter(t: ExecutionContext, opts: { points: number; windowMs: number; minSweepMs?: number }): FixedWindowCounter {
  const c = new FixedWindowCounter(opts);
  t.teardown(() => c.close());
  return c;
}

test('a window opens at the key\'s first consume and lasts windowMs; allowed while consumed <= points', (t) => {
  const c = counter(t, { points: 3, windowMs: 60_000 });
  const t0 = Date.now();
  t.is(c.get('a', t0), null);
  t.deepEqual(c.consume('a', t0 + 10), { consumedPoints: 1, remainingPoints: 2, msBeforeNext: 60_000 });
  t.deepEqual(c.consume('a', t0 + 1010), { consumedPoints: 2, remainingPoints: 1, msBeforeNext: 59_000 });
  t.deepEqual(c.consume('a', t0 + 2010), { consumedPoints: 3, remainingPoints: 0, msBeforeNext: 58_000 });
  // Over the budget: still counted (as RateLimiterMemory does), remaining stays 0.
  t.deepEqual(c.consume('a', t0 + 3010), { consumedPoints: 4, remainingPoints: 0, msBeforeNext: 57_000 });
  // Another key has its own window, opened by its own first consume.
  t.deepEqual(c.consume('b', t0 + 30_000), { consumedPoints: 1, remainingPoints: 2, msBeforeNext: 60_000 });
  t.is(c.size, 2);
});

test('a window ends at first consume + windowMs; the next consume opens a new one', (t) => {
  const c = counter(t, { points: 2, windowMs: 60_000 });
  const t0 = Date.now();
  c.consume('a', t0);
  c.consume('a', t0 + 1);
  t.deepEqual(c.consume('a', t0 + 59_999), { consumedPoints: 3, remainingPoints: 0, msBeforeNext: 1 });
  // At the window's end: it is over (like RateLimiterMemory, whose record lives while msBeforeNext > 0).
  t.is(c.get('a', t0 + 60_000), null);
  t.deepEqual(c.consume('a', t0 + 60_000), { consumedPoints: 1, remainingPoints: 1, msBeforeNext: 60_000 });
  t.deepEqual(c.consume('a', t0 + 60_500), { consumedPoints: 2, remainingPoints: 0, msBeforeNext: 59_500 });
  t.is(c.size, 1);
});

test('reward gives points back to the current window; no window, nothing happens', (t) => {
  const c = counter(t, { points: 3, windowMs: 60_000 });
  const t0 = Date.now();
  for (let i = 0; i < 4; i++) c.consume('a', t0);
  t.deepEqual(c.reward('a', 1, t0 + 100), { consumedPoints: 3, remainingPoints: 0, msBeforeNext: 59_900 });
  t.deepEqual(c.reward('a', 2, t0 + 100), { consumedPoints: 1, remainingPoints: 2, msBeforeNext: 59_900 });
  t.deepEqual(c.consume('a', t0 + 200), { consumedPoints: 2, remainingPoints: 1, msBeforeNext: 59_800 });
  // A key without a window: no window is made for it.
  t.is(c.reward('nobody', 1, t0), null);
  t.is(c.get('nobody', t0), null);
  t.is(c.size, 1);
  // After the window's end there is nothing to give back to; the next consume starts afresh.
  t.is(c.reward('a', 1, t0 + 60_000), null);
  t.is(c.consume('a', t0 + 60_000).consumedPoints, 1);
});

test('get reads a window without consuming', (t) => {
  const c = counter(t, { points: 5, windowMs: 60_000 });
  const t0 = Date.now();
  c.consume('a', t0);
  c.consume('a', t0);
  t.deepEqual(c.get('a', t0 + 250), { consumedPoints: 2, remainingPoints: 3, msBeforeNext: 59_750 });
  t.deepEqual(c.get('a', t0 + 250), { consumedPoints: 2, remainingPoints: 3, msBeforeNext: 59_750 });
  t.is(c.consume('a', t0 + 300).consumedPoints, 3);
  t.is(c.get('a', t0 + 60_000), null);
});

test('on the real clock: a 1s window reports msBeforeNext within it, then ends, and the sweep removes the key', async (t) => {
  const c = counter(t, { points: 1, windowMs: 1000 });
  const first = c.consume('a');
  const opened = Date.now(); // the window ends by opened + 1000
  t.true(first.msBeforeNext > 0 && first.msBeforeNext <= 1000, `msBeforeNext ${first.msBeforeNext}`);
  const second = c.consume('a');
  t.is(second.consumedPoints, 2);
  t.true(second.msBeforeNext <= first.msBeforeNext);
  await until(t, 'past the window', () => Date.now() >= opened + 1000);
  // Ended: reads no longer see it, and the sweep removes it without any further call.
  t.is(c.get('a'), null);
  await until(t, 'the sweep removed the key', () => c.size === 0);
  t.is(c.consume('a').consumedPoints, 1);
});

test('the sweep removes ended windows without a call, keeps open ones, and stops when the map is empty', async (t) => {
  const c = counter(t, { points: 10, windowMs: 60_000, minSweepMs: 10 });
  const now = Date.now();
  // Windows opened in the past (ended already), then open ones.
  for (let i = 0; i < 1000; i++) c.consume(`old-${i}`, now - 120_000 + i);
  c.consume('restarted', now - 61_000);
  c.consume('restarted', now); // a new window: moved behind the ended ones
  for (let i = 0; i < 10; i++) c.consume(`live-${i}`, now);
  t.is(c.size, 1011);
  await until(t, 'the ended windows are removed', () => c.size === 11);
  t.is(c.get('restarted')?.consumedPoints, 1);
  t.is(c.get('live-9')?.consumedPoints, 1);
  t.is(c.get('old-999'), null);

  // Keys whose windows end one after the other are removed as they end, with no call in between.
  const d = counter(t, { points: 1, windowMs: 1000, minSweepMs: 10 });
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) d.consume(`k${i}`, t0 - 1000 + 300 * i); // ends at t0, t0+300, …, t0+1200
  await until(t, 'all five removed', () => d.size === 0);
});

test('memory stays bounded under a stream of new keys: only windows still open are kept', async (t) => {
  const c = counter(t, { points: 1, windowMs: 1000, minSweepMs: 10 });
  // 20 rounds of 500 new keys, each round's windows ended 1s before the next round's.
  const t0 = Date.now();
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 500; i++) c.consume(`r${round}-${i}`, t0 - (20 - round) * 1000);
  }
  t.is(c.size, 10_000);
  await until(t, 'every ended window removed', () => c.size === 0);
  for (let i = 0; i < 500; i++) c.consume(`new-${i}`);
  t.is(c.size, 500);
});

test('close stops the sweep and forgets every key', (t) => {
  const c = new FixedWindowCounter({ points: 1, windowMs: 60_000 });
  c.consume('a');
  c.close();
  t.is(c.size, 0);
  t.is(c.get('a'), null);
  t.is(c.consume('a').consumedPoints, 1);
  c.close();
});
