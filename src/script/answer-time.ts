/* The daemon-side answer time of script requests: a request whose script has not answered
 * within it is answered by the rules (`late`), so the program gets an answer before its agent
 * gives up (50 ms by default: docs/protocol.md), whatever the script host is doing. The call
 * itself stays with its host: one whose turn comes after its answer time is not run (the host
 * is told the time with the call), one running then runs to its end, and its outcome still
 * counts for the user's breaker (budget.ts) and is logged, but the program has its answer.
 *
 * One timer, armed for the oldest request still waiting, not a timer per call; and no list of
 * its own: the calls a host has not answered are in its in-flight queue, in the order they
 * were made, which is the order their answer times come (sweep, in host.ts, walks them). A
 * list holding every request for its answer time kept each call, its promise and closures
 * alive past a young-generation collection, and cost the event loop 9 us per scripted
 * Socket+Connect pair in promotions (A/B, 32 clients). */

export class AnswerClock {
  private timer: NodeJS.Timeout | null = null;

  /** sweep(now) answers the requests whose time is up and returns when the oldest still
   * waiting was made, or null if none is. */
  constructor(readonly ms: number, private readonly sweep: (now: number) => number | null) {}

  /** A request made at `sent` waits: the clock looks by its answer time at the latest. */
  started(sent: number): void {
    if (!this.timer) this.arm(sent);
  }

  private arm(sent: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      const oldest = this.sweep(Date.now());
      if (oldest !== null) this.arm(oldest);
    }, Math.max(0, sent + this.ms - Date.now()));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
