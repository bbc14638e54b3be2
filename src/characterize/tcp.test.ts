/* The TCP burst formula against a packet-level simulation of its stationary state. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BucketCurve } from './lbap.js';
import { receiverWindow, tcpBurst } from './tcp.js';

test('b = W_R (1 - r / r_S): a sender emitting W_R at r_S once per W_R / r, measured packet by packet', () => {
  for (const [rtt, r, rS, s] of [[0.05, 125_000, 1.25e6, 1000], [0.2, 1e6, 12.5e6, 1500], [0.01, 5e6, 6e6, 500]] as const) {
    const wR = receiverWindow(rtt, r);
    assert.equal(wR, 2 * rtt * r);
    const n = Math.round(wR / s), period = (n * s) / r;
    const c = new BucketCurve(Float64Array.of(r));
    for (let k = 0; k < 50; k++) for (let i = 0; i < n; i++) c.add(k * period + (i * s) / rS, s);
    const sim = c.curve()[0]!.b_bytes;
    const want = tcpBurst(n * s, r, rS) + (r * s) / rS; // the last packet's part, see tcp.ts
    assert.ok(Math.abs(sim - want) < 1e-6 * want, `rtt ${rtt}, r ${r}, r_S ${rS}: simulated ${sim}, formula ${want}`);
  }
  assert.throws(() => tcpBurst(1000, 10, 5), /r_S > r/);
  assert.throws(() => receiverWindow(0, 1), /must be above 0/);
});
