/* The Integrated Services data RFC 2210 puts inside SENDER_TSPEC, FLOWSPEC and ADSPEC: a message
 * header (version 0, overall length in 32-bit words), per-service headers (service number, break
 * bit, length in words) and parameters (id, flags, length in words). The token bucket (parameter
 * 127) is shared: r, b, p as IEEE floats, m and M as 32-bit integers (RFC 2210 section 3.1). */

import { decodeError, type Reader, type Writer } from './wire.js';

export const SERVICE_GENERAL = 1;
export const SERVICE_GS = 2;
export const SERVICE_CL = 5;
export const PARAM_TOKEN_BUCKET = 127;
export const PARAM_GS_RSPEC = 130;

/** A token bucket TSpec (RFC 2210 section 3.1; RFC 2215). */
export interface TokenBucket {
  /** token rate, bytes/s */
  r: number;
  /** bucket depth, bytes */
  b: number;
  /** peak rate, bytes/s (Infinity: none) */
  p: number;
  /** minimum policed unit, bytes */
  m: number;
  /** maximum packet size, bytes */
  M: number;
}

/** Writes the message header: version 0, the overall length in words (not counting this word). */
export function writeVersion(w: Writer, words: number): void {
  w.check(words, 0xffff, 'overall length');
  w.word32(words); // version 0, reserved, the length
}

/** Reads the message header; the overall length must be what is left of the object. */
export function readVersion(r: Reader): void {
  const at = r.pos;
  const version = r.u8('version') >> 4;
  r.skip(1, 'reserved');
  const words = r.u16('overall length');
  if (version !== 0) decodeError(r.what, at, `message format version ${version} (RFC 2210: 0)`);
  if (words * 4 !== r.left) decodeError(r.what, at + 2, `overall length ${words} words, the object holds ${r.left / 4}`);
}

export function writeServiceHeader(w: Writer, service: number, breakBit: boolean, words: number): void {
  w.check(service, 0xff, 'service number'); w.check(words, 0xffff, 'service data length');
  w.word32(((service << 24) | (breakBit ? 0x800000 : 0) | words) >>> 0);
}

/** Reads a service header; its data must fit in what is left. */
export function readServiceHeader(r: Reader): { service: number; breakBit: boolean; words: number; at: number } {
  const at = r.pos;
  const service = r.u8('service number');
  const breakBit = (r.u8('break bit') & 0x80) !== 0;
  const words = r.u16('service data length');
  if (words * 4 > r.left) decodeError(r.what, at + 2, `service ${service} data of ${words} words runs past the object (${r.left} bytes left)`);
  return { service, breakBit, words, at };
}

/** Reads a service header that must be the given service with the given length. */
export function expectServiceHeader(r: Reader, service: number, words: number, name: string): void {
  const h = readServiceHeader(r);
  if (h.service !== service) decodeError(r.what, h.at, `service number ${h.service}, expected ${service} (${name})`);
  if (h.words !== words) decodeError(r.what, h.at + 2, `${name} data length ${h.words} words, expected ${words}`);
}

export function writeParamHeader(w: Writer, id: number, words: number): void {
  w.check(id, 0xff, 'parameter id'); w.check(words, 0xffff, 'parameter length');
  w.word32(((id << 24) | words) >>> 0); // flags 0
}

/** Reads a parameter header that must be the given parameter with the given length. */
export function expectParam(r: Reader, id: number, words: number): void {
  const at = r.pos;
  const got = r.u8('parameter id');
  r.u8('parameter flags');
  const len = r.u16('parameter length');
  if (got !== id) decodeError(r.what, at, `parameter ${got}, expected ${id}`);
  if (len !== words) decodeError(r.what, at + 2, `parameter ${id} length ${len} words, expected ${words}`);
}

/** Token bucket parameter 127: header and five words. */
export function writeTokenBucket(w: Writer, t: TokenBucket): void {
  writeParamHeader(w, PARAM_TOKEN_BUCKET, 5);
  w.f32(t.r, 'token rate r'); w.f32(t.b, 'bucket depth b'); w.f32(t.p, 'peak rate p');
  w.u32(t.m, 'minimum policed unit m'); w.u32(t.M, 'maximum packet size M');
}

export function readTokenBucket(r: Reader): TokenBucket {
  expectParam(r, PARAM_TOKEN_BUCKET, 5);
  return { r: r.f32('token rate r'), b: r.f32('bucket depth b'), p: r.f32('peak rate p'), m: r.u32('minimum policed unit m'), M: r.u32('maximum packet size M') };
}
