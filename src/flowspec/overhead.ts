/* The token rate a FLOWSPEC really needs on the wire: seed 002 ("the MinimumPolicedSize field is
 * used ... to compensate for the layer-3 protocol overhead"): each packet, counted as at least
 * MinimumPolicedSize bytes of data, also carries its IP and transport headers. */

import type { FlowSpec } from './model.js';

/** How the flow's packets are framed below the application's data. */
export interface Framing {
  proto: 'udp' | 'tcp';
  ipv6: boolean;
}

/** Bytes of headers per packet: UDP 28 and TCP 40 over IPv4 (seed 002: a 20-byte IP header and
 * UDP's 8 or TCP's 20, without options); IPv6's fixed header is 40 bytes, 20 more. */
export function layer3Overhead(f: Framing): number {
  return (f.proto === 'udp' ? 28 : 40) + (f.ipv6 ? 20 : 0);
}

/** The actual token rate, bytes/s: (1 + overhead / MinimumPolicedSize) × TokenRate (seed 002),
 * computed exactly as TokenRate × (MinimumPolicedSize + overhead) / MinimumPolicedSize and
 * rounded up to a whole byte per second, so that the rate reserved is never below the formula's.
 * Null when TokenRate or MinimumPolicedSize is not specified: without a smallest packet the
 * headers' share has no bound. May exceed what a FLOWSPEC field holds. */
export function actualTokenRate(spec: Pick<FlowSpec, 'TokenRate' | 'MinimumPolicedSize'>, f: Framing): number | null {
  const { TokenRate: r, MinimumPolicedSize: m } = spec;
  if (r === null || m === null || m === 0) return null;
  // the product reaches 2^32 × 2^32: past what a double holds exactly
  const num = BigInt(r) * BigInt(m + layer3Overhead(f));
  const den = BigInt(m);
  return Number((num + den - 1n) / den);
}
