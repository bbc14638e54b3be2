/* The deadlines of RSVP soft state (refresh sends, state time-outs, blockade timers) in one
 * indexed min-heap driving ONE clock timer, set for the earliest deadline: a node with 10,000
 * sessions holds tens of thousands of deadlines, and a timer each would cost the clock (the
 * ManualClock scans its pending list linearly; Node keeps a list per duration). Setting,
 * moving and cancelling a deadline is O(log n) (STYLE.md "Time and state"). */

import type { Clock, Timer } from '../../clock.js';

/** One deadline: set it with Deadlines.set, cancel with Deadlines.cancel; reusable. */
export class Deadline {
  /** position in the heap, -1 when not set */
  idx = -1;
  at = 0;
  seq = 0;
  constructor(readonly run: () => void) {}
  get pending(): boolean { return this.idx >= 0; }
}

export class Deadlines {
  private readonly heap: Deadline[] = [];
  private seq = 0;
  private timer: Timer | null = null;
  private armedAt = Infinity;
  private stopped = false;

  /** slackMs: deadlines due within it of the one that fires run with it, early by at most
   * that. A node's refreshes are jittered across R: with a slack of a few milliseconds those
   * that fall close together go out in one turn of the event loop (one write to the
   * transport) instead of one turn each. 0 runs each at its time. */
  constructor(private readonly clock: Clock, private readonly slackMs = 0) {}

  get size(): number { return this.heap.length; }

  /** Sets (or moves) d to run at clock time `at`. */
  set(d: Deadline, at: number): void {
    if (this.stopped) return;
    d.at = at;
    d.seq = this.seq++; // ties run in order of setting, as the clock's own timers do
    if (d.idx < 0) { d.idx = this.heap.length; this.heap.push(d); this.up(d.idx); }
    else { this.up(d.idx); this.down(d.idx); }
    this.arm();
  }

  /** Sets d to run ms from now. */
  after(d: Deadline, ms: number): void { this.set(d, this.clock.now() + ms); }

  cancel(d: Deadline): void {
    const i = d.idx;
    if (i < 0) return;
    const last = this.heap.pop()!;
    d.idx = -1;
    if (last !== d) { this.heap[i] = last; last.idx = i; this.up(i); this.down(i); }
    // the clock timer may now fire early for nothing: it then re-arms for the new head
  }

  /** Cancels everything; later sets are ignored. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel(); this.timer = null; this.armedAt = Infinity;
    for (const d of this.heap) d.idx = -1;
    this.heap.length = 0;
  }

  private arm(): void {
    const head = this.heap[0];
    if (!head || head.at >= this.armedAt) return;
    this.timer?.cancel();
    this.armedAt = head.at;
    this.timer = this.clock.after(Math.max(0, head.at - this.clock.now()), () => this.fire());
  }

  private fire(): void {
    this.timer = null; this.armedAt = Infinity;
    const now = this.clock.now();
    // a deadline a callback sets for now or earlier runs in this same loop
    for (let head = this.heap[0]; head && head.at <= now + this.slackMs && !this.stopped; head = this.heap[0]) {
      this.cancel(head);
      head.run();
    }
    this.arm();
  }

  private less(a: Deadline, b: Deadline): boolean { return a.at < b.at || (a.at === b.at && a.seq < b.seq); }

  private swap(i: number, j: number): void {
    const a = this.heap[i]!, b = this.heap[j]!;
    this.heap[i] = b; b.idx = i; this.heap[j] = a; a.idx = j;
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(this.heap[i]!, this.heap[p]!)) return;
      this.swap(i, p); i = p;
    }
  }

  private down(i: number): void {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < this.heap.length && this.less(this.heap[l]!, this.heap[m]!)) m = l;
      if (r < this.heap.length && this.less(this.heap[r]!, this.heap[m]!)) m = r;
      if (m === i) return;
      this.swap(i, m); i = m;
    }
  }
}
