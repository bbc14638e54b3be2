/* Off-line LBAP characterisation (seed 001, "Overview of the LBAP Characterization"): for a
 * packet trace d(t) and a set of rates r, the least bucket depth b(r) such that the traffic
 * conforms to the token bucket (r, b):
 *
 *   b(r) = max over packets i <= j of ( size(i..j) - r * (t_j - t_i) )
 *
 * computed as the seed's "negative bucket": each packet adds its size to a token debt that
 * drains at rate r and never goes below zero; b(r) is the largest debt reached. One pass over
 * the packets serves every rate at once (the debts of all rates are updated per packet), in
 * memory independent of the trace's length. Sizes are bytes of the IP packet (or 1 per packet
 * when counting packets); a packet smaller than m counts as m when m is given. b(r) is
 * non-increasing and convex in r, and never below the largest packet M. docs/characterize.md. */

import { QosError } from '../errors.js';

export interface CurvePoint { r_Bps: number; b_bytes: number }

/** b(r) for a fixed set of rates, fed packets in time order. */
export class BucketCurve {
  private readonly debt: Float64Array;
  private readonly most: Float64Array;
  private last = -Infinity;

  /** rates in bytes (or packets) per second; minUnit: m, the smallest size counted */
  constructor(readonly rates: Float64Array, readonly minUnit = 0) {
    for (const r of rates) if (!(r >= 0) || !Number.isFinite(r)) throw new QosError('QOS_ERR_USAGE', `rate ${r} is not a finite number >= 0`);
    this.debt = new Float64Array(rates.length);
    this.most = new Float64Array(rates.length);
  }

  /** One packet: its time in seconds and its size. A packet timed before the previous one (a
   * capture's clocks can step back a little) is taken as arriving with it. */
  add(t: number, size: number): void {
    const s = size < this.minUnit ? this.minUnit : size;
    let dt = this.last === -Infinity ? 0 : t - this.last;
    if (dt > 0 || this.last === -Infinity) this.last = t;
    if (!(dt > 0)) dt = 0;
    const rates = this.rates, debt = this.debt, most = this.most;
    for (let k = 0; k < rates.length; k++) {
      let d = debt[k]! - rates[k]! * dt;
      if (d < 0) d = 0;
      d += s;
      debt[k] = d;
      if (d > most[k]!) most[k] = d;
    }
  }

  /** Many packets at once (times in seconds, sizes), the same as add() for each: the loop the
   * benchmark measures. */
  addAll(t: Float64Array, size: Float64Array, n = t.length): void {
    for (let i = 0; i < n; i++) this.add(t[i]!, size[i]!);
  }

  curve(): CurvePoint[] {
    return Array.from(this.rates, (r, k) => ({ r_Bps: r, b_bytes: this.most[k]! }));
  }
}

/** The definition itself, by brute force over every pair of packets: the reference the tests
 * hold BucketCurve to. O(n^2) per rate. */
export function bucketByDefinition(t: number[], size: number[], r: number, minUnit = 0): number {
  let best = 0;
  for (let i = 0; i < t.length; i++) {
    let sum = 0;
    for (let j = i; j < t.length; j++) {
      sum += size[j]! < minUnit ? minUnit : size[j]!;
      const v = sum - r * (t[j]! - t[i]!);
      if (v > best) best = v;
    }
  }
  return best;
}

/** n rates spaced evenly in log between lo and hi (both included); one rate if they meet. */
export function rateGrid(lo: number, hi: number, n: number): Float64Array {
  if (!(lo > 0) || !(hi >= lo) || n < 1) throw new QosError('QOS_ERR_USAGE', `no grid of ${n} rates between ${lo} and ${hi}`);
  if (n === 1 || hi === lo) return Float64Array.of(hi);
  const out = new Float64Array(n);
  const a = Math.log(lo), step = (Math.log(hi) - a) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = Math.exp(a + step * i);
  out[0] = lo; out[n - 1] = hi;
  return out;
}

/** The knee of an (r, b) curve (rates increasing): the seed's point "where an r variation
 * produces a same order b variation", while elsewhere "a little error on r results in a huge
 * b variation (and vice-versa)". Between neighbouring points the elasticity
 * e = -Δln b / Δln r says how many percent b falls for one percent more r: e > 1 where the
 * curve is steep (approaching the mean rate from above), e < 1 where it is flat (b near M,
 * or rates below the mean, where b falls only linearly). The knee is the smallest rate from
 * which every further step has e <= 1: the end of the last steep stretch. A curve with no
 * steep stretch has its knee at its first point. */
export function knee(curve: CurvePoint[]): CurvePoint & { index: number } {
  const pts = curve.filter((p) => p.r_Bps > 0 && p.b_bytes > 0);
  if (!pts.length) throw new QosError('QOS_ERR_INTERNAL', 'no point of the curve has r > 0 and b > 0');
  let at = 0;
  for (let i = 0; i + 1 < pts.length; i++) {
    const a = pts[i]!, b = pts[i + 1]!;
    const e = -(Math.log(b.b_bytes) - Math.log(a.b_bytes)) / (Math.log(b.r_Bps) - Math.log(a.r_Bps));
    if (e > 1) at = i + 1;
  }
  return { ...pts[at]!, index: curve.indexOf(pts[at]!) };
}

/** What one pass over a flow's packets knows besides b(r): counts, sizes, times, and the
 * peak rate over a window (the most bytes in any window of that length ending at a packet,
 * divided by the window). Memory: the packets of one window. */
export class FlowStats {
  packets = 0;
  bytes = 0;
  M = 0;
  m = Infinity;
  first = Infinity;
  last = -Infinity;
  private peakBytes = 0;
  private readonly wt: number[] = [];
  private readonly ws: number[] = [];
  private head = 0;
  private inWindow = 0;

  constructor(readonly windowS = 0.01) {
    if (!(windowS > 0)) throw new QosError('QOS_ERR_USAGE', `peak window ${windowS} s is not above 0`);
  }

  add(t: number, size: number): void {
    this.packets++;
    this.bytes += size;
    if (size > this.M) this.M = size;
    if (size < this.m) this.m = size;
    if (t < this.first) this.first = t;
    if (t > this.last) this.last = t;
    this.wt.push(t); this.ws.push(size); this.inWindow += size;
    while (this.wt[this.head]! <= t - this.windowS) { this.inWindow -= this.ws[this.head]!; this.head++; }
    if (this.head > 4096 && this.head * 2 > this.wt.length) { this.wt.splice(0, this.head); this.ws.splice(0, this.head); this.head = 0; }
    if (this.inWindow > this.peakBytes) this.peakBytes = this.inWindow;
  }

  get durationS(): number { return this.packets > 1 ? this.last - this.first : 0; }
  /** bytes per second over the flow's life (0 for a single instant) */
  get meanRate(): number { return this.durationS > 0 ? this.bytes / this.durationS : 0; }
  get peakRate(): number { return this.peakBytes / this.windowS; }
  get meanSize(): number { return this.packets ? this.bytes / this.packets : 0; }
}
