/* The RSVP manager's "support mode" (seed 001, "Semi-automatic specification of the
 * reservation"): what a user who knows only "bandwidth" and "delay" should reserve. Pure math.
 *
 * Guaranteed Service (RFC 2212 section 5): a flow shaped by a token bucket (b, r), peak rate
 * p and largest packet M, served at rate R >= r on a path whose schedulers deviate from the
 * fluid model by Ctot bytes and Dtot microseconds (the ADSPEC's error terms), waits at most
 *
 *   Q = (b - M)/R * (p - R)/(p - r) + (M + Ctot)/R + Dtot    when p > R >= r
 *   Q = (M + Ctot)/R + Dtot                                  when R >= p
 *
 * in the queues. The seed lets the user set r (the "bandwidth") and W (the "delay") and
 * solves Q = W for R: guaranteedRate. Also the ADSPEC a sending host originates
 * (initialAdspec, RFC 2210 section 3.3) and the TSpec of a TCP flow paced by its receiver's
 * window (tcpReservation, seed 001 "QoS for TCP connections", characterize/tcp.ts). */

import { receiverWindow, tcpBurst } from '../characterize/tcp.js';
import { QosError } from '../errors.js';
import type { Adspec } from './adspec.js';

/** The TSpec and the path's error terms the delay bound depends on. Rates bytes/s (p may be
 * Infinity: no peak rate), sizes bytes, ctot bytes, dtot microseconds (as the ADSPEC carries
 * them: RFC 2212 section 6). */
export interface GsPath { r: number; b: number; p: number; M: number; ctot: number; dtot: number }

/** The largest 32-bit float: the ADSPEC's "no limit known" path bandwidth (RFC 2210 3.3). */
export const MAX_FLOAT32 = 3.4028234663852886e38;

const usage = (m: string) => new QosError('QOS_ERR_USAGE', m);

/** Refuses a TSpec or path the bound is not defined for, naming the value. */
function checkPath(a: GsPath): void {
  const bad: string[] = [];
  if (!(Number.isFinite(a.r) && a.r > 0)) bad.push(`r (${a.r}) must be a rate above 0`);
  if (!(a.p >= a.r)) bad.push(`p (${a.p}) must be at least r (${a.r}) (RFC 2212 section 5)`);
  if (!(Number.isFinite(a.M) && a.M > 0)) bad.push(`M (${a.M}) must be a size above 0`);
  if (!(Number.isFinite(a.b) && a.b >= a.M)) bad.push(`b (${a.b}) must be at least M (${a.M}): a packet larger than the bucket never conforms`);
  if (!(Number.isFinite(a.ctot) && a.ctot >= 0)) bad.push(`Ctot (${a.ctot}) must be 0 or more bytes`);
  if (!(Number.isFinite(a.dtot) && a.dtot >= 0)) bad.push(`Dtot (${a.dtot}) must be 0 or more microseconds`);
  if (bad.length) throw usage(`Guaranteed Service delay bound: ${bad.join('; ')}`);
}

/** RFC 2212's end-to-end queueing delay bound, seconds, of a flow served at rate R (>= r). */
export function delayBound(a: GsPath & { R: number }): number {
  checkPath(a);
  if (!(a.R >= a.r && Number.isFinite(a.R))) throw usage(`Guaranteed Service delay bound: R (${a.R}) must be a finite rate at least r (${a.r})`);
  const fixed = (a.M + a.ctot) / a.R + a.dtot / 1e6;
  if (a.R >= a.p) return fixed;
  const share = a.p === Infinity ? 1 : (a.p - a.R) / (a.p - a.r); // (p - R)/(p - r) tends to 1 as p grows
  return ((a.b - a.M) / a.R) * share + fixed;
}

/** The smallest 32-bit float not below x: the FLOWSPEC carries R as one (RFC 2210 section
 * 3.2), and a rate rounded down would miss the delay asked for. */
export function float32Up(x: number): number {
  const f = Math.fround(x);
  if (f >= x) return f;
  const u = new Uint32Array(new Float32Array([f]).buffer);
  u[0]! += 1; // a positive float's next one up is the next bit pattern
  return new Float32Array(u.buffer)[0]!;
}

/** R, bytes/s, for a queueing delay of at most W seconds (the seed's "delay"), given the
 * receiver's r (its "bandwidth"), the TSpec and the ADSPEC's Ctot and Dtot: Q = W solved for R
 * in closed form, in the region of the bound the solution falls in, never below r, rounded up
 * to a 32-bit float. Q is continuous and falls as R grows, and at R = p both forms agree, so
 * W >= Q(p) puts R in [r, p] and W < Q(p) above p. */
export function guaranteedRate(a: GsPath & { W: number }): number {
  checkPath(a);
  if (!(Number.isFinite(a.W) && a.W > 0)) throw usage(`Guaranteed Service: the delay W (${a.W} s) must be a time above 0`);
  const w = a.W - a.dtot / 1e6; // what is left for the rate-dependent terms
  if (w <= 0) throw usage(`Guaranteed Service: a delay of ${a.W * 1e3} ms is not above the ${a.dtot / 1e3} ms the path's rate-independent error term Dtot adds whatever the rate: ask for more than ${a.dtot / 1e3} ms`);
  let R: number;
  if (a.p === Infinity) R = (a.b + a.ctot) / w; // the limit of the first form as p grows
  else if (a.p > a.r && a.W >= delayBound({ ...a, R: a.p })) {
    // W R = (b - M)(p - R)/(p - r) + M + Ctot, linear in R
    const k = (a.b - a.M) / (a.p - a.r);
    R = (k * a.p + a.M + a.ctot) / (w + k);
  } else R = (a.M + a.ctot) / w;
  return float32Up(Math.max(R, a.r));
}

/** The ADSPEC a sending host originates (RFC 2210 section 3.3, composed by each router on the
 * way, engine/path.ts): no IS hop yet, its link's rate as the path bandwidth (the largest
 * float when unknown), no latency, its MTU; a Guaranteed fragment with every error term 0
 * (gs, default true) and a Controlled Load fragment (cl, default true), neither broken. */
export function initialAdspec(o: { mtu: number; linkRate?: number; gs?: boolean; cl?: boolean }): Adspec {
  if (!(Number.isInteger(o.mtu) && o.mtu > 0 && o.mtu <= 0xffffffff)) throw usage(`ADSPEC: the MTU (${o.mtu}) must be a whole number of bytes above 0`);
  if (o.linkRate !== undefined && !(Number.isFinite(o.linkRate) && o.linkRate > 0)) throw usage(`ADSPEC: the link rate (${o.linkRate}) must be a rate above 0`);
  return {
    kind: 'ADSPEC',
    // the nearest 32-bit float, as a router composes it (the encoder takes no other)
    general: { breakBit: false, hopCount: 0, pathBw: o.linkRate === undefined ? MAX_FLOAT32 : Math.min(Math.fround(o.linkRate), MAX_FLOAT32), minLatency: 0, mtu: o.mtu },
    ...(o.gs !== false ? { gs: { breakBit: false, terms: { ctot: 0, dtot: 0, csum: 0, dsum: 0 } } } : {}),
    ...(o.cl !== false ? { cl: { breakBit: false } } : {}),
  };
}

/** A TCP flow's reservation (seed 001): the receive window, bytes (rounded up), that paces
 * its sender at r over a round trip of rttS seconds, W_R = 2 RTT r, and the TSpec it makes:
 * b = W_R (1 - r / r_S), never below M, rounded up to the 32-bit float the TSpec carries,
 * sent at the sender's access rate r_S (its peak p); m is the smallest segment policed, 64
 * bytes unless given (qos rsvp send's default). */
export function tcpReservation(o: { rttS: number; r: number; rS: number; M: number; m?: number }): { window: number; tspec: { r: number; b: number; p: number; m: number; M: number } } {
  const bad: string[] = [];
  if (!(Number.isFinite(o.rttS) && o.rttS > 0)) bad.push(`the round trip (${o.rttS} s) must be above 0`);
  if (!(Number.isFinite(o.r) && o.r > 0)) bad.push(`r (${o.r}) must be a rate above 0`);
  if (!(Number.isFinite(o.rS) && o.rS > o.r)) bad.push(`the sender's access rate r_S (${o.rS}) must be above r (${o.r}): at r_S <= r the window never bursts`);
  if (!(Number.isInteger(o.M) && o.M > 0)) bad.push(`M (${o.M}) must be a whole number of bytes above 0`);
  const m = o.m ?? 64;
  if (!(Number.isInteger(m) && m > 0 && m <= o.M)) bad.push(`m (${m}) must be a whole number of bytes from 1 to M`);
  if (bad.length) throw usage(`TCP reservation: ${bad.join('; ')}`);
  const wR = receiverWindow(o.rttS, o.r);
  return { window: Math.ceil(wR), tspec: { r: o.r, b: float32Up(Math.max(tcpBurst(wR, o.r, o.rS), o.M)), p: o.rS, m, M: o.M } };
}
