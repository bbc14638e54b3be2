import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv4 } from 'node:net';
import { cidrContains, parseAddr, parseCidr } from './net.js';

test('IPv4 parsing accepts exactly what node:net isIPv4 accepts, with the right value', () => {
  let seed = 11;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const alphabet = '0123456789.....x';
  for (let i = 0; i < 50_000; i++) {
    let s = '';
    if (rnd(2)) {
      s = Array.from({ length: 4 }, () => String(rnd(300))).join('.'); // mostly valid quads
      if (rnd(8) === 0) s = s.replace(/\d+/, (d) => '0' + d);
    } else {
      for (let n = rnd(16); n > 0; n--) s += alphabet[rnd(alphabet.length)];
    }
    const a = parseAddr(s);
    if (!isIPv4(s)) {
      assert.ok(!a || s.includes(':'), `accepted ${JSON.stringify(s)}`);
      continue;
    }
    const p = s.split('.').map(Number);
    assert.deepEqual([...a!], [0, 0, 0xffff, ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0], s);
  }
});

test('IPv6 with an embedded IPv4 tail, and v4 CIDRs matching v4-mapped peers', () => {
  assert.deepEqual([...parseAddr('::ffff:192.0.2.1')!], [0, 0, 0xffff, 0xc0000201]);
  assert.deepEqual([...parseAddr('2001:db8::1')!], [0x20010db8, 0, 0, 1]);
  assert.equal(parseAddr('1.2.3'), undefined);
  assert.equal(parseAddr('01.2.3.4'), undefined);
  assert.ok(cidrContains(parseCidr('192.0.2.0/24')!, parseAddr('::ffff:192.0.2.77')!));
  assert.ok(!cidrContains(parseCidr('192.0.2.0/24')!, parseAddr('192.0.3.1')!));
});
