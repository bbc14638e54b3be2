/* On-line LBAP characterisation (seed 001, "On-line LBAP characterization", figure 12): a
 * TSpec estimate of a flow while it runs, for re-advertising (an RSVP PATH refresh).
 *
 * - A negative bucket drains at the current average rate (since the start, over a moving
 *   window, or a rate the user gives) and each packet adds its size; the debt's peak over
 *   each busy period (from an empty bucket until it empties again) is a burst.
 * - The bursts are kept as a short list of levels, largest first, each smaller than the one
 *   before by at least the gap (10 %): a new burst removes the levels it equals or exceeds and
 *   joins the end; one within the gap of the last level renews that level instead.
 * - Burst ageing: a level is forgotten `ageS` after it was recorded (minutes), so the estimate
 *   falls back to the next largest burst still remembered when the traffic calms down.
 * The estimate is b = the largest remembered burst (or the current busy period's, if larger),
 * never below M; r = the current rate; p the peak over a window. Constant memory and work per
 * packet. Like the seed's, it does not promise that b covers every burst at that rate, nor
 * bound by how much it may exceed it. docs/characterize.md. */

import { QosError } from '../errors.js';

export interface OnlineOptions {
  /** the token rate, bytes/s, when known (a video stream's); default: the measured average */
  rate?: number;
  /** average over this moving window (seconds); default: since the first packet */
  windowS?: number;
  /** least relative difference between kept levels */
  gap?: number;
  /** how long a burst is remembered, seconds */
  ageS?: number;
  maxLevels?: number;
  /** window of the peak rate p, seconds */
  peakWindowS?: number;
}

export interface Estimate { r: number; b: number; p: number; m: number; M: number; packets: number }

/** Bytes in a moving window, kept in slots: constant memory however many packets. */
class SlotWindow {
  private readonly slots: Float64Array;
  private readonly slotS: number;
  private head = -1; // index of the slot of the last packet, as an absolute slot number
  private sum = 0;
  constructor(readonly windowS: number, n = 64) {
    this.slots = new Float64Array(n);
    this.slotS = windowS / n;
  }
  add(t: number, size: number): void {
    const abs = Math.floor(t / this.slotS);
    const n = this.slots.length;
    if (this.head < 0) this.head = abs;
    if (abs > this.head) {
      for (let s = Math.max(this.head + 1, abs - n + 1); s <= abs; s++) { this.sum -= this.slots[s % n]!; this.slots[s % n] = 0; }
      this.head = abs;
    }
    if (abs > this.head - n) { this.slots[abs % n] = this.slots[abs % n]! + size; this.sum += size; }
  }
  /** bytes in the window ending at the last packet */
  get bytes(): number { return this.sum; }
}

export class OnlineLbap {
  private readonly o: Required<Omit<OnlineOptions, 'rate' | 'windowS'>> & Pick<OnlineOptions, 'rate' | 'windowS'>;
  private first = NaN;
  private last = NaN;
  private bytes = 0;
  packets = 0;
  private M = 0;
  private m = Infinity;
  private debt = 0;
  /** the current busy period's peak and when it was reached */
  private peak = 0;
  private peakT = 0;
  /** remembered bursts: largest first, recorded in time order */
  readonly levels: { b: number; t: number }[] = [];
  private readonly avg?: SlotWindow;
  private readonly peakWin: SlotWindow;
  private peakBytes = 0;

  constructor(o: OnlineOptions = {}) {
    this.o = { gap: 0.1, ageS: 180, maxLevels: 16, peakWindowS: 0.01, ...o };
    if (o.rate !== undefined && !(o.rate > 0)) throw new QosError('QOS_ERR_USAGE', `the on-line bucket's rate ${o.rate} is not above 0`);
    if (o.windowS !== undefined) this.avg = new SlotWindow(o.windowS);
    this.peakWin = new SlotWindow(this.o.peakWindowS, 8);
  }

  /** the token rate now, bytes/s */
  rate(): number {
    if (this.o.rate !== undefined) return this.o.rate;
    if (this.avg) { const span = Math.min(this.avg.windowS, this.last - this.first); return span > 0 ? this.avg.bytes / span : 0; }
    const span = this.last - this.first;
    return span > 0 ? this.bytes / span : 0;
  }

  add(t: number, size: number): void {
    if (Number.isNaN(this.first)) { this.first = t; this.last = t; }
    const dt = t > this.last ? t - this.last : 0;
    if (t > this.last) this.last = t;
    this.packets++;
    this.bytes += size;
    if (size > this.M) this.M = size;
    if (size < this.m) this.m = size;
    this.avg?.add(t, size);
    this.peakWin.add(t, size);
    if (this.peakWin.bytes > this.peakBytes) this.peakBytes = this.peakWin.bytes;
    const drained = this.debt - this.rate() * dt;
    if (drained <= 0 && this.peak > 0) { this.record(this.peak, this.peakT); this.peak = 0; }
    this.debt = (drained > 0 ? drained : 0) + size;
    if (this.debt > this.peak) { this.peak = this.debt; this.peakT = t; }
  }

  /** A finished burst joins the levels (see the top). */
  private record(b: number, t: number): void {
    const L = this.levels;
    while (L.length && L[L.length - 1]!.b <= b) L.pop();
    const last = L[L.length - 1];
    if (last && b * (1 + this.o.gap) > last.b) last.t = t; // within the gap: renew the level
    else L.push({ b, t });
    if (L.length > this.o.maxLevels) L.pop();
  }

  /** The estimate at time `now` (default: the last packet's): levels older than the ageing
   * time are forgotten first. */
  estimate(now = this.last): Estimate {
    while (this.levels.length && now - this.levels[0]!.t > this.o.ageS) this.levels.shift();
    const b = Math.max(this.M, this.levels[0]?.b ?? 0, this.peak);
    const r = this.rate();
    return { r, b, p: Math.max(r, this.peakBytes / this.o.peakWindowS), m: Number.isFinite(this.m) ? this.m : 0, M: this.M, packets: this.packets };
  }
}

/** When to advertise a new estimate (seed 001): a bigger flow (more rate, bucket, peak or
 * largest packet, beyond a tolerance) at once, so that enforcement points do not drop it; a
 * smaller one only once it has stayed smaller for the hold time, to spare signalling. */
export class Readvertiser {
  private advertised: Estimate | null = null;
  private smallerSince: number | null = null;

  constructor(readonly holdS = 120, readonly tolerance = 0.05) {}

  /** Whether to advertise `e` at time `now`; if so it becomes the advertised one. */
  offer(now: number, e: Estimate): boolean {
    const a = this.advertised;
    const keys = ['r', 'b', 'p', 'M'] as const;
    if (!a || keys.some((k) => e[k] > a[k] * (1 + this.tolerance))) return this.take(e);
    if (keys.some((k) => e[k] < a[k] * (1 - this.tolerance))) {
      if (this.smallerSince === null) this.smallerSince = now;
      if (now - this.smallerSince >= this.holdS) return this.take(e);
      return false;
    }
    this.smallerSince = null;
    return false;
  }

  get current(): Estimate | null { return this.advertised; }

  private take(e: Estimate): boolean {
    this.advertised = e;
    this.smallerSince = null;
    return true;
  }
}
