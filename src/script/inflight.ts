/* The calls a script host (a JavaScript worker or a tclsh child) has been given and not yet
 * answered, in the order given, and the clock its watchdog reads: when the host last answered
 * (or was given its first call, or was (re)started). A host runs one call at a time and
 * answers each as it ends, so a host holding calls that has not answered for longer than a
 * call may run is stuck in one. Hosts take users in turn (round-robin.ts), so answers come
 * mostly, not always, in the order given.
 *
 * A fixed circular array, not a Map: a Map that keeps taking new keys and deleting old ones
 * rebuilds its table every few dozen calls, and V8 links each old table to its successor
 * (for iterators) without clearing it. Once one of those tables is old enough to be promoted,
 * every later table and every call it held survive each young-generation collection until
 * the next full one: measured under load, 3 MB promoted per scavenge and 7-13 ms scavenges
 * on the daemon's event loop, against 0.3 ms with this queue. */

import { QosError } from '../errors.js';

/** Calls queued on one host beyond which new ones go to the rules at once. */
export const MAX_QUEUE = 1000;

export class InFlight<P extends { sent: number }> {
  private readonly ids = new Float64Array(MAX_QUEUE);
  private readonly items: (P | undefined)[] = new Array<P | undefined>(MAX_QUEUE).fill(undefined);
  /** index of the oldest call */
  private head = 0;
  private count = 0;
  private lastAnswer = 0;

  /** When the host last answered (or was given its first call, or (re)started). */
  get since(): number {
    return this.lastAnswer;
  }

  get size(): number {
    return this.count;
  }

  /** No room for another call. */
  get full(): boolean {
    return this.count >= MAX_QUEUE;
  }

  /** Queues call id (ids must differ from those queued; the caller checks `full` first). */
  add(id: number, p: P): void {
    if (this.count >= MAX_QUEUE) throw new QosError('QOS_ERR_INTERNAL', 'in-flight queue full');
    if (this.count === 0) this.lastAnswer = p.sent;
    const i = (this.head + this.count) % MAX_QUEUE;
    this.ids[i] = id;
    this.items[i] = p;
    this.count++;
  }

  /** Position of id in the queue (0 = head), or -1. */
  private find(id: number): number {
    for (let k = 0; k < this.count; k++) if (this.ids[(this.head + k) % MAX_QUEUE] === id) return k;
    return -1;
  }

  /** The k-th call, oldest first. */
  at(k: number): P | undefined {
    return k < this.count ? this.items[(this.head + k) % MAX_QUEUE] : undefined;
  }

  get(id: number): P | undefined {
    const k = this.find(id);
    return k < 0 ? undefined : this.items[(this.head + k) % MAX_QUEUE];
  }

  /** Removes the answered call id; with its time in flight. Mostly id is the head call (one
   * user, or users taking turns with one call each); another is found and removed all the
   * same. */
  take(id: number, now = Date.now()): { p: P; ms: number } | undefined {
    const k = this.ids[this.head] === id && this.count > 0 ? 0 : this.find(id);
    if (k < 0) return undefined;
    const at = (this.head + k) % MAX_QUEUE;
    const p = this.items[at]!;
    // Close the gap: move the calls before it one place on (none when it is the head).
    for (let j = k; j > 0; j--) {
      const to = (this.head + j) % MAX_QUEUE, from = (this.head + j - 1) % MAX_QUEUE;
      this.ids[to] = this.ids[from]!;
      this.items[to] = this.items[from];
    }
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % MAX_QUEUE;
    this.count--;
    this.lastAnswer = now;
    return { p, ms: now - p.sent };
  }

  /** The host (re)started: the head call starts now. */
  restarted(now = Date.now()): void {
    this.lastAnswer = now;
  }

  /** Whether calls are held and the host has not answered for longer than limitMs. */
  overdue(limitMs: number, now = Date.now()): boolean {
    return this.count > 0 && now - this.lastAnswer > limitMs;
  }

  /** Removes and returns every call, oldest first (the host is gone). */
  drain(): P[] {
    const all: P[] = [];
    while (this.count > 0) {
      all.push(this.items[this.head]!);
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % MAX_QUEUE;
      this.count--;
    }
    return all;
  }
}
