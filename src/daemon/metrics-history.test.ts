/* The metrics history on a manual clock: rates over each interval, latency percentiles from
 * the histogram's counts in the interval, nulls where a figure is unknown, the ring wrapping
 * at 360 samples, `since`, and a bad `since` refused. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../clock.js';
import type { Counter } from '../kernel/backend.js';
import { HISTORY_SAMPLES, MetricsHistory, quantile, type HistorySample } from './metrics-history.js';

const BOUNDS = [2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4];

/** Counters a test moves by hand, as the daemon's would move. */
function fakeSources() {
  const s = {
    decisions: 0,
    counts: new Float64Array(BOUNDS.length + 1),
    calls: 0,
    faults: 0,
    dscp: null as Map<number, Counter> | null,
    dscpFails: false,
    observe(seconds: number, n = 1) {
      let i = 0;
      while (i < BOUNDS.length && seconds > BOUNDS[i]!) i++;
      s.counts[i]! += n;
    },
  };
  return {
    s,
    sources: {
      decisions: () => s.decisions,
      latency: () => ({ bounds: BOUNDS, counts: s.counts }),
      scripts: () => ({ calls: s.calls, faults: s.faults }),
      dscp: async () => { if (s.dscpFails) throw new Error('nft: no such table'); return s.dscp && new Map(s.dscp); },
    },
  };
}

async function started(intervalMs = 10_000) {
  const clock = new ManualClock(1000);
  const f = fakeSources();
  let wall = Date.parse('2026-01-01T00:00:00.000Z');
  const h = new MetricsHistory({ sources: f.sources, clock, wall: () => wall, intervalMs });
  await h.start();
  const step = async (ms = intervalMs) => { wall += ms; clock.advance(ms); await h.idle(); };
  return { clock, h, step, ...f };
}

test('each sample has the rates of its interval: decisions, script calls and faults', async () => {
  const { h, s, step } = await started();
  assert.deepEqual(h.samples(), [], 'no sample before the first interval has passed');
  s.decisions = 250;
  s.calls = 40;
  s.faults = 5;
  await step();
  s.decisions = 260;
  await step();
  const [a, b] = h.samples();
  assert.equal(a!.t, '2026-01-01T00:00:10.000Z');
  assert.equal(a!.decisions_per_s, 25);
  assert.equal(a!.script_calls_per_s, 4);
  assert.equal(a!.script_faults_per_s, 0.5);
  assert.equal(b!.decisions_per_s, 1, 'the second interval: 10 decisions in 10 s');
  assert.equal(b!.script_calls_per_s, 0);
  await h.stop();
});

test('latency p50 and p99 come from the interval alone; an interval without requests has null', async () => {
  const { h, s, step } = await started();
  // 90 requests in (5, 10] us, 10 in (50, 100] us
  s.observe(7e-6, 90);
  s.observe(60e-6, 10);
  await step();
  await step();
  // a later interval of slow requests only: the earlier fast ones must not pull it down
  s.observe(80e-6, 4);
  await step();
  const [a, idle, slow] = h.samples() as [HistorySample, HistorySample, HistorySample];
  // rank 50 of 100 falls in (5, 10]: 5 + 5 * 50/90
  assert.equal(a.latency_p50_us, Math.round((5 + 5 * (50 / 90)) * 10) / 10);
  // rank 99 falls in (50, 100]: 50 + 50 * 9/10
  assert.equal(a.latency_p99_us, 95);
  assert.equal(idle.latency_p50_us, null);
  assert.equal(idle.latency_p99_us, null);
  assert.ok(slow.latency_p50_us! > 50 && slow.latency_p50_us! <= 100, `p50 ${slow.latency_p50_us}`);
  await h.stop();
});

test('quantile: linear within its bucket, the last bound past every bound, null for nothing', () => {
  assert.equal(quantile(0.5, [1, 2], [0, 0, 0]), null);
  assert.equal(quantile(0.5, [1, 2], [2, 0, 0]), 0.5);
  assert.equal(quantile(0.99, [1, 2], [1, 0, 99]), 2);
  assert.equal(quantile(1, [1, 2], [0, 4, 0]), 2);
});

test('packets and bytes per DSCP class per second; null without kernel counters or when a read fails', async () => {
  const { h, s, step } = await started();
  await step();
  s.dscp = new Map([[46, { packets: 100, bytes: 12_800 }], [0, { packets: 3, bytes: 300 }]]);
  await step(); // the first read with counters: no earlier one to rate against
  s.dscp = new Map([[46, { packets: 300, bytes: 38_400 }], [0, { packets: 3, bytes: 300 }], [34, { packets: 50, bytes: 5000 }]]);
  await step();
  s.dscpFails = true;
  await step();
  s.dscpFails = false;
  // the table made anew: its counters start from zero again
  s.dscp = new Map([[46, { packets: 20, bytes: 2560 }]]);
  await step();
  s.dscp = new Map([[46, { packets: 40, bytes: 5120 }]]);
  await step();
  const got = h.samples().map((x) => x.dscp);
  assert.equal(got[0], null, 'no counters');
  assert.equal(got[1], null, 'counters, but no earlier read');
  assert.deepEqual(got[2], { cs0: { packets_per_s: 0, bytes_per_s: 0 }, af41: { packets_per_s: 5, bytes_per_s: 500 }, ef: { packets_per_s: 20, bytes_per_s: 2560 } });
  assert.equal(got[3], null, 'the read failed');
  assert.deepEqual(got[4], { ef: { packets_per_s: 1, bytes_per_s: 128 } }, 'rated over the 20 s since the last good read, from zero');
  assert.deepEqual(got[5], { ef: { packets_per_s: 2, bytes_per_s: 256 } });
  await h.stop();
});

test('the ring keeps the last 360 samples: the oldest go first', async () => {
  const { h, s, step } = await started(1000);
  for (let i = 1; i <= HISTORY_SAMPLES + 25; i++) {
    s.decisions += i; // i decisions in the i-th second
    await step(1000);
  }
  const all = h.samples();
  assert.equal(all.length, HISTORY_SAMPLES);
  assert.equal(all[0]!.decisions_per_s, 26, 'samples 1..25 were overwritten');
  assert.equal(all.at(-1)!.decisions_per_s, HISTORY_SAMPLES + 25);
  for (let i = 1; i < all.length; i++) assert.ok(Date.parse(all[i]!.t) > Date.parse(all[i - 1]!.t), 'oldest first');
  await h.stop();
});

test('GET /v1/metrics/history: since gives the samples after it; a bad since is a usage error', async () => {
  const { h, s, step } = await started();
  for (let i = 0; i < 4; i++) { s.decisions += 10; await step(); }
  const route = h.routes[0]!;
  const ask = (q: string) => route.handle({ method: 'GET', path: '/v1/metrics/history', url: new URL(`http://x/v1/metrics/history${q}`), body: {}, uid: 0 }) as { json: { interval_s: number; samples: HistorySample[] } };
  const all = ask('').json;
  assert.equal(all.interval_s, 10);
  assert.equal(all.samples.length, 4);
  const after = ask(`?since=${encodeURIComponent(all.samples[1]!.t)}`).json.samples;
  assert.deepEqual(after, all.samples.slice(2));
  for (const bad of ['yesterday', '12', '2026-13-45T99:00:00Z']) {
    assert.throws(() => ask(`?since=${encodeURIComponent(bad)}`), (e: Error & { code?: string }) => e.code === 'QOS_ERR_USAGE', bad);
  }
  await h.stop();
});

test('a sample comes every interval of the clock, and none after stop', async () => {
  const { h, clock, step } = await started();
  await step();
  await step();
  assert.equal(h.samples().length, 2);
  await h.stop();
  clock.advance(60_000);
  await h.idle();
  assert.equal(h.samples().length, 2);
  assert.equal(clock.waiting, 0, 'its timer is cancelled');
});
