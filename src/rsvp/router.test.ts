/* What a router's interfaces export as Guaranteed Service error terms (the ADSPEC's C and D). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gsTermsFor } from './router.js';

test('an interface with a rate and an MTU exports one packet: C = MTU bytes, D = MTU at the link rate in microseconds', () => {
  // 1500 bytes at 10 Mb/s (1,250,000 B/s): 1200 us; at 1 Gb/s: 12 us; 1500 at 3 Mb/s: 4000 us
  assert.deepEqual(gsTermsFor({ name: 'r1b', rate: 1_250_000, mtu: 1500 }), { c: 1500, d: 1200 });
  assert.deepEqual(gsTermsFor({ name: 'eth0', rate: 125_000_000, mtu: 1500 }), { c: 1500, d: 12 });
  assert.deepEqual(gsTermsFor({ name: 'r1b', rate: 375_000, mtu: 1500 }), { c: 1500, d: 4000 });
  assert.deepEqual(gsTermsFor({ name: 'r1b', rate: 1_000_000, mtu: 1499 }), { c: 1499, d: 1499 });
  assert.deepEqual(gsTermsFor({ name: 'r1b', rate: 3_000_000, mtu: 1500 }), { c: 1500, d: 500 });
  assert.deepEqual(gsTermsFor({ name: 'r1b', rate: 7_000_000, mtu: 1500 }), { c: 1500, d: 215 }, '214.3 us rounded up');
});

test('terms given for an interface (--gs-terms) win; an interface with no rate or no MTU exports none', () => {
  const given = new Map([['r1b', { c: 3000, d: 50 }]]);
  assert.deepEqual(gsTermsFor({ name: 'r1b', rate: 1_250_000, mtu: 1500 }, given), { c: 3000, d: 50 });
  assert.deepEqual(gsTermsFor({ name: 'veth0', mtu: 1500 }, given), undefined, 'a veth reports no speed: nothing reserved there');
  assert.deepEqual(gsTermsFor({ name: 'veth0', rate: 1e6 }), undefined);
  assert.deepEqual(gsTermsFor({ name: 'veth0' }, new Map([['veth0', { c: 0, d: 0 }]])), { c: 0, d: 0 });
});
