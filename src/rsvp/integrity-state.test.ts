/* INTEGRITY across messages (integrity-state.ts, RFC 2747): two nodes with the same key take
 * each other's signed messages; a replayed one, one without INTEGRITY (when required), with an
 * unknown key id or a wrong digest is dropped with its reason; sequence numbers only grow, and
 * start above a previous run's; the replay memory is bounded. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IntegrityState } from './integrity-state.js';
import { decode, encode, type RsvpMessage } from './message.js';
import { SAMPLE_MESSAGES_V4 } from './samples.js';

const KEY = '0000c0000201';
const keys = (secret: string, id = KEY) => new Map([[id, new TextEncoder().encode(secret)]]);
const plain: RsvpMessage = { ...SAMPLE_MESSAGES_V4[0]!, objects: SAMPLE_MESSAGES_V4[0]!.objects.filter((o) => o.kind !== 'INTEGRITY') };
const T0 = 1_700_000_000_000;

/** What one node sends, as the other receives it. */
function wire(from: IntegrityState, m: RsvpMessage = plain): { bytes: Uint8Array; msg: RsvpMessage } {
  const bytes = from.sign(m);
  return { bytes, msg: decode(bytes) };
}

test('two nodes with the same key: signed messages are taken, INTEGRITY first with the first key id', () => {
  const a = new IntegrityState({ keys: keys('s3cret'), now: () => T0 });
  const b = new IntegrityState({ keys: keys('s3cret'), require: true, now: () => T0 });
  for (let i = 0; i < 3; i++) {
    const { bytes, msg } = wire(a);
    assert.equal(msg.objects[0]!.kind, 'INTEGRITY');
    assert.deepEqual(msg.objects.slice(1), plain.objects, 'the rest unchanged');
    assert.equal(b.check(bytes, msg, '10.0.1.2'), null);
  }
  const back = wire(b);
  assert.equal(a.check(back.bytes, back.msg, '10.0.1.1'), null, 'and the other way');
});

test('a replayed message, or an older one, is dropped; the same number from another sender is not', () => {
  const a = new IntegrityState({ keys: keys('s3cret'), now: () => T0 });
  const b = new IntegrityState({ keys: keys('s3cret'), now: () => T0 });
  const first = wire(a), second = wire(a);
  assert.equal(b.check(second.bytes, second.msg, '10.0.1.2'), null);
  assert.equal(b.check(second.bytes, second.msg, '10.0.1.2'), 'replay');
  assert.equal(b.check(first.bytes, first.msg, '10.0.1.2'), 'replay', 'not above the last taken');
  assert.equal(b.check(first.bytes, first.msg, '10.0.9.9'), null, 'kept per key id and sender address');
});

test('without INTEGRITY (required), with an unknown key id or a wrong digest: dropped, each with its reason', () => {
  const b = new IntegrityState({ keys: keys('s3cret'), require: true, now: () => T0 });
  const bare = encode(plain);
  assert.equal(b.check(bare, decode(bare), '10.0.1.2'), 'missing');
  assert.equal(new IntegrityState({ keys: keys('s3cret') }).check(bare, decode(bare), '10.0.1.2'), null, 'not required: a message without INTEGRITY is taken');
  const other = wire(new IntegrityState({ keys: keys('s3cret', '0000c0000299'), now: () => T0 }));
  assert.equal(b.check(other.bytes, other.msg, '10.0.1.2'), 'unknown_key');
  const forged = wire(new IntegrityState({ keys: keys('guess'), now: () => T0 }));
  assert.equal(b.check(forged.bytes, forged.msg, '10.0.1.2'), 'bad_digest');
  const good = wire(new IntegrityState({ keys: keys('s3cret'), now: () => T0 }));
  assert.equal(b.check(good.bytes, good.msg, '10.0.1.2'), null, 'none of those moved the last sequence number');
});

test('sequence numbers: the wall clock\'s seconds in the high 32 bits, +1 a message; a restart starts above', () => {
  const seq = (s: IntegrityState) => { const m = wire(s).msg.objects[0]!; return m.kind === 'INTEGRITY' ? BigInt(m.sequence) : -1n; };
  const a = new IntegrityState({ keys: keys('s3cret'), now: () => T0 });
  const s1 = seq(a), s2 = seq(a);
  assert.equal(s1, (BigInt(T0 / 1000) << 32n) + 1n);
  assert.equal(s2, s1 + 1n);
  const b = new IntegrityState({ keys: keys('s3cret'), now: () => T0 });
  for (let i = 0; i < 5; i++) { const w = wire(a); assert.equal(b.check(w.bytes, w.msg, '10.0.1.2'), null); }
  const restarted = new IntegrityState({ keys: keys('s3cret'), now: () => T0 + 1000 });
  const w = wire(restarted);
  assert.equal(b.check(w.bytes, w.msg, '10.0.1.2'), null, 'a second later, above every number of the run before');
});

test('the replay memory is bounded: the least recently heard pair is forgotten first', () => {
  const a = new IntegrityState({ keys: keys('s3cret'), now: () => T0 });
  const b = new IntegrityState({ keys: keys('s3cret'), maxPeers: 2, now: () => T0 });
  const w = wire(a);
  for (const src of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) assert.equal(b.check(w.bytes, w.msg, src), null);
  assert.equal(b.check(w.bytes, w.msg, '10.0.0.3'), 'replay');
  assert.equal(b.check(w.bytes, w.msg, '10.0.0.1'), null, 'forgotten: 2 pairs kept');
});
