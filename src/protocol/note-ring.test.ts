import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, type Message } from './messages.js';
import { decodeSlot, encodeSlot, formatIPv6, ringSlots, RING_SLOT_BYTES, RingReader, SLOT_CLOSED, views, type RingRecord } from './note-ring.js';

const who = { pid: 4242, uid: 1000, cmd: 'curl -s http://x' };
const SLOTS = 64;
const newRing = () => new ArrayBuffer(SLOTS * RING_SLOT_BYTES);

/** Every record kind, with the message the daemon takes it for. */
const CASES: [RingRecord, Message][] = [
  [{ kind: 'Socket', fd: 5, family: 2, sockType: 1, protocol: 0, generation: 1795287232097000 },
    { type: 'Cached', ...who, generation: 1795287232097000, inner: { type: 'Socket', ...who, family: 2, sockType: 1, protocol: 0, fd: 5 } }],
  [{ kind: 'Connect', fd: 5, address: { family: 2, host: '192.0.2.10', port: 80 }, generation: 7 },
    { type: 'Cached', ...who, generation: 7, inner: { type: 'Connect', ...who, fd: 5, address: { family: 2, host: '192.0.2.10', port: 80 }, sqos: '', gqos: '' } }],
  [{ kind: 'SendTo', fd: 2 ** 31 - 1, address: { family: 10, host: '2001:db8::5', port: 65535 }, generation: Number.MAX_SAFE_INTEGER },
    { type: 'Cached', ...who, generation: Number.MAX_SAFE_INTEGER, inner: { type: 'SendTo', ...who, fd: 2 ** 31 - 1, address: { family: 10, host: '2001:db8::5', port: 65535 } } }],
  [{ kind: 'Shutdown', fd: 0, how: 2 }, { type: 'Shutdown', ...who, fd: 0, how: 2 }],
  [{ kind: 'Close', fd: 9 }, { type: 'Close', ...who, fd: 9 }],
  [{ kind: 'Connect', withSocket: true, fd: 6, family: 10, sockType: 1, protocol: 6, address: { family: 2, host: '10.0.0.1', port: 1 }, generation: 9 },
    { type: 'Cached', ...who, generation: 9, inner: { type: 'Socket', ...who, family: 10, sockType: 1, protocol: 6, fd: 6 } }],
];

test('every record kind reads back as the message its line would decode to, in order, around the ring', () => {
  const buf = newRing();
  const r = new RingReader(buf, SLOTS);
  let w = 0;
  // the record with its Socket stands for two messages: the Socket, then its Connect
  const withConnect: Message = { type: 'Cached', ...who, generation: 9, inner: { type: 'Connect', ...who, fd: 6, address: { family: 2, host: '10.0.0.1', port: 1 }, sqos: '', gqos: '' } };
  const wants = [...CASES.map(([, m]) => m), withConnect];
  for (let lap = 0; lap < 3 * SLOTS; lap += CASES.length) {
    for (const [rec] of CASES) assert.ok(encodeSlot(buf, w++ % SLOTS, rec));
    for (const want of wants) {
      const got = r.next(who);
      assert.deepEqual(got, want);
      assert.deepEqual(decode(encode(got as Message)), want, 'the same message a line carries');
    }
    assert.equal(r.next(who), null);
    assert.equal(r.pending, false);
  }
});

test('a full ring takes no record; what the agent dropped is counted with its next record', () => {
  const buf = newRing();
  for (let i = 0; i < SLOTS; i++) assert.ok(encodeSlot(buf, i, { kind: 'Close', fd: i }));
  assert.equal(encodeSlot(buf, 0, { kind: 'Close', fd: 99 }), false, 'slot 0 is still the daemon\'s');
  const r = new RingReader(buf, SLOTS);
  assert.equal((r.next(who) as { fd: number }).fd, 0);
  assert.ok(encodeSlot(buf, 0, { kind: 'Close', fd: 100, shed: 3 }));
  for (let i = 1; i < SLOTS; i++) r.next(who);
  assert.deepEqual(r.next(who), { type: 'Close', ...who, fd: 100 });
  assert.equal(r.shed, 3);
});

test('malformed records are reported, their slots freed, and reading goes on', () => {
  const buf = newRing();
  const v = views(buf);
  const bad: [(b: number) => void, RegExp][] = [
    [(b) => { v.u8[b + 4] = 0; }, /unknown kind 0/],
    [(b) => { v.u8[b + 4] = 6; }, /unknown kind 6/],
    [(b) => { v.u8[b + 4] = 4; v.i32[(b + 8) / 4] = -1; }, /fd -1/],
    [(b) => { v.u8[b + 4] = 5; v.i32[(b + 12) / 4] = 3; }, /how 3/],
    [(b) => { v.u8[b + 4] = 2; v.u8[b + 7] = 1; }, /address family 1/],
    // a call with its Socket: neither message, if any part is wrong
    [(b) => { v.u8[b + 4] = 2; v.u16[(b + 18) / 2] = 1; v.u8[b + 7] = 1; }, /address family 1/],
    [(b) => { v.u8[b + 4] = 3; v.u16[(b + 18) / 2] = 1; v.u8[b + 7] = 2; v.u8[b + 6] = 16; }, /socket type 16/],
    [(b) => { v.u8[b + 4] = 2; v.u8[b + 7] = 2; v.u32[(b + 28) / 4] = 2 ** 21; }, /generation/],
    [(b) => { v.u8[b + 4] = 1; v.u8[b + 6] = 16; }, /socket type 16/],
    [(b) => { v.u8[b + 4] = 4; v.u32[b / 4] = 7; }, /state 7/],
  ];
  bad.forEach(([spoil], i) => {
    const b = i * RING_SLOT_BYTES;
    v.u32[b / 4] = 1;
    spoil(b);
  });
  encodeSlot(buf, bad.length, { kind: 'Close', fd: 3 });
  const r = new RingReader(buf, SLOTS);
  for (const [, why] of bad) assert.match(r.next(who) as string, why);
  assert.deepEqual(r.next(who), { type: 'Close', ...who, fd: 3 });
  for (let i = 0; i <= bad.length; i++) assert.equal(v.u32[(i * RING_SLOT_BYTES) / 4], 0, `slot ${i} is free again`);
});

test('closing marks the slot the agent writes next, unless a record is being written there', () => {
  const buf = newRing();
  const r = new RingReader(buf, SLOTS);
  encodeSlot(buf, 0, { kind: 'Close', fd: 1 });
  r.next(who);
  r.close();
  assert.equal(views(buf).u32[RING_SLOT_BYTES / 4], SLOT_CLOSED);
  assert.equal(encodeSlot(buf, 1, { kind: 'Close', fd: 2 }), false, 'the agent finds it closed');
  const b2 = newRing();
  encodeSlot(b2, 0, { kind: 'Close', fd: 1 });
  new RingReader(b2, SLOTS).close();
  assert.equal(views(b2).u32[0], 1, 'a waiting record is left as it is');
});

test('closed between the two messages of a call with its Socket, the ring frees that slot and marks the next', () => {
  const buf = newRing();
  const r = new RingReader(buf, SLOTS);
  encodeSlot(buf, 0, { kind: 'Connect', withSocket: true, fd: 6, family: 2, sockType: 1, protocol: 0, address: { family: 2, host: '10.0.0.1', port: 1 }, generation: 9 });
  assert.equal((r.next(who) as { inner: { type: string } }).inner.type, 'Socket');
  assert.equal(r.pending, true, 'its call is still to be read');
  r.close();
  assert.equal(views(buf).u32[0], 0, 'its slot is free');
  assert.equal(views(buf).u32[RING_SLOT_BYTES / 4], SLOT_CLOSED);
});

test('a detached ring reads as empty', () => {
  const buf = newRing();
  encodeSlot(buf, 0, { kind: 'Close', fd: 1 });
  const r = new RingReader(buf, SLOTS);
  structuredClone(buf, { transfer: [buf] }); // detaches buf, as ringRelease does
  assert.equal(r.pending, false);
  assert.equal(r.next(who), null);
  r.close();
});

test('ring sizes: a power of two of 64-byte slots, 64 to 65536 of them', () => {
  assert.equal(ringSlots(64 * 1024), 1024);
  assert.equal(ringSlots(64 * 64), 64);
  assert.equal(ringSlots(64 * 65536), 65536);
  for (const bytes of [0, 64 * 32, 64 * 1000, 64 * 131072, 64 * 1024 + 1]) assert.equal(ringSlots(bytes), 0, String(bytes));
});

test('IPv6 text as inet_ntop writes it (also held to the C library in src/agent/codec.test.ts)', () => {
  const b = (...w: number[]) => Uint8Array.from(w.flatMap((x) => [x >> 8, x & 0xff]));
  assert.equal(formatIPv6(b(0, 0, 0, 0, 0, 0, 0, 0), 0), '::');
  assert.equal(formatIPv6(b(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1), 0), '2001:db8::1:0:0:1');
  assert.equal(formatIPv6(b(1, 0, 2, 3, 4, 5, 6, 7), 0), '1:0:2:3:4:5:6:7');
  assert.equal(formatIPv6(b(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201), 0), '::ffff:192.0.2.1');
  assert.equal(formatIPv6(b(0, 0, 0, 0, 0, 0, 0, 1), 0), '::1');
  // decodeSlot only reads what it is given
  assert.equal(typeof decodeSlot(views(newRing()), 0, who), 'string');
});
