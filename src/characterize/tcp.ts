/* TCP under a reservation (seed 001, "QoS for TCP connections"): the receiver paces a TCP
 * sender at the reserved rate r through its advertised window, and must declare the burst
 * such a sender makes.
 *
 * Window: the sender sends W = min(W_C, W_R) bytes per round trip, so a receive window
 * W_R in [RTT r, RTT MPC] keeps it at r once the bottleneck is r; the seed takes
 * W_R = 2 RTT r (the burst grows linearly with W_R).
 *
 * Burst (the seed's figure 13 and its formula are missing; derived here): in the stationary
 * state the sender emits W_R bytes at its access rate r_S (> r), which takes W_R / r_S
 * seconds, once per period W_R / r (its average rate is r). During the emission tokens
 * accrue at r, so the bucket's debt at its end is W_R - r W_R / r_S; the idle rest of the
 * period, W_R / r - W_R / r_S, drains it (r times that is at least the debt). So
 *
 *   b = W_R (1 - r / r_S),  and with W_R = 2 RTT r:  b = 2 RTT r (1 - r / r_S).
 *
 * Sent as packets of size s, the last one arrives (W_R - s) / r_S after the first: one more
 * r s / r_S of debt. src/characterize/tcp.test.ts holds the formula to a simulation. */

import { QosError } from '../errors.js';

/** The receive window, bytes, that paces a TCP sender at r bytes/s over a round trip of rtt s. */
export function receiverWindow(rttS: number, r: number): number {
  if (!(rttS > 0) || !(r > 0)) throw new QosError('QOS_ERR_USAGE', `the round trip (${rttS} s) and the rate (${r} B/s) must be above 0`);
  return 2 * rttS * r;
}

/** The bucket, bytes, a TCP sender sending wR bytes per period at access rate rS needs at rate r. */
export function tcpBurst(wR: number, r: number, rS: number): number {
  if (!(wR > 0) || !(r > 0) || !(rS > r)) throw new QosError('QOS_ERR_USAGE', `a TCP burst needs W_R > 0 and r_S > r > 0 (W_R ${wR}, r ${r}, r_S ${rS})`);
  return wR * (1 - r / rS);
}
