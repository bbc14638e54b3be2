/* Time for the daemon's parts, injectable: the system clock with Node's timers, or a manual
 * clock whose time moves only when a test says, running every timer that falls due in order
 * (hours of protocol time in milliseconds: RSVP refreshes and time-outs, sweeps, stalls).
 * Timers of the system clock never keep the process alive (unref). */

import { QosError } from './errors.js';

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** milliseconds, monotonic (performance.now() for the system clock) */
  now(): number;
  /** calls fn once, ms from now */
  after(ms: number, fn: () => void): Timer;
  /** calls fn every ms from now on */
  every(ms: number, fn: () => void): Timer;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms).unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms).unref();
    return { cancel: () => clearInterval(t) };
  },
};

interface Pending { at: number; seq: number; fn: () => void; period: number | null; live: boolean }

/** A clock for tests: starts at `start`, moves by advance() or to(). */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly pending: Pending[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    return this.add(ms, fn, null);
  }

  every(ms: number, fn: () => void): Timer {
    if (!(ms > 0)) throw new QosError('QOS_ERR_INTERNAL', `a repeating timer needs a period over 0 ms, not ${ms}`);
    return this.add(ms, fn, ms);
  }

  /** Timers not cancelled yet. */
  get waiting(): number {
    return this.pending.filter((p) => p.live).length;
  }

  /** Moves time forward by ms with no timer run: a process stopped or stalled meanwhile.
   * The timers that fell due run late, at the next advance (advance(0): at once), each once,
   * and a repeating one then keeps its period from then on, as Node's do. */
  stall(ms: number): void {
    if (!(ms >= 0)) throw new QosError('QOS_ERR_INTERNAL', `time does not go back: ${ms}`);
    this.t += ms;
  }

  /** Moves time forward by ms, running each timer due on the way at its own time, in order
   * of time, then of setting. */
  advance(ms: number): void {
    this.to(this.t + ms);
  }

  to(end: number): void {
    if (end < this.t) throw new QosError('QOS_ERR_INTERNAL', `time does not go back: ${end} < ${this.t}`);
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.pending) if (p.live && p.at <= end && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      if (!next) break;
      this.t = Math.max(this.t, next.at); // late after a stall
      if (next.period === null) next.live = false;
      else { next.at = this.t + next.period; next.seq = this.seq++; }
      next.fn();
      for (let i = this.pending.length - 1; i >= 0; i--) if (!this.pending[i]!.live) this.pending.splice(i, 1);
    }
    this.t = end;
  }

  private add(ms: number, fn: () => void, period: number | null): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, period, live: true };
    this.pending.push(p);
    return { cancel: () => { p.live = false; } };
  }
}
