/* Notification rings on the daemon's side (docs/protocol.md, "Notification ring"): made for an
 * agent connection when it asks (Ring), passed to it with the reply, read by a poll and before
 * any line of the same process, and released when the connection ends. The records themselves
 * (layout, decoding) are src/protocol/note-ring.ts; what a record does is the agent server's
 * (agents.ts: the same as the line it stands for).
 *
 * The poll: every POLL_IDLE_MS it looks at every ring (one memory load each); a ring that had
 * records is hot and looked at again every POLL_BUSY_MS until it has been empty for a while,
 * and sooner (POLL_BEHIND_MS) while a user's share of a turn leaves records unread. So a record
 * waits at most POLL_IDLE_MS (plus the time to handle what is before it), the bound on how
 * stale `qos flows` can be, and a busy thread's ring is emptied long before it fills. Each
 * poll wakes the event loop, which costs about as much as reading a hundred records here: the
 * busy pace is as slow as the ring's size allows. */

import { closeSync } from 'node:fs';
import type { Clock, Timer } from '../clock.js';
import { native } from '../native.js';
import { encodeRing } from '../protocol/replies.js';
import { RING_SLOT_BYTES, RING_SLOTS, RingReader } from '../protocol/note-ring.js';

export const POLL_IDLE_MS = 50;
export const POLL_BUSY_MS = 10;
export const POLL_BEHIND_MS = 5;
/** Busy polls a ring stays hot for after its last record. */
const HOT_POLLS = 10;

/** What a ring belongs to: an agent connection of process pid. */
export interface RingOwner {
  ring: RingReader | null;
  /** the ring's memory (released with it) */
  ringBuf: ArrayBuffer | null;
  /** busy polls left before the ring counts as idle */
  hot: number;
  readonly cred: { pid: number };
}

/** Makes a ring and sends `RING n` with it on the socket with descriptor sock, all at once.
 * Returns the ring and its memory, or null: nothing was sent and the caller replies `RING 0`
 * itself. Only when nothing else is queued on the socket (the reply must be in its place). */
export function passRing(sock: number): { ring: RingReader; buf: ArrayBuffer; rest: string } | null {
  const made = native.ringCreate(RING_SLOTS * RING_SLOT_BYTES);
  if (!made) return null;
  const [fd, buf] = made;
  const text = `${encodeRing(RING_SLOTS)}\n`;
  const left = native.sendText(sock, text, fd);
  closeSync(fd);
  if (left < 0 || left === text.length) {
    native.ringRelease(buf);
    return null;
  }
  // the descriptor went with the first byte: what did not fit goes the usual way (ASCII: a
  // byte a character)
  return { ring: new RingReader(buf, RING_SLOTS), buf, rest: text.slice(text.length - left) };
}

/** Every ring of the agent server, by process, and the poll that reads them. */
export class RingPoller<C extends RingOwner> {
  private readonly all = new Set<C>();
  private readonly byPid = new Map<number, Set<C>>();
  private readonly hot = new Set<C>();
  /** the poll, every `period` ms (an interval: re-arming a timeout per poll cost a tenth of
   * a cached connect's CPU in timer objects) */
  private timer: Timer | null = null;
  private period = 0;
  private sinceFull = 0;

  /** drain(c, all) reads c's waiting records (all of them, or as many as its user's share of
   * this turn allows) and returns how many, and whether it left some */
  constructor(private readonly clock: Clock, private readonly drain: (c: C, all: boolean) => { read: number; more: boolean }, private readonly onTurn: () => void) {}

  get size(): number {
    return this.all.size;
  }

  add(c: C, ring: RingReader, buf: ArrayBuffer): void {
    c.ring = ring;
    c.ringBuf = buf;
    // hot from the start: a program's first burst of connects fills it before an idle poll
    c.hot = HOT_POLLS;
    this.hot.add(c);
    this.all.add(c);
    let s = this.byPid.get(c.cred.pid);
    if (!s) this.byPid.set(c.cred.pid, (s = new Set()));
    s.add(c);
    if (!this.timer) this.schedule(POLL_BUSY_MS);
  }

  /** Lets go of c's ring: the agent is told (the slot it writes next says CLOSED), and the
   * memory is unmapped. Read what waits first (drainPid or drain) if it still counts. */
  remove(c: C): void {
    const ring = c.ring, buf = c.ringBuf;
    if (!ring || !buf) return;
    ring.close();
    native.ringRelease(buf);
    c.ring = null;
    c.ringBuf = null;
    this.all.delete(c);
    this.hot.delete(c);
    const s = this.byPid.get(c.cred.pid);
    s?.delete(c);
    if (s && !s.size) this.byPid.delete(c.cred.pid);
    if (!this.all.size) this.stop();
  }

  /** Reads the waiting records of every ring of process pid (before one of its lines: its
   * threads' notifications written before that line was sent come first). */
  drainPid(pid: number): void {
    const s = this.byPid.get(pid);
    if (!s) return;
    for (const c of s) if (c.ring?.pending) this.drainOne(c, true);
  }

  private drainOne(c: C, all: boolean): boolean {
    const { read, more } = this.drain(c, all);
    if (read > 0 || more) {
      c.hot = HOT_POLLS;
      this.hot.add(c);
    }
    return more;
  }

  /** Polls every ms from now on (unless it already does). */
  private schedule(ms: number): void {
    if (!this.all.size) return this.stop();
    if (this.timer && this.period === ms) return;
    this.timer?.cancel();
    this.period = ms;
    this.timer = this.clock.every(ms, () => this.poll());
  }

  private stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** One poll: the hot rings, and every POLL_IDLE_MS all of them. */
  poll(): void {
    this.onTurn();
    const full = this.hot.size === 0 || (this.sinceFull += this.period) >= POLL_IDLE_MS;
    if (full) this.sinceFull = 0;
    let behind = false;
    // (a drain removes rings, from either set, and adds none: the sets are walked as they are)
    for (const c of full ? this.all : this.hot) {
      if (c.ring?.pending) behind = this.drainOne(c, false) || behind;
      else if (this.hot.has(c) && --c.hot <= 0) this.hot.delete(c);
    }
    this.schedule(behind ? POLL_BEHIND_MS : this.hot.size ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  /** Lets go of every ring (the daemon stops). */
  close(): void {
    this.stop();
    for (const c of [...this.all]) this.remove(c);
  }
}
