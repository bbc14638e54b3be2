/* The on-line estimator: at a fixed rate and with nothing forgotten it finds exactly the
 * off-line b(r); levels keep their gap; bursts age out; the rate follows a moving window;
 * re-advertising is at once for a bigger flow and after the hold time for a smaller one. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BucketCurve } from './lbap.js';
import { OnlineLbap, Readvertiser } from './online.js';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = Math.imul(a ^ (a >>> 15), a | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

test('at a given rate, remembering everything, the estimate is the off-line b(r)', () => {
  for (let seed = 1; seed <= 30; seed++) {
    const r = rng(seed);
    const rate = 10_000 + r() * 1e6;
    const on = new OnlineLbap({ rate, ageS: Infinity, maxLevels: 4 });
    const off = new BucketCurve(Float64Array.of(rate));
    let t = 0;
    for (let i = 0; i < 2000; i++) {
      t += r() < 0.3 ? 0 : r() * 0.01;
      const s = 40 + Math.floor(r() * 1460);
      on.add(t, s); off.add(t, s);
    }
    assert.equal(on.estimate().b, off.curve()[0]!.b_bytes, `seed ${seed}`);
    const L = on.levels;
    for (let i = 1; i < L.length; i++) assert.ok(L[i - 1]!.b >= L[i]!.b * 1.1 && L[i - 1]!.t <= L[i]!.t, 'levels: largest first, 10 % apart, in time order');
  }
});

test('a burst is remembered for the ageing time, then the next largest takes over', () => {
  const on = new OnlineLbap({ rate: 100_000, ageS: 60 });
  on.add(0, 1000);
  for (let i = 0; i < 20; i++) on.add(1, 1000); // a 20 kB burst at t = 1 (and the packet before)
  for (let k = 0; k < 100; k++) for (let i = 0; i < 5; i++) on.add(2 + k, 1000); // 5 kB bursts every second
  assert.equal(on.estimate(50).b, 20_000, 'remembered');
  assert.deepEqual(on.levels.map((l) => l.b), [20_000, 5_000]);
  assert.equal(on.estimate(101).b, 5_000, 'over 60 s later: the 5 kB bursts');
});

test('the rate: measured since the start, or over a moving window, or given', () => {
  const since = new OnlineLbap();
  const win = new OnlineLbap({ windowS: 2 });
  for (let i = 0; i <= 1000; i++) { const t = i / 100, s = t < 5 ? 1000 : 2000; since.add(t, s); win.add(t, s); } // 100 then 200 kB/s
  assert.ok(Math.abs(since.estimate().r - 150_000) < 1_000, `since start: ${since.estimate().r}`);
  assert.ok(Math.abs(win.estimate().r - 200_000) < 5_000, `over the last 2 s: ${win.estimate().r}`);
  assert.equal(new OnlineLbap({ rate: 123 }).rate(), 123);
  assert.throws(() => new OnlineLbap({ rate: 0 }), /not above 0/);
});

test('re-advertising: a bigger flow at once, a smaller one after the hold time, small changes never', () => {
  const a = new Readvertiser(120, 0.05);
  const e = (r: number, b: number) => ({ r, b, p: r, m: 100, M: 1000, packets: 1 });
  assert.equal(a.offer(0, e(1000, 5000)), true, 'the first');
  assert.equal(a.offer(30, e(1020, 5100)), false, 'within 5 %');
  assert.equal(a.offer(60, e(1000, 9000)), true, 'bigger bucket: at once');
  assert.equal(a.offer(90, e(1000, 4000)), false, 'smaller: held');
  assert.equal(a.offer(150, e(1000, 4000)), false);
  assert.equal(a.offer(210, e(1000, 4000)), true, '120 s later');
  assert.equal(a.current!.b, 4000);
  assert.equal(a.offer(240, e(900, 4000)), false);
  assert.equal(a.offer(250, e(1000, 4000)), false, 'back to the advertised: the hold starts again');
  assert.equal(a.offer(300, e(900, 4000)), false);
  assert.equal(a.offer(400, e(900, 4000)), false, 'only 100 s since it became smaller again');
});
