/* The bounds-checked reader and writer every RSVP object codec uses: each read is checked
 * against the end of the object it is in, and a failure names the object, the field and the
 * absolute byte offset; each written value is checked against its field's range. Addresses
 * are strings (dotted quad, RFC 5952 IPv6 text) so a decoded value compares equal to one typed. */

import { QosError } from '../errors.js';

/** Throws the decode error: the object, the absolute byte offset, what is wrong. */
export function decodeError(what: string, offset: number, message: string): never {
  throw new QosError('QOS_ERR_RSVP_DECODE', `RSVP ${what}, byte ${offset}: ${message}`);
}

/** Throws the encode error: the object and the field whose value cannot be written. */
export function invalid(what: string, message: string): never {
  throw new QosError('QOS_ERR_RSVP_INVALID', `RSVP ${what}: ${message}`);
}

// IEEE floats go through this one 4-byte view: an object's reader and writer make none of their own.
const F32 = new DataView(new ArrayBuffer(4));
// The writer's float bits: one float and one word over the same 4 bytes (native order, so the
// word is the float's bits as a number, written big-endian like any other).
const F32_BITS = new ArrayBuffer(4);
const F32_FLOAT = new Float32Array(F32_BITS);
const F32_WORD = new Uint32Array(F32_BITS);

const utf8Encoder = new TextEncoder();

/** Reads fields of one object, never past end (an absolute offset into buf). */
export class Reader {
  constructor(readonly buf: Uint8Array, public pos: number, readonly end: number, readonly what: string) {}
  get left(): number { return this.end - this.pos; }
  need(n: number, field: string): void {
    if (this.end - this.pos < n) decodeError(this.what, this.pos, `${field} needs ${n} bytes, ${Math.max(0, this.end - this.pos)} left`);
  }
  u8(field: string): number { this.need(1, field); return this.buf[this.pos++]!; }
  u16(field: string): number { this.need(2, field); const v = readU16(this.buf, this.pos); this.pos += 2; return v; }
  u32(field: string): number { this.need(4, field); const v = readU32(this.buf, this.pos); this.pos += 4; return v; }
  f32(field: string): number {
    this.need(4, field);
    F32.setUint32(0, readU32(this.buf, this.pos));
    const v = F32.getFloat32(0);
    if (Number.isNaN(v) || v < 0) decodeError(this.what, this.pos, `${field} is ${v} (RFC 2210 section 3.1: a non-negative IEEE float)`);
    this.pos += 4;
    return v;
  }
  bytes(n: number, field: string): Uint8Array { this.need(n, field); const b = this.buf.slice(this.pos, this.pos + n); this.pos += n; return b; }
  /** n bytes in place, not copied: for a value made from them at once (text), not one to keep. */
  view(n: number, field: string): Uint8Array { this.need(n, field); const b = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return b; }
  /** n bytes as lower-case hex, read in place. */
  hex(n: number, field: string): string {
    this.need(n, field);
    if (n === 0) return ''; // an empty option list: no Buffer to make
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n).toString('hex');
    this.pos += n;
    return s;
  }
  ipv4(field: string): string { this.need(4, field); const s = formatIPv4(this.buf, this.pos); this.pos += 4; return s; }
  ipv6(field: string): string { this.need(16, field); const s = formatIPv6(this.buf, this.pos); this.pos += 16; return s; }
  /** An address of the family an object's c-type names: 1 IPv4, 2 IPv6 (familyCType). */
  address(cType: number, field: string): string { return cType === 1 ? this.ipv4(field) : this.ipv6(field); }
  /** A field that must hold zero (RFC 2205: reserved, sent as zero): skipped, whatever it holds. */
  skip(n: number, field: string): void { this.need(n, field); this.pos += n; }
  /** Every byte of the object was read: a longer object than its contents is an error. */
  done(): void {
    if (this.pos !== this.end) decodeError(this.what, this.pos, `${this.end - this.pos} bytes left over after the last field (the length says more than the contents)`);
  }
}

const readU16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const readU32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/** Writes fields into a buffer allocated at the encoding length. */
export class Writer {
  constructor(readonly buf: Uint8Array, public pos: number, readonly what: string) {}
  /** v is an integer from 0 to max (a field of that range), or the encode error names field. */
  check(v: number, max: number, field: string): void {
    if (!Number.isInteger(v) || v < 0 || v > max) invalid(this.what, `${field} is ${v}, not an integer from 0 to ${max}`);
  }
  u8(v: number, field: string): void { this.check(v, 0xff, field); this.buf[this.pos++] = v; }
  u16(v: number, field: string): void { this.check(v, 0xffff, field); this.word16(v); }
  u32(v: number, field: string): void { this.check(v, 0xffffffff, field); this.word32(v); }
  /** A 16-bit field at an earlier offset (a length known once what it counts is written). */
  u16At(at: number, v: number, field: string): void {
    this.check(v, 0xffff, field);
    const pos = this.pos;
    this.pos = at; this.word16(v); this.pos = pos;
  }
  f32(v: number, field: string): void {
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0) invalid(this.what, `${field} is ${v}, not a non-negative number`);
    if (Math.fround(v) !== v) invalid(this.what, `${field} is ${v}, which a 32-bit IEEE float cannot hold exactly (nearest ${Math.fround(v)})`);
    F32_FLOAT[0] = v;
    this.word32(F32_WORD[0]!);
  }
  bytes(b: Uint8Array): void { this.buf.set(b, this.pos); this.pos += b.length; }
  /** Text as UTF-8 of n bytes (its Buffer.byteLength): ASCII by its char codes, any other through the encoder. */
  utf8(s: string, n: number): void {
    this.room(n);
    const b = this.buf, p = this.pos;
    if (n === s.length) { for (let i = 0; i < n; i++) b[p + i] = s.charCodeAt(i); } // every char one byte: ASCII
    else if (utf8Encoder.encodeInto(s, b.subarray(p, p + n)).read !== s.length) throw new Error(`internal: ${this.what}: text is not ${n} bytes of UTF-8`);
    this.pos += n;
  }
  zero(n: number): void { this.pos += n; }
  ipv4(a: string, field: string): void {
    const word = ipv4Word(a);
    if (word < 0) invalid(this.what, `${field} "${a}" is not an IPv4 address`);
    this.word32(word);
  }
  ipv6(a: string, field: string): void { this.bytes(parseIPv6(a, this.what, field)); }
  /** An address of either family, by its text. */
  address(a: string, field: string): void { if (isIPv6Text(a)) this.ipv6(a, field); else this.ipv4(a, field); }
  /** n more bytes fit in the buffer (allocated at the encoding length: anything else is this codec's bug). */
  private room(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error(`internal: ${this.what} writes past the end of its ${this.buf.length}-byte buffer`);
  }
  /** 16 bits of v, unchecked: for values checked already or made of checked fields. */
  word16(v: number): void { this.room(2); const b = this.buf, p = this.pos; b[p] = v >>> 8; b[p + 1] = v; this.pos = p + 2; }
  /** 32 bits of v, unchecked: for values checked already or made of checked fields (a header of several). */
  word32(v: number): void { this.room(4); const b = this.buf, p = this.pos; b[p] = v >>> 24; b[p + 1] = v >>> 16; b[p + 2] = v >>> 8; b[p + 3] = v; this.pos = p + 4; }
}

export function isIPv6Text(a: string): boolean { return typeof a === 'string' && a.includes(':'); }
/** The c-type of an object whose format follows its address's family: 1 IPv4, 2 IPv6. */
export function familyCType(a: string): 1 | 2 { return isIPv6Text(a) ? 2 : 1; }
/** Bytes of an address of a's family. */
export function addressLength(a: string): number { return isIPv6Text(a) ? 16 : 4; }

/** Dotted-quad text of the 4 bytes at at. */
export function formatIPv4(b: Uint8Array, at = 0): string { return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`; }

/** RFC 5952 text: lower case, the longest run of two or more zero groups (the first of equals) as "::". */
export function formatIPv6(b: Uint8Array, at = 0): string {
  const g = Array.from({ length: 8 }, (_, i) => readU16(b, at + 2 * i));
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** The 32 bits of a dotted-quad address (four decimals of 1 to 3 digits, each at most 255), or -1 for anything else. */
export function ipv4Word(a: string): number {
  if (typeof a !== 'string') return -1;
  let word = 0, part = 0, digits = 0, dots = 0;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (++digits > 3) return -1;
      part = part * 10 + (c - 0x30);
    } else if (c === 0x2e && digits > 0 && dots < 3 && part <= 255) {
      word = word * 256 + part; part = 0; digits = 0; dots++;
    } else return -1;
  }
  return dots === 3 && digits > 0 && part <= 255 ? word * 256 + part : -1;
}

export function parseIPv4(a: string, what: string, field: string): Uint8Array {
  const word = ipv4Word(a);
  if (word < 0) invalid(what, `${field} "${a}" is not an IPv4 address`);
  return Uint8Array.of(word >>> 24, (word >>> 16) & 0xff, (word >>> 8) & 0xff, word & 0xff);
}

export function parseIPv6(a: string, what: string, field: string): Uint8Array {
  const bad = (): never => invalid(what, `${field} "${a}" is not an IPv6 address`);
  if (typeof a !== 'string') bad();
  let text = a;
  const tail: number[] = [];
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) { const q = parseIPv4(v4[2]!, what, field); tail.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!); text = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1); }
  const halves = text.split('::');
  if (halves.length > 2) bad();
  const group = (s: string) => (s === '' ? [] : s.split(':').map((h) => (/^[0-9a-fA-F]{1,4}$/.test(h) ? parseInt(h, 16) : bad())));
  const head = group(halves[0]!);
  const rest = halves.length === 2 ? [...group(halves[1]!), ...tail] : [];
  const all = halves.length === 2 ? [...head, ...Array<number>(8 - head.length - rest.length).fill(0), ...rest] : [...head, ...tail];
  if (all.length !== 8 || (halves.length === 2 && head.length + rest.length > 7)) bad();
  const out = new Uint8Array(16);
  all.forEach((x, i) => { out[2 * i] = x >> 8; out[2 * i + 1] = x & 0xff; });
  return out;
}
