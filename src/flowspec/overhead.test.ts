/* The actual token rate (seed 002): headers per packet by protocol and family, the formula
 * against values worked by hand, rounding up, exactness past 2^53, and no answer without the
 * values it needs. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { actualTokenRate, layer3Overhead } from './overhead.js';

test('headers per packet: UDP 28 and TCP 40 over IPv4 (seed 002), 20 more over IPv6', () => {
  assert.equal(layer3Overhead({ proto: 'udp', ipv6: false }), 28);
  assert.equal(layer3Overhead({ proto: 'tcp', ipv6: false }), 40);
  assert.equal(layer3Overhead({ proto: 'udp', ipv6: true }), 48);
  assert.equal(layer3Overhead({ proto: 'tcp', ipv6: true }), 60);
});

test('(1 + overhead / MinimumPolicedSize) x TokenRate, worked by hand', () => {
  const s = { TokenRate: 8000, MinimumPolicedSize: 160 };
  assert.equal(actualTokenRate(s, { proto: 'udp', ipv6: false }), 9400); // 8000 x 188 / 160
  assert.equal(actualTokenRate(s, { proto: 'tcp', ipv6: false }), 10_000); // 8000 x 200 / 160
  assert.equal(actualTokenRate(s, { proto: 'udp', ipv6: true }), 10_400); // 8000 x 208 / 160
  assert.equal(actualTokenRate(s, { proto: 'tcp', ipv6: true }), 11_000); // 8000 x 220 / 160
});

test('a fraction of a byte per second is rounded up', () => {
  // 1000 x 31 / 3 = 10333.33...
  assert.equal(actualTokenRate({ TokenRate: 1000, MinimumPolicedSize: 3 }, { proto: 'udp', ipv6: false }), 10_334);
  // exact results stay as they are: 1 byte packets over TCP/IPv6 are 61 bytes on the wire
  assert.equal(actualTokenRate({ TokenRate: 1000, MinimumPolicedSize: 1 }, { proto: 'tcp', ipv6: true }), 61_000);
});

test('exact where a double is not: the largest values', () => {
  const r = 4_294_967_294;
  const m = 4_294_967_293;
  // r x (m + 60) / m = r + 60r/m, and 60r/m is just above 60
  assert.equal(actualTokenRate({ TokenRate: r, MinimumPolicedSize: m }, { proto: 'tcp', ipv6: true }), r + 61);
});

test('no actual rate without TokenRate or MinimumPolicedSize', () => {
  assert.equal(actualTokenRate({ TokenRate: null, MinimumPolicedSize: 100 }, { proto: 'udp', ipv6: false }), null);
  assert.equal(actualTokenRate({ TokenRate: 100, MinimumPolicedSize: null }, { proto: 'udp', ipv6: false }), null);
});
