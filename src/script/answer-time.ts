/* The daemon-side answer time of script requests: a request whose script has not answered
 * within it is answered by the rules (`late`), so the program gets an answer before its agent
 * gives up (50 ms by default: docs/protocol.md), whatever the script host is doing. The call
 * itself stays with its host: when the host answers, its outcome still counts for the user's
 * breaker (budget.ts) and is logged, but the program already has its answer.
 *
 * Requests are kept in the order they were made, which is the order their answer times come;
 * one timer, armed for the oldest still unanswered, expires them (not a timer per call). */

/** What the clock needs of a call: when it was made, and whether it has its answer. */
export interface Timed { sent: number; settled: boolean }

export class AnswerClock<C extends Timed> {
  private items: (C | undefined)[] = new Array<C | undefined>(64).fill(undefined);
  private head = 0;
  private count = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ms: number, private readonly expire: (c: C, now: number) => void, private readonly now: () => number = Date.now) {}

  /** Starts c's answer time (calls come in the order they were made). */
  add(c: C): void {
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) % this.items.length] = c;
    this.count++;
    if (!this.timer) this.arm(c.sent);
  }

  /** Expires every call whose answer time is up; returns how many. */
  tick(now = this.now()): number {
    let n = 0;
    while (this.count > 0) {
      const c = this.items[this.head]!;
      if (!c.settled && now - c.sent < this.ms) break;
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.items.length;
      this.count--;
      if (!c.settled) { this.expire(c, now); n++; }
    }
    return n;
  }

  private arm(sent: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tick();
      // tick leaves the oldest call still waiting at the head: it sets the next time to look
      if (this.count > 0) this.arm(this.items[this.head]!.sent);
    }, Math.max(0, sent + this.ms - this.now()));
    this.timer.unref();
  }

  private grow(): void {
    const old = this.items, n = old.length;
    this.items = new Array<C | undefined>(n * 2).fill(undefined);
    for (let k = 0; k < this.count; k++) this.items[k] = old[(this.head + k) % n];
    this.head = 0;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
