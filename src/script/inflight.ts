/* The calls a script host (a JavaScript worker or the tclsh child) has been given and not yet
 * answered, in the order given, and the clock its watchdog reads: when the call at the head
 * of the queue started running. Both hosts answer in order, so that is when the last answer
 * came (or the first call was queued, or the host was (re)started). */

/** Calls queued on one host beyond which new ones go to the rules at once. */
export const MAX_QUEUE = 1000;

export class InFlight<P extends { sent: number }> {
  private readonly calls = new Map<number, P>();
  private headStart = 0;

  get size(): number {
    return this.calls.size;
  }

  /** No room for another call. */
  get full(): boolean {
    return this.calls.size >= MAX_QUEUE;
  }

  add(id: number, p: P): void {
    if (this.calls.size === 0) this.headStart = p.sent;
    this.calls.set(id, p);
  }

  get(id: number): P | undefined {
    return this.calls.get(id);
  }

  /** Removes the answered call id; with its time in flight. */
  take(id: number, now = Date.now()): { p: P; ms: number } | undefined {
    const p = this.calls.get(id);
    if (!p) return undefined;
    this.calls.delete(id);
    this.headStart = now;
    return { p, ms: now - p.sent };
  }

  /** The host (re)started: the head call starts now. */
  restarted(now = Date.now()): void {
    this.headStart = now;
  }

  /** Whether the head call has been running longer than limitMs. */
  overdue(limitMs: number, now = Date.now()): boolean {
    return this.calls.size > 0 && now - this.headStart > limitMs;
  }

  /** Removes and returns every call (the host is gone). */
  drain(): P[] {
    const all = [...this.calls.values()];
    this.calls.clear();
    return all;
  }
}
