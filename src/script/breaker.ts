/* Suspends a policy script handler that keeps running out of time. A handler whose calls
 * overrun their deadline (or hang their worker) TRIP_AFTER times in a row is not called for a
 * while: its calls go straight to the rules, counted as `suspended`. Each new trip doubles
 * the pause (1 s up to 60 s); one call that ends in time (with a decision, nothing, or even
 * an exception: those are quick) closes it again. Without this, a script that loops on
 * every call keeps a core busy for as long as calls come, which slowed rules-only clients
 * by ~20 % here even with the workers at nice 19 (docs/performance.md). */

import type { Logger } from 'pino';
import type { HandlerName } from './js-sandbox.js';

export const TRIP_AFTER = 3;
export const FIRST_PAUSE_MS = 1000;
export const MAX_PAUSE_MS = 60_000;

/** What happened to a call, as far as the breaker cares. */
export type CallEnd = 'decided' | 'fallthrough' | 'error' | 'timeout' | 'killed' | 'overloaded' | 'suspended';

interface HandlerState { overruns: number; until: number; pause: number }

export class Breaker {
  private readonly handlers = new Map<HandlerName, HandlerState>();
  constructor(private readonly where: string, private readonly log?: Logger, private readonly now: () => number = Date.now) {}

  /** Whether handler is suspended now (its calls go to the rules). */
  suspended(handler: HandlerName): boolean {
    const s = this.handlers.get(handler);
    return s !== undefined && this.now() < s.until;
  }

  /** Why a call of handler is not made now, if it is not: its host is full (or closed), or
   * the handler is suspended. */
  refuse(handler: HandlerName, full: boolean): 'overloaded' | 'suspended' | null {
    return full ? 'overloaded' : this.suspended(handler) ? 'suspended' : null;
  }

  /** Records how one call of handler ended. */
  record(handler: HandlerName, end: CallEnd): void {
    if (end === 'timeout' || end === 'killed') {
      let s = this.handlers.get(handler);
      if (!s) this.handlers.set(handler, (s = { overruns: 0, until: 0, pause: 0 }));
      if (++s.overruns < TRIP_AFTER) return;
      s.pause = s.pause ? Math.min(s.pause * 2, MAX_PAUSE_MS) : FIRST_PAUSE_MS;
      s.until = this.now() + s.pause;
      s.overruns = TRIP_AFTER - 1; // the first call after the pause decides: one more overrun trips again
      this.log?.warn({ script: this.where, handler, pause_ms: s.pause }, `policy script ${handler} overran its deadline ${TRIP_AFTER} times in a row; suspended for ${s.pause / 1000} s, the rules decide`);
    } else if (end === 'decided' || end === 'fallthrough' || end === 'error') {
      const s = this.handlers.get(handler);
      if (!s) return;
      this.handlers.delete(handler);
      if (s.pause) this.log?.info({ script: this.where, handler }, `policy script ${handler} answers in time again`);
    }
  }
}
