/* The RSVP object header (RFC 2205 section 3.1.2: length, class-num, c-type) and the codec
 * every object module builds from its body: encode writes the header with the body, decode
 * checks the header's length against the object's contents and the bytes there. */

import { QosError } from '../errors.js';
import type { Codec } from '../protocol/roundtrip.js';
import { decodeError, invalid, Reader, Writer } from './wire.js';

export const OBJECT_HEADER = 4;

/** Class numbers (RFC 2205 appendix A; INTEGRITY RFC 2747; POLICY_DATA RFC 2750). */
export const CLASS = {
  NULL: 0, SESSION: 1, RSVP_HOP: 3, INTEGRITY: 4, TIME_VALUES: 5, ERROR_SPEC: 6, SCOPE: 7, STYLE: 8,
  FLOWSPEC: 9, FILTER_SPEC: 10, SENDER_TEMPLATE: 11, SENDER_TSPEC: 12, ADSPEC: 13, POLICY_DATA: 14, RESV_CONFIRM: 15,
} as const;

const CLASS_NAMES = new Map<number, string>(Object.entries(CLASS).map(([k, v]) => [v, k]));

/** The object's name for messages: its class name, or "object of class N". */
export function className(classNum: number): string {
  return CLASS_NAMES.get(classNum) ?? `object of class ${classNum}`;
}

/** One object's header as read. */
export interface ObjectHeader { length: number; classNum: number; cType: number }

/** Reads the header at offset and checks its length against what is there (end is absolute). */
export function readObjectHeader(buf: Uint8Array, offset: number, end: number): ObjectHeader {
  if (end - offset < OBJECT_HEADER) decodeError('object header', offset, `needs 4 bytes, ${Math.max(0, end - offset)} left`);
  const length = (buf[offset]! << 8) | buf[offset + 1]!;
  const classNum = buf[offset + 2]!, cType = buf[offset + 3]!;
  const what = className(classNum);
  if (length < OBJECT_HEADER || length % 4) decodeError(what, offset, `object length ${length} (RFC 2205 section 3.1.2: a multiple of 4, at least 4)`);
  if (length > end - offset) decodeError(what, offset, `object length ${length} runs past the end (${end - offset} bytes left)`);
  return { length, classNum, cType };
}

/** What an object module gives: its body's c-type, length, writer and reader. */
export interface ObjectDef<T> {
  name: string;
  classNum: number;
  cType(v: T): number;
  bodyLength(v: T): number;
  write(v: T, w: Writer): void;
  /** Reads the body (r spans exactly the body); an unknown c-type is an error. */
  read(r: Reader, cType: number): T;
}

export interface ObjectCodec<T> extends Codec<T, Uint8Array> {
  name: string;
  classNum: number;
  encode(v: T): Uint8Array;
  decode(bytes: Uint8Array, offset?: number): T;
  encodingLength(v: T): number;
  /** Writes the object at offset into buf; returns the bytes written. length, when given, is
   * what encodingLength(v) gave (a message's encoder has it already); the bytes written must match it. */
  write(v: T, buf: Uint8Array, offset: number, length?: number): number;
  /** Reads the object at offset, never past end; returns it with the bytes it took. */
  read(buf: Uint8Array, offset: number, end: number): { value: T; length: number };
}

/** The codec of one object class from its body definition. */
export function objectCodec<T>(def: ObjectDef<T>): ObjectCodec<T> {
  const encodingLength = (v: T): number => {
    const n = OBJECT_HEADER + def.bodyLength(v);
    if (n % 4) invalid(def.name, `body of ${n - OBJECT_HEADER} bytes is not a multiple of 4`);
    if (n > 0xffff) invalid(def.name, `object of ${n} bytes is longer than the 16-bit length field allows`);
    return n;
  };
  const write = (v: T, buf: Uint8Array, offset: number, length?: number): number => {
    const n = length ?? encodingLength(v);
    const w = new Writer(buf, offset, def.name);
    const cType = def.cType(v);
    w.check(n, 0xffff, 'length'); w.check(def.classNum, 0xff, 'class-num'); w.check(cType, 0xff, 'c-type');
    w.word32(((n << 16) | (def.classNum << 8) | cType) >>> 0);
    def.write(v, w);
    if (w.pos !== offset + n) throw new Error(`internal: ${def.name} wrote ${w.pos - offset} bytes, its length is ${n}`);
    return n;
  };
  const read = (buf: Uint8Array, offset: number, end: number): { value: T; length: number } => {
    const h = readObjectHeader(buf, offset, end);
    if (h.classNum !== def.classNum) decodeError(def.name, offset + 2, `class-num ${h.classNum}, not ${def.classNum}`);
    const r = new Reader(buf, offset + OBJECT_HEADER, offset + h.length, def.name);
    const value = def.read(r, h.cType);
    r.done();
    return { value, length: h.length };
  };
  return {
    name: def.name,
    classNum: def.classNum,
    encodingLength,
    write,
    read,
    encode(v: T): Uint8Array {
      const buf = new Uint8Array(encodingLength(v));
      write(v, buf, 0);
      return buf;
    },
    decode(bytes: Uint8Array, offset?: number): T {
      return read(bytes, offset ?? 0, bytes.length).value;
    },
  };
}

/** The decode error for an object the message is rejected for (RFC 2205 section 3.10): an
 * unknown class-num of the form 0bbbbbbb (RSVP error code 13, Unknown object class) or an
 * unknown c-type of a known class (14, Unknown object C-Type). A QOS_ERR_RSVP_DECODE like any
 * other, with the class-num and c-type a node answers with (error value class-num << 8 | c-type). */
export class UnknownObjectError extends QosError {
  constructor(message: string, readonly classNum: number, readonly cType: number, readonly errorCode: 13 | 14) {
    super('QOS_ERR_RSVP_DECODE', message);
  }
}

/** The decode error for a c-type the class does not define (RFC 2205 section 3.10: reject).
 * Called first thing in a body's reader: the header's class-num is 2 bytes back. */
export function unknownCType(r: Reader, cType: number): never {
  throw new UnknownObjectError(`RSVP ${r.what}, byte ${r.pos - 1}: unknown c-type ${cType}`, r.buf[r.pos - 2]!, cType, 14);
}
