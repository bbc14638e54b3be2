/* b(r) against its definition, by brute force over every pair of packets, on random traces
 * (bursts, gaps, equal times, tiny packets) for many rates; the curve's shape; hand cases. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BucketCurve, bucketByDefinition, FlowStats, knee, rateGrid } from './lbap.js';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = Math.imul(a ^ (a >>> 15), a | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

/** A random trace: on/off bursts of random sizes, some packets at the same instant. */
function trace(r: () => number, n: number): { t: number[]; s: number[] } {
  const t: number[] = [], s: number[] = [];
  let now = r() * 10;
  for (let i = 0; i < n; i++) {
    const u = r();
    now += u < 0.2 ? 0 : u < 0.8 ? r() * 0.002 : r() * 0.5; // back to back, close, or after a gap
    t.push(now);
    s.push(r() < 0.1 ? 40 + Math.floor(r() * 40) : 60 + Math.floor(r() * 1440));
  }
  return { t, s };
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

test('b(r) is the definition: max over i <= j of size(i..j) - r (t_j - t_i), for random traces and many rates, with and without m', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed);
    const { t, s } = trace(r, 20 + Math.floor(r() * 200));
    const rates = Float64Array.from([0, ...Array.from({ length: 30 }, () => r() * 2e6), 1e9]);
    for (const m of [0, 100]) {
      const one = new BucketCurve(rates, m), all = new BucketCurve(rates, m);
      t.forEach((x, i) => one.add(x, s[i]!));
      all.addAll(Float64Array.from(t), Float64Array.from(s));
      const a = one.curve(), b = all.curve();
      rates.forEach((rate, k) => {
        const want = bucketByDefinition(t, s, rate, m);
        assert.ok(close(a[k]!.b_bytes, want), `seed ${seed}, m ${m}, r ${rate}: ${a[k]!.b_bytes} != ${want}`);
        assert.equal(b[k]!.b_bytes, a[k]!.b_bytes, 'addAll = add');
      });
    }
  }
});

test('b(r) is non-increasing and convex in r, never below M, and at r = 0 the whole trace', () => {
  for (let seed = 100; seed < 120; seed++) {
    const r = rng(seed);
    const { t, s } = trace(r, 300);
    const rates = rateGrid(1e3, 1e8, 60);
    const c = new BucketCurve(Float64Array.from([0, ...rates]));
    t.forEach((x, i) => c.add(x, s[i]!));
    const [zero, ...pts] = c.curve();
    assert.equal(zero!.b_bytes, s.reduce((a, b) => a + b, 0));
    const M = Math.max(...s);
    for (let i = 0; i < pts.length; i++) {
      assert.ok(pts[i]!.b_bytes >= M - 1e-9, 'b >= M');
      if (i > 0) assert.ok(pts[i]!.b_bytes <= pts[i - 1]!.b_bytes + 1e-9, 'non-increasing');
      if (i > 0 && i + 1 < pts.length) {
        // convex: the middle point lies on or below the chord of its neighbours
        const [a, b, d] = [pts[i - 1]!, pts[i]!, pts[i + 1]!];
        const chord = a.b_bytes + ((d.b_bytes - a.b_bytes) * (b.r_Bps - a.r_Bps)) / (d.r_Bps - a.r_Bps);
        assert.ok(b.b_bytes <= chord + 1e-6 * chord, `convex at ${b.r_Bps}`);
      }
    }
  }
});

test('constant bit rate: b = M for every r at or above its rate; a back-to-back burst: its size', () => {
  const M = 1200, T = 1 / 128; // 153,600 B/s; times exact in binary, so b is exactly M
  const cbr = new BucketCurve(Float64Array.of(76_800, 153_599, 153_600, 307_200, 1e9));
  for (let i = 0; i < 1000; i++) cbr.add(i * T, M);
  const [half, under, at, twice, fast] = cbr.curve().map((p) => p.b_bytes);
  assert.equal(at, M);
  assert.equal(twice, M);
  assert.equal(fast, M);
  assert.ok(under! > M && half! > 500 * M, `below its rate the debt grows: ${under}, ${half}`);
  const burst = new BucketCurve(Float64Array.of(0, 1e3, 1e9));
  for (let i = 0; i < 50; i++) burst.add(5, 1000);
  assert.deepEqual(burst.curve().map((p) => p.b_bytes), [50_000, 50_000, 50_000]);
  const counted = new BucketCurve(Float64Array.of(100), 0);
  for (let i = 0; i < 10; i++) counted.add(0, 1); // --count: one per packet
  assert.equal(counted.curve()[0]!.b_bytes, 10);
});

test('the knee: the smallest rate from which b falls by at most 1 % per 1 % more r, to the end of the curve', () => {
  // b = 1e9 / r^2 up to 8000 (elasticity 2), flat after (0): the knee is where it flattens
  const pts = [1e3, 2e3, 4e3, 8e3, 16e3].map((r) => ({ r_Bps: r, b_bytes: r < 8e3 ? 1e9 / (r * r) : 1e9 / 64e6 }));
  assert.deepEqual(knee(pts), { ...pts[3]!, index: 3 });
  const hyper = [1, 2, 4].map((r) => ({ r_Bps: r, b_bytes: 8 / r })); // elasticity exactly 1
  assert.equal(knee(hyper).index, 0);
  const flat = [{ r_Bps: 1, b_bytes: 5 }, { r_Bps: 2, b_bytes: 5 }];
  assert.equal(knee(flat).index, 0);
  const steep = [{ r_Bps: 1, b_bytes: 1e6 }, { r_Bps: 2, b_bytes: 1e3 }];
  assert.equal(knee(steep).index, 1);
  // rates below the mean (b falls linearly: flat in log-log), steep near it, flat past it
  const sub = [[50e3, 200e3], [100e3, 150e3], [200e3, 50e3], [250e3, 5e3], [300e3, 4.9e3], [500e3, 4.8e3]].map(([r, b]) => ({ r_Bps: r!, b_bytes: b! }));
  assert.equal(knee(sub).index, 3);
  assert.throws(() => knee([{ r_Bps: 0, b_bytes: 0 }]), /no point/);
});

test('flow statistics: mean and peak rate over a window, sizes, duration; the rate grid', () => {
  const f = new FlowStats(0.01);
  for (let i = 0; i < 100; i++) f.add(i * 0.01, 1000); // 100 kB/s
  for (let i = 0; i < 10; i++) f.add(1 + i * 0.0001, 500); // a burst of 5 kB within 1 ms
  assert.equal(f.packets, 110);
  assert.equal(f.M, 1000);
  assert.equal(f.m, 500);
  assert.ok(close(f.durationS, 1.0009));
  assert.ok(close(f.meanRate, 105_000 / 1.0009));
  assert.ok(close(f.peakRate, 5000 / 0.01), `peak ${f.peakRate}`);
  const g = rateGrid(10, 1000, 3);
  assert.deepEqual([g[0], g[2], g.length], [10, 1000, 3]);
  assert.ok(close(g[1]!, 100));
});
