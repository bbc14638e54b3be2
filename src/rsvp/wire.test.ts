/* The reader's and writer's hand-written parts: dotted-quad text read and written without a
 * regular expression must accept exactly what the pattern `^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$`
 * with parts up to 255 accepts; words and floats are big-endian; addresses are read in place. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { type PolicyData, policyData } from './policy-data.js';
import { formatIPv4, formatIPv6, ipv4Word, Reader, Writer } from './wire.js';

const byPattern = (a: unknown): number => {
  const m = typeof a === 'string' ? /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a) : null;
  const parts = m ? m.slice(1).map(Number) : [];
  return m && parts.every((p) => p <= 255) ? parts.reduce((w, p) => w * 256 + p, 0) : -1;
};

test('ipv4Word accepts what the dotted-quad pattern accepts, and nothing else', () => {
  const cases: unknown[] = [
    '0.0.0.0', '255.255.255.255', '192.0.2.10', '010.001.000.7', '1.2.3.4', '256.1.1.1', '1.2.3.256', '1.2.3.999',
    '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.4\n', '0001.2.3.4', '1.2.3.0004',
    '', '.', '...', '1.2.3.-4', '1.2.3.+4', '1.2.3.4a', 'a.b.c.d', '1.2.3.٤', '１.2.3.4', '::1', '1,2,3,4', undefined, null, 42,
  ];
  for (const a of cases) assert.equal(ipv4Word(a as string), byPattern(a), JSON.stringify(a));
  // and every one of a sweep of short strings over the characters that matter
  const chars = ['1', '2', '5', '0', '9', '.'];
  let n = 0;
  const walk = (s: string): void => {
    if (s.length) { assert.equal(ipv4Word(s), byPattern(s), s); n++; }
    if (s.length < 8) for (const c of chars) walk(s + c);
  };
  walk('');
  assert.ok(n > 300_000, `${n} strings`);
});

test('the writer puts words, floats and IPv4 addresses big-endian; the reader reads them back in place', () => {
  const buf = new Uint8Array(20);
  const w = new Writer(buf, 2, 'TEST');
  w.u16(0xbeef, 'a'); w.u32(0xdeadbeef, 'b'); w.f32(10000, 'c'); w.ipv4('198.51.100.7', 'd');
  assert.equal(Buffer.from(buf).toString('hex'), '0000' + 'beef' + 'deadbeef' + '461c4000' + 'c6336407' + '00000000');
  const r = new Reader(buf, 2, 16, 'TEST');
  assert.deepEqual([r.u16('a'), r.u32('b'), r.f32('c'), r.ipv4('d')], [0xbeef, 0xdeadbeef, 10000, '198.51.100.7']);
  r.done();
  assert.equal(formatIPv4(buf, 12), '198.51.100.7');
  const v6 = Uint8Array.from(Buffer.from('ff' + '20010db8000000000000000000000001', 'hex'));
  assert.equal(formatIPv6(v6, 1), '2001:db8::1');
  assert.equal(new Reader(v6, 1, 17, 'TEST').hex(4, 'x'), '20010db8');
  assert.throws(() => new Writer(buf, 0, 'TEST').ipv4('1.2.3.256', 'd'), (e: unknown) => e instanceof QosError && e.message === 'RSVP TEST: d "1.2.3.256" is not an IPv4 address');
});

test('text is written as Buffer.from writes it: ASCII by char codes, any other through the encoder', () => {
  for (const text of ['CN=alice,DC=example,DC=org', '', 'Zoë', '東京 😀', 'lone \ud800 surrogate', '\ufeffBOM']) {
    const n = Buffer.byteLength(text, 'utf8');
    const buf = new Uint8Array(n + 2);
    const w = new Writer(buf, 1, 'TEST');
    w.utf8(text, n);
    assert.equal(w.pos, n + 1, text);
    assert.deepEqual(Buffer.from(buf.subarray(1, n + 1)), Buffer.from(text, 'utf8'), text);
  }
  assert.throws(() => new Writer(new Uint8Array(4), 2, 'TEST').utf8('abc', 3), /^Error: internal: TEST writes past the end/);
  // a POLICY_DATA identity that is not ASCII round-trips
  const v: PolicyData = { kind: 'POLICY_DATA', options: '', elements: [{ pType: 2, attributes: [{ aType: 1, subType: 2, text: 'CN=Zoë,O=東京' }, { aType: 2, subType: 1, text: 'zoë' }] }] };
  assert.deepEqual(policyData.decode(policyData.encode(v)), v);
});
