import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFast } from './fast-decode.js';
import { decode, encode, type Message } from './messages.js';
import { SAMPLE_MESSAGES } from './samples.js';

/** decodeFast must give decode()'s message or nothing: never another message, never one for a
 * line decode() refuses. */
function agrees(line: string | Buffer, why: string): Message | null {
  const buf = Buffer.isBuffer(line) ? line : Buffer.from(line);
  const fast = decodeFast(buf, 0, buf.length);
  let slow: Message | Error;
  try { slow = decode(buf.toString('utf8')); } catch (e) { slow = e as Error; }
  if (fast !== null) {
    assert.ok(!(slow instanceof Error), `${why}: decodeFast took a line decode() refuses (${(slow as Error).message}): ${JSON.stringify(buf.toString('latin1'))}`);
    assert.deepEqual(fast, slow, `${why}: ${JSON.stringify(buf.toString('latin1'))}`);
  }
  return fast;
}

const plain = [
  'Socket 123 1000 daemon_load 2 1 6 100',
  'Socket 4242 0 {curl -s https://example.com/} 10 2 0 7',
  'Connect 123 1000 daemon_load 100 {2 10.1.2.3 4567} {} {}',
  'Connect 7 1000 {python3 -m http.server} 5 {10 2001:db8::1 443} {} {}',
  'Connect 7 1000 x 5 {10 ::ffff:192.0.2.1 80} {a b} c',
  'SendTo 9 1000 iperf3 4 {2 192.0.2.9 5201}',
  'Close 9 1000 iperf3 4',
  'Close 9 4294967295 x 2147483647',
];

test('the plain lines agents send are taken, as decode() takes them', () => {
  for (const l of plain) assert.notEqual(agrees(l, 'plain'), null, l);
});

test('every sample message encoded as the agent would: decodeFast agrees with decode() or leaves it to it', () => {
  for (const m of SAMPLE_MESSAGES) agrees(encode(m), m.type);
});

test('lines that are not plain or not valid are left to decode()', () => {
  const left = [
    'Socket 123 1000 daemon_load 2 1 6', // too few
    'Socket 123 1000 daemon_load 2 1 6 100 7', // too many
    'Socket  123 1000 a 2 1 6 100', // two spaces
    ' Socket 123 1000 a 2 1 6 100', 'Socket 123 1000 a 2 1 6 100 ', // spaces at the ends
    'Socket\t123 1000 a 2 1 6 100',
    'Socket 0 1000 a 2 1 6 100', 'Socket 123 1000 a 2 16 6 100', 'Socket 123 1000 a 2 1 6 -1', // out of range
    'Socket 123 1000 a 2 1 6 12345678901', 'Socket 1x 1000 a 2 1 6 100', 'Socket - 0 a 2 1 6 1',
    'Connect 1 0 a 5 {2 999.1.1.1 80} {} {}', 'Connect 1 0 a 5 {2 1.2.3.4} {} {}', 'Connect 1 0 a 5 {2 1.2.3.4 70000} {} {}',
    'Connect 1 0 a 5 {10 notv6 80} {} {}', 'Connect 1 0 a 5 {} {} {}', 'Connect 1 0 a 5 {0 {} 0} {} {}', 'Connect 1 0 a 5 {2  1.2.3.4 80} {} {}',
    'Connect 1 0 {a 5 {2 1.2.3.4 80} {} {}', 'Connect 1 0 a\\ b 5 {2 1.2.3.4 80} {} {}', 'Connect 1 0 "a b" 5 {2 1.2.3.4 80} {} {}',
    'Connect 1 0 {a {b}} 5 {2 1.2.3.4 80} {} {}', 'Connect 1 0 a 5 2 {} {}',
    'Cached 42 0 x 99 Connect 5 {2 192.0.2.1 443} {} {}', 'Startup 1 0 x 1', 'Bind 1 0 x 3 {2 0.0.0.0 80}',
  ];
  for (const l of left) assert.equal(agrees(l, 'left'), null, l);
  assert.equal(agrees(Buffer.from('Close 1 0 caf\xc3\xa9 3', 'latin1'), 'UTF-8'), null, 'non-ASCII goes the general way');
});

test('lines one byte away from the plain ones (replaced, inserted, deleted): decodeFast agrees with decode() or leaves it to it', () => {
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const alphabet = [0x20, 0x7b, 0x7d, 0x22, 0x5c, 0x2d, 0x30, 0x31, 0x39, 0x3a, 0x2e, 0x61, 0x09, 0x00, 0x7f, 0xc3, 0x0a];
  let taken = 0;
  for (const l of plain) {
    const b = Buffer.from(l);
    for (let k = 0; k < 3000; k++) {
      const i = rnd(b.length + 1), byte = rnd(3) === 0 ? rnd(256) : alphabet[rnd(alphabet.length)]!;
      const op = rnd(3);
      const m = op === 0 && i < b.length ? Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i + 1)])
        : op === 1 ? Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)])
        : Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
      if (agrees(m, `mutation ${k}`)) taken++;
    }
  }
  assert.ok(taken > 1000, `some mutations are still plain, valid lines (taken ${taken}): the comparison is not vacuous`);
});

test('a line inside a larger buffer is read from its bounds only', () => {
  const buf = Buffer.from('Close 1 0 a 3\nSocket 123 1000 daemon_load 2 1 6 100\nClose 1 0 a 4\n');
  const s = buf.indexOf('Socket'), e = buf.indexOf('\n', s);
  assert.deepEqual(decodeFast(buf, s, e), decode('Socket 123 1000 daemon_load 2 1 6 100'));
});
