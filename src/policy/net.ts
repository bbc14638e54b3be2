/* Address and port matching for policy rules. Every address is held as 128 bits (four
 * 32-bit words); IPv4 is mapped into ::ffff:0:0/96 so that an IPv4 CIDR also matches a
 * dual-stack socket talking to a v4-mapped peer. */

import { isIPv4, isIPv6 } from 'node:net';

export type Addr128 = Uint32Array; // length 4

/** A dotted quad as a 32-bit number, or -1; same syntax as node:net isIPv4 (no leading zeros). */
function v4value(s: string): number {
  let v = 0, octet = 0, digits = 0, dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      v = v * 256 + octet;
      octet = 0; digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else return -1;
  }
  return dots === 3 && digits > 0 ? v * 256 + octet : -1;
}

function v4words(v: number): Addr128 {
  const w = new Uint32Array(4);
  w[2] = 0xffff;
  w[3] = v;
  return w;
}

/** parseAddr, with an IPv4 address written into `into` (returned) rather than a new array: for
 * a caller that only reads the result before its next call (an IPv6 address still gets its
 * own array). */
export function parseAddrInto(s: string, into: Addr128): Addr128 | undefined {
  const v4 = v4value(s);
  if (v4 < 0) return parseAddr(s);
  into[0] = 0; into[1] = 0; into[2] = 0xffff; into[3] = v4;
  return into;
}

/** Parses an IPv4 or IPv6 address (v4-mapped form for IPv4); undefined if invalid. */
export function parseAddr(s: string): Addr128 | undefined {
  const v4 = v4value(s);
  if (v4 >= 0) return v4words(v4);
  const pct = s.indexOf('%');
  const a = pct >= 0 ? s.slice(0, pct) : s;
  if (!isIPv6(a)) return undefined;
  let head = a, tail = '';
  const dbl = a.indexOf('::');
  if (dbl >= 0) { head = a.slice(0, dbl); tail = a.slice(dbl + 2); }
  const toGroups = (x: string): number[] => {
    if (!x) return [];
    const out: number[] = [];
    for (const g of x.split(':')) {
      if (g.includes('.')) { const w = v4value(g); out.push(w >>> 16, w & 0xffff); }
      else out.push(parseInt(g, 16));
    }
    return out;
  };
  const h = toGroups(head), t = toGroups(tail);
  const groups = dbl >= 0 ? [...h, ...new Array(8 - h.length - t.length).fill(0), ...t] : h;
  const w = new Uint32Array(4);
  for (let i = 0; i < 4; i++) w[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return w;
}

export interface Cidr { addr: Addr128; bits: number; text: string }

/** Parses "a.b.c.d/n", "v6/n" or a bare address; undefined if invalid. */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  const host = slash >= 0 ? s.slice(0, slash) : s;
  const addr = parseAddr(host);
  if (!addr) return undefined;
  const v4 = isIPv4(host);
  const max = v4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b) || Number(b) > max) return undefined;
    bits = Number(b);
  }
  return { addr, bits: v4 ? bits + 96 : bits, text: s };
}

export function cidrContains(c: Cidr, a: Addr128): boolean {
  let bits = c.bits;
  for (let i = 0; i < 4 && bits > 0; i++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((c.addr[i]! ^ a[i]!) & mask) >>> 0 !== 0) return false;
  }
  return true;
}

/** An IPv4-mapped or IPv4 address is reported as family inet for matching. */
export function isV4Mapped(a: Addr128): boolean {
  return a[0] === 0 && a[1] === 0 && a[2] === 0xffff;
}

export interface PortRange { lo: number; hi: number }

/** Parses 443, "8000-8080" or "443"; undefined if invalid. */
export function parsePortSpec(v: unknown): PortRange | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 65535 ? { lo: v, hi: v } : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v.trim());
  if (!m) return undefined;
  const lo = Number(m[1]), hi = m[2] === undefined ? lo : Number(m[2]);
  return lo <= hi && hi <= 65535 ? { lo, hi } : undefined;
}
