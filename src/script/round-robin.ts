/* Queues by key (a user's uid) served in turn: each key with something queued gives one item,
 * then waits behind every other key with something queued, including keys that came while
 * its item was being handled. A script host runs its calls in this order, so a user who
 * comes while another has a backlog waits for the call running now, not for the backlog.
 *
 * A key's queue stays in the map when it empties (and is dropped only when the map is large
 * and the key idle): a Map that keeps losing and regaining the same keys rebuilds its table
 * over and over (docs/performance.md, on the in-flight queue). */

interface Queue<T> { items: T[]; waiting: boolean }

/** Keys kept while idle; past this the idle ones are forgotten. */
const KEEP = 4096;

export class RoundRobin<T> {
  private readonly queues = new Map<number, Queue<T>>();
  /** queues with items, in the order they get their next turn, but not `last` */
  private readonly turn: Queue<T>[] = [];
  /** the queue that gave the last item: it goes to the back of the turn at the next shift,
   * behind keys that came meanwhile */
  private last: Queue<T> | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(key: number, item: T): void {
    let q = this.queues.get(key);
    if (!q) {
      if (this.queues.size >= KEEP) for (const [k, v] of this.queues) if (!v.waiting && v !== this.last) this.queues.delete(k);
      this.queues.set(key, (q = { items: [], waiting: false }));
    }
    q.items.push(item);
    if (!q.waiting && q !== this.last) {
      q.waiting = true;
      this.turn.push(q);
    }
    this.count++;
  }

  /** The next item: the oldest of the key whose turn it is. */
  shift(): T | undefined {
    const prev = this.last;
    if (prev?.items.length) {
      prev.waiting = true;
      this.turn.push(prev);
    }
    this.last = null;
    const q = this.turn.shift();
    if (!q) return undefined;
    q.waiting = false;
    this.last = q;
    this.count--;
    return q.items.shift()!;
  }
}
