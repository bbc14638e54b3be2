/* Rule sets as bitsets (bit i = rule i), and per-dimension indexes that answer "which rules
 * does this value allow" with one precomputed set: a rule that does not constrain the
 * dimension is in every set. Deciding a call ANDs one set per dimension and takes the lowest
 * bit: first match wins without visiting the rules that cannot match. (Packet classifiers do
 * the same: e.g. the bit-vector scheme of Lakshman and Stiliadis, SIGCOMM 1998.) */

import type { Addr128, Cidr, PortRange } from './net.js';

export type RuleBits = Uint32Array;

export class Bits {
  readonly words: number;
  constructor(readonly size: number) {
    this.words = (size + 31) >>> 5;
  }
  empty(): RuleBits {
    return new Uint32Array(this.words);
  }
  of(pred: (i: number) => boolean): RuleBits {
    const b = this.empty();
    for (let i = 0; i < this.size; i++) if (pred(i)) b[i >>> 5]! |= 1 << (i & 31);
    return b;
  }
}

export function setBit(b: RuleBits, i: number): void {
  b[i >>> 5]! |= 1 << (i & 31);
}

export function clearBit(b: RuleBits, i: number): void {
  b[i >>> 5]! &= ~(1 << (i & 31));
}

export function hasBit(b: RuleBits, i: number): boolean {
  return (b[i >>> 5]! & (1 << (i & 31))) !== 0;
}

/** acc &= ~(known & ~passed): drops the rules known to fail. */
export function dropFailed(acc: RuleBits, known: RuleBits, passed: RuleBits): void {
  for (let w = 0; w < acc.length; w++) acc[w]! &= ~known[w]! | passed[w]!;
}

export function andInto(acc: RuleBits, b: RuleBits, offset = 0): void {
  for (let w = 0; w < acc.length; w++) acc[w]! &= b[offset + w]!;
}

/** Index of the lowest set bit, or -1. */
export function firstSet(b: RuleBits): number {
  for (let w = 0; w < b.length; w++) {
    const x = b[w]!;
    if (x !== 0) return (w << 5) + (31 - Math.clz32(x & -x));
  }
  return -1;
}

/** Upper bound, in 32-bit words, on one dimension's precomputed sets (64 MiB). */
const MAX_WORDS = 16 * 1024 * 1024;

/** Port ranges: the port space cut at every range boundary into elementary intervals, each
 * with the set of rules that allow it. */
export class PortIndex {
  private readonly starts: Int32Array;
  private readonly sets: Uint32Array | null;
  /** rules without a port constraint: the set when the call has no such endpoint */
  readonly unconstrained: RuleBits;

  constructor(private readonly bits: Bits, private readonly ranges: (PortRange[] | undefined)[]) {
    this.unconstrained = bits.of((i) => ranges[i] === undefined);
    const cuts = new Set<number>([0]);
    for (const rs of ranges) for (const r of rs ?? []) { cuts.add(r.lo); if (r.hi < 65535) cuts.add(r.hi + 1); }
    this.starts = Int32Array.from([...cuts].sort((a, b) => a - b));
    const n = this.starts.length;
    if (n * bits.words > MAX_WORDS) { this.sets = null; return; } // too big: computed per call
    const sets = new Uint32Array(n * bits.words);
    for (let k = 0; k < n; k++) sets.set(this.unconstrained, k * bits.words);
    ranges.forEach((rs, i) => {
      for (const r of rs ?? []) {
        for (let k = this.interval(r.lo); k < n && this.starts[k]! <= r.hi; k++) sets[k * bits.words + (i >>> 5)]! |= 1 << (i & 31);
      }
    });
    this.sets = sets;
  }

  /** Gives a structured clone of a PortIndex its classes back (PolicyEngine.revive). */
  static revive(x: PortIndex): void {
    Object.setPrototypeOf(x, PortIndex.prototype);
    Object.setPrototypeOf(x.bits, Bits.prototype);
  }

  private interval(port: number): number {
    let lo = 0, hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= port) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  /** acc &= rules allowing `port` (undefined: the call has no such endpoint). */
  restrict(acc: RuleBits, port: number | undefined): void {
    if (port === undefined) return andInto(acc, this.unconstrained);
    if (this.sets) return andInto(acc, this.sets, this.interval(port) * this.bits.words);
    for (let i = 0; i < this.ranges.length; i++) {
      const rs = this.ranges[i];
      if (rs && !rs.some((r) => port >= r.lo && port <= r.hi)) acc[i >>> 5]! &= ~(1 << (i & 31));
    }
  }
}

/** Networks: per prefix length, the rules by masked address. */
export class CidrIndex {
  private readonly byLength = new Map<number, Map<number | string, RuleBits>>();
  private readonly lengths: number[];
  readonly unconstrained: RuleBits;
  private readonly scratch: RuleBits;

  constructor(bits: Bits, cidrs: (Cidr[] | undefined)[]) {
    this.unconstrained = bits.of((i) => cidrs[i] === undefined);
    this.scratch = bits.empty();
    cidrs.forEach((cs, i) => {
      for (const c of cs ?? []) {
        let m = this.byLength.get(c.bits);
        if (!m) this.byLength.set(c.bits, (m = new Map()));
        const key = maskedKey(c.addr, c.bits);
        let b = m.get(key);
        if (!b) m.set(key, (b = bits.empty()));
        setBit(b, i);
      }
    });
    this.lengths = [...this.byLength.keys()].sort((a, b) => a - b);
  }

  /** acc &= rules allowing `addr` (undefined: the call has no such endpoint). */
  restrict(acc: RuleBits, addr: Addr128 | undefined): void {
    if (addr === undefined || this.lengths.length === 0) return andInto(acc, this.unconstrained);
    const allowed = this.scratch;
    allowed.set(this.unconstrained);
    for (const len of this.lengths) {
      const b = this.byLength.get(len)!.get(maskedKey(addr, len));
      if (b) for (let w = 0; w < allowed.length; w++) allowed[w]! |= b[w]!;
    }
    andInto(acc, allowed);
  }
}

/** The masked address as a map key: a number for IPv4 (v4-mapped, prefix of 96 bits or
 * more: the common case, no string built per call), text otherwise. */
function maskedKey(a: Addr128, bits: number): number | string {
  if (a[0] === 0 && a[1] === 0 && a[2] === 0xffff) {
    if (bits >= 96) return bits === 96 ? 0 : (a[3]! & ((0xffffffff << (128 - bits)) >>> 0)) >>> 0;
    // shorter than the v4-mapped prefix (an IPv6 rule's /32, say): the same text for every
    // IPv4 address, made once per length instead of once per call
    return (V4_SHORT_KEYS[bits] ??= textKey(V4_MAPPED_ZERO, bits));
  }
  return textKey(a, bits);
}

const V4_MAPPED_ZERO: Addr128 = Uint32Array.of(0, 0, 0xffff, 0);
const V4_SHORT_KEYS: string[] = [];

function textKey(a: Addr128, bits: number): string {
  let key = '';
  for (let i = 0, left = bits; i < 4; i++, left -= 32) {
    const mask = left >= 32 ? 0xffffffff : left <= 0 ? 0 : (0xffffffff << (32 - left)) >>> 0;
    key += ((a[i]! & mask) >>> 0).toString(36) + ':';
  }
  return key;
}
