import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../clock.js';
import { encodeSlot, RING_SLOT_BYTES, RingReader, SLOT_CLOSED, views } from '../protocol/note-ring.js';
import { POLL_BEHIND_MS, POLL_BUSY_MS, POLL_IDLE_MS, RingPoller, type RingOwner } from './agent-rings.js';

const SLOTS = 64;
const who = { pid: 1, uid: 0, cmd: 'x' };

/** A poller over plain memory (the rings a daemon passes are memfds: native, not needed here)
 * whose drain reads every record and notes when. */
function setup() {
  const clock = new ManualClock();
  const read: { pid: number; fd: number; at: number }[] = [];
  let turns = 0;
  const poller = new RingPoller<RingOwner>(clock, (c) => {
    let n = 0;
    for (let m = c.ring!.next(who); m !== null; m = c.ring!.next(who), n++) read.push({ pid: c.cred.pid, fd: (m as { fd: number }).fd, at: clock.now() });
    return { read: n, more: false };
  }, () => { turns++; });
  const owner = (pid: number) => {
    const buf = new ArrayBuffer(SLOTS * RING_SLOT_BYTES);
    const c: RingOwner & { w: number; write(fd: number): void } = {
      ring: null, ringBuf: null, hot: 0, cred: { pid }, w: 0,
      write(fd) { assert.ok(encodeSlot(buf, this.w++ % SLOTS, { kind: 'Close', fd })); },
    };
    poller.add(c, new RingReader(buf, SLOTS), buf);
    return c;
  };
  return { clock, read, poller, owner, turns: () => turns };
}

test('a record is read within POLL_IDLE_MS of being written, however long the ring was idle', () => {
  const { clock, read, owner } = setup();
  const c = owner(10);
  clock.advance(10 * POLL_IDLE_MS); // long enough to have gone cold
  for (let k = 0; k < 5; k++) {
    const at = clock.now() + 7 * k + 1;
    clock.to(at);
    c.write(k);
    clock.advance(POLL_IDLE_MS);
    assert.equal(read.length, k + 1, `record ${k} read`);
    assert.ok(read[k]!.at - at <= POLL_IDLE_MS, `read ${read[k]!.at - at} ms after it was written`);
  }
});

test('a ring that had records is looked at every POLL_BUSY_MS until it has been quiet for a while', () => {
  const { clock, read, owner } = setup();
  const c = owner(10);
  clock.advance(10 * POLL_IDLE_MS);
  c.write(1);
  clock.advance(POLL_IDLE_MS); // read, and hot now
  for (let k = 0; k < 10; k++) {
    c.write(100 + k);
    clock.advance(POLL_BUSY_MS);
    assert.equal(read.at(-1)!.fd, 100 + k, 'read within one busy poll');
  }
  // quiet for long: back to the idle pace (a record may wait up to POLL_IDLE_MS again)
  clock.advance(20 * POLL_IDLE_MS);
  const before = read.length;
  c.write(7);
  clock.advance(POLL_BUSY_MS);
  clock.advance(POLL_IDLE_MS);
  assert.equal(read.length, before + 1);
});

test('while a share of a turn leaves records unread, the next poll comes after POLL_BEHIND_MS', () => {
  const clock = new ManualClock();
  const at: number[] = [];
  // a user's share of a turn: 4 records
  const poller = new RingPoller<RingOwner>(clock, (c) => {
    let n = 0;
    while (n < 4 && c.ring!.next(who) !== null) { n++; at.push(clock.now()); }
    return { read: n, more: n === 4 && c.ring!.pending };
  }, () => undefined);
  const buf = new ArrayBuffer(SLOTS * RING_SLOT_BYTES);
  poller.add({ ring: null, ringBuf: null, hot: 0, cred: { pid: 1 } }, new RingReader(buf, SLOTS), buf);
  for (let i = 0; i < 10; i++) encodeSlot(buf, i, { kind: 'Close', fd: i });
  clock.advance(POLL_BUSY_MS); // the first poll (hot from the start): 4 read, 6 left
  assert.equal(at.length, 4);
  clock.advance(POLL_BEHIND_MS);
  assert.equal(at.length, 8, 'read again after POLL_BEHIND_MS');
  clock.advance(POLL_BEHIND_MS);
  assert.equal(at.length, 10);
  // all read: back to the busy pace
  encodeSlot(buf, 10, { kind: 'Close', fd: 10 });
  clock.advance(POLL_BEHIND_MS);
  assert.equal(at.length, 10, 'not looked at after POLL_BEHIND_MS');
  clock.advance(POLL_BUSY_MS - POLL_BEHIND_MS);
  assert.equal(at.length, 11);
  poller.close();
});

test('drainPid reads every ring of that process and only those; each poll is a turn', () => {
  const { clock, read, poller, owner, turns } = setup();
  const a1 = owner(10), a2 = owner(10), b = owner(20);
  a1.write(1);
  a2.write(2);
  b.write(3);
  poller.drainPid(10);
  assert.deepEqual(read.map((r) => [r.pid, r.fd]), [[10, 1], [10, 2]]);
  const t = turns();
  clock.advance(POLL_BUSY_MS);
  assert.deepEqual(read.map((r) => r.fd), [1, 2, 3]);
  assert.equal(turns(), t + 1);
});

test('removing a ring tells its agent (CLOSED where it writes next) and stops reading it', () => {
  const { clock, read, poller, owner } = setup();
  const c = owner(10);
  c.write(1);
  clock.advance(POLL_BUSY_MS);
  const buf = c.ringBuf!;
  poller.remove(c);
  assert.equal(c.ring, null);
  assert.equal(views(buf).u32[RING_SLOT_BYTES / 4], SLOT_CLOSED);
  assert.equal(poller.size, 0);
  clock.advance(10 * POLL_IDLE_MS);
  assert.equal(read.length, 1);
  assert.equal(clock.waiting, 0, 'no poll is left scheduled with no ring');
});
