/* Support mode: R from "bandwidth" and "delay" (RFC 2212's bound solved for R), checked against
 * numbers worked out by hand here and against the forward bound; the ADSPEC a sender
 * originates; a TCP flow's window and TSpec. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adspec } from './adspec.js';
import { delayBound, guaranteedRate, initialAdspec, MAX_FLOAT32, tcpReservation } from './support.js';

// 2 Mb/s, a 10 kB bucket, 1500-byte packets; the path: Ctot 3000 bytes (two routers of one
// packet each), Dtot 2000 us
const flow = { r: 250_000, b: 10_000, M: 1500, ctot: 3000, dtot: 2000 };

/** a rate R as the FLOWSPEC carries it: a 32-bit float at or just above the exact one */
function near(got: number, exact: number): void {
  assert.ok(got >= exact && got - exact <= exact * 2 ** -23, `R ${got}, exact ${exact}`);
  assert.equal(Math.fround(got), got, 'R is a 32-bit float');
}

test('no peak rate: R = (b + Ctot) / (W - Dtot), 13000 / 0.048 s = 270,833.33 B/s for 50 ms', () => {
  const R = guaranteedRate({ ...flow, p: Infinity, W: 0.05 });
  near(R, 13_000 / 0.048);
  assert.ok(Math.abs(delayBound({ ...flow, p: Infinity, R }) - 0.05) < 1e-7, 'the bound at that R is the delay asked');
});

test('a peak rate of 10 Mb/s, 50 ms: the first form, R = (k p + M + Ctot) / (W - Dtot + k) with k = (b - M)/(p - r)', () => {
  // k = 8500 / 1,000,000 = 0.0085; R = (10,625 + 4500) / (0.048 + 0.0085) = 15,125 / 0.0565
  const a = { ...flow, p: 1_250_000 };
  const R = guaranteedRate({ ...a, W: 0.05 });
  near(R, 15_125 / 0.0565); // 267,699.12 B/s: between r and p, so the first form holds
  assert.ok(R > a.r && R < a.p);
  assert.ok(Math.abs(delayBound({ ...a, R }) - 0.05) < 1e-7);
  // the same W with no peak asks for more: the peak limits how fast the bucket arrives
  assert.ok(guaranteedRate({ ...flow, p: Infinity, W: 0.05 }) > R);
});

test('a delay below what R = p gives: the second form, R = (M + Ctot) / (W - Dtot), above p', () => {
  // at R = p: (1500 + 3000) / 1,250,000 + 0.002 = 5.6 ms; ask 4 ms: R = 4500 / 0.002
  const a = { ...flow, p: 1_250_000 };
  assert.ok(Math.abs(delayBound({ ...a, R: a.p }) - 0.0056) < 1e-12);
  const R = guaranteedRate({ ...a, W: 0.004 });
  near(R, 2_250_000);
  assert.ok(Math.abs(delayBound({ ...a, R }) - 0.004) < 1e-9);
  near(guaranteedRate({ ...a, W: 0.0056 }), a.p); // the two forms meet at p
});

test('a delay the reserved r already meets: R is r, never below it', () => {
  // at R = r, no peak: (10,000 + 3000) / 250,000 + 0.002 = 54 ms
  assert.equal(guaranteedRate({ ...flow, p: Infinity, W: 0.1 }), 250_000);
  assert.equal(guaranteedRate({ ...flow, p: Infinity, W: 0.054 }), 250_000);
  assert.ok(guaranteedRate({ ...flow, p: Infinity, W: 0.053 }) > 250_000);
  assert.equal(guaranteedRate({ ...flow, p: 250_000, W: 0.1 }), 250_000, 'p = r: only the second form');
});

test('a delay at or below Dtot (seconds against microseconds) is a usage error naming both', () => {
  const big = { ...flow, dtot: 60_000, p: Infinity };
  assert.throws(() => guaranteedRate({ ...big, W: 0.05 }), (e: Error & { code?: string }) => e.code === 'QOS_ERR_USAGE' && /50 ms .*60 ms .*Dtot/.test(e.message));
  assert.throws(() => guaranteedRate({ ...big, W: 0.06 }), /not above the 60 ms/);
  assert.ok(guaranteedRate({ ...big, W: 0.061 }) > 0, '1 ms left above Dtot');
  assert.throws(() => guaranteedRate({ ...flow, p: 100_000, W: 0.05 }), /p \(100000\) must be at least r/);
  assert.throws(() => guaranteedRate({ ...flow, b: 1000, p: Infinity, W: 0.05 }), /b \(1000\) must be at least M/);
  assert.throws(() => delayBound({ ...flow, p: Infinity, R: 1000 }), /R \(1000\) must be a finite rate at least r/);
});

test('the ADSPEC a sender originates: no hop, its link rate or the largest float, no latency, its MTU, both services unbroken', () => {
  const a = initialAdspec({ mtu: 1500, linkRate: 12_500_000 });
  assert.deepEqual(a, {
    kind: 'ADSPEC', general: { breakBit: false, hopCount: 0, pathBw: 12_500_000, minLatency: 0, mtu: 1500 },
    gs: { breakBit: false, terms: { ctot: 0, dtot: 0, csum: 0, dsum: 0 } }, cl: { breakBit: false },
  });
  assert.deepEqual(adspec.decode(adspec.encode(a)), a, 'it encodes and decodes back');
  const b = initialAdspec({ mtu: 9000, gs: false });
  assert.equal(b.general.pathBw, MAX_FLOAT32);
  assert.equal(b.gs, undefined);
  assert.deepEqual(adspec.decode(adspec.encode(b)), b);
  assert.equal(initialAdspec({ mtu: 1500, linkRate: 1_000_000.3 }).general.pathBw, Math.fround(1_000_000.3));
  assert.throws(() => initialAdspec({ mtu: 0 }), /MTU \(0\)/);
});

test('TCP: W_R = 2 RTT r and b = W_R (1 - r / r_S), at least M', () => {
  // 50 ms, 1 Mb/s through a 10 Mb/s access link: W_R = 12,500 bytes, b = 12,500 x 0.9
  assert.deepEqual(tcpReservation({ rttS: 0.05, r: 125_000, rS: 1_250_000, M: 1500 }),
    { window: 12_500, tspec: { r: 125_000, b: 11_250, p: 1_250_000, m: 64, M: 1500 } });
  // 1 ms: W_R = 250, b = 225, less than one packet: M
  assert.equal(tcpReservation({ rttS: 0.001, r: 125_000, rS: 1_250_000, M: 1500 }).tspec.b, 1500);
  assert.throws(() => tcpReservation({ rttS: 0.05, r: 125_000, rS: 125_000, M: 1500 }), /r_S \(125000\) must be above r/);
});
