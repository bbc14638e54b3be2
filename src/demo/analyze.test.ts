import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeRun, percentile, rfc3550Jitter, type RunTrace, type SentDatagram } from './analyze.js';

test('percentile is nearest-rank', () => {
  const v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(v, 50), 5);
  assert.equal(percentile(v, 99), 10);
  assert.equal(percentile(v, 0), 1);
  assert.equal(percentile([], 50), null);
});

test('RFC 3550 jitter: constant transit gives 0; one late packet moves J by |D|/16', () => {
  assert.deepEqual(rfc3550Jitter([{ s: 0, r: 5 }, { s: 10, r: 15 }, { s: 20, r: 25 }]), [0, 0, 0]);
  const j = rfc3550Jitter([{ s: 0, r: 5 }, { s: 10, r: 31 }]);
  assert.equal(j[1], 16 / 16);
});

function trace(): RunTrace {
  // 40 datagrams every 100 ms from t=0; a burst from 1 s to 2 s; inside it every other one
  // is lost and the rest take 50 ms, outside they take 1 ms.
  const sent: SentDatagram[] = [];
  const received = new Map<string, number>();
  for (let i = 0; i < 40; i++) {
    const t = i * 100_000;
    sent.push({ key: `k${i}`, tUs: t, tos: i < 20 ? 0 : 184, bytes: 1000, family: i < 30 ? 4 : 6 });
    const burst = t >= 1_000_000 && t < 2_000_000;
    if (burst && i % 2) continue;
    received.set(`k${i}`, t + (burst ? 50_000 : 1000));
  }
  return {
    startUs: 0, endUs: 4_000_000, sent, received, bursts: [{ on: 1_000_000, off: 2_000_000 }],
    cross: [{ tUs: 1_500_000, bytes: 1_250_000 }, { tUs: 3_000_000, bytes: 125_000 }],
    synUs: 1_500_000, synAckUs: 2_700_000, synTos: 72,
    classes: [{ tUs: 0, bytes: [0, 0, 0, 0, 0, 0, 0, 0], drops: [0, 0, 0, 0, 0, 0, 0, 0] }, { tUs: 1_000_000, bytes: [1_250_000, 0, 0, 0, 0, 12_500, 0, 0], drops: [0, 0, 0, 0, 0, 0, 0, 0] }],
    binUs: 1_000_000,
  };
}

test('a run: loss, delay and jitter per phase, set-up time, cross traffic, marks and series', () => {
  const f = analyzeRun(trace());
  assert.deepEqual({ n: f.burst.datagrams, lost: f.burst.lost, pct: f.burst.loss_pct }, { n: 10, lost: 5, pct: 50 });
  assert.equal(f.burst.delay_ms_p50, 50);
  assert.equal(f.burst.delay_ms_p99, 50);
  assert.deepEqual({ n: f.idle.datagrams, lost: f.idle.lost, p50: f.idle.delay_ms_p50, p99: f.idle.delay_ms_p99 }, { n: 30, lost: 0, p50: 1, p99: 1 });
  // Transit jumps by 49 ms entering the burst and leaving it: J moves by 49/16 ms each time,
  // and decays between; the burst's arrivals carry the larger values.
  assert.ok(f.idle.jitter_ms! > 0 && f.burst.jitter_ms! > f.idle.jitter_ms!);
  assert.equal(f.tcp_setup_ms, 1200);
  assert.equal(f.control_dscp, 18);
  assert.equal(f.cross_traffic_mbps_during_burst, 10);
  assert.equal(f.cross_traffic_mbps_idle, 0.333);
  assert.deepEqual(f.media_dscp, { 0: 20, 46: 20 });
  assert.deepEqual(f.media_family, { 4: 30, 6: 10 });
  assert.deepEqual(f.series.loss, [[0, 0], [1, 50], [2, 0], [3, 0]]);
  assert.equal(f.series.loss_bin_s, 1);
  assert.deepEqual(f.series.classes, [[0.5, [10, 0, 0, 0, 0, 0.1, 0, 0]]]);
  assert.deepEqual(f.series.bursts, [[1, 2]]);
  assert.equal(f.series.delay.length, 40);
  assert.deepEqual(f.series.delay[11], [1.1, null]);
});

test('a run where nothing arrived and no handshake was seen', () => {
  const t = trace();
  t.received.clear();
  t.synAckUs = null;
  const f = analyzeRun(t);
  assert.equal(f.burst.loss_pct, 100);
  assert.equal(f.idle.loss_pct, 100);
  assert.equal(f.burst.delay_ms_p99, null);
  assert.equal(f.burst.jitter_ms, null);
  assert.equal(f.tcp_setup_ms, null);
});
