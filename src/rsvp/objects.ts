/* Every RSVP object this codec knows, as one union keyed by `kind`, and the rules for the ones
 * it does not (RFC 2205 section 3.10): the two high bits of an unknown class-num say whether
 * the message is rejected (0b0x), the object ignored silently (0b10), or ignored and kept to
 * be forwarded unchanged (0b11). A NULL object (class 0) is skipped wherever it is. */

import { adspec, type Adspec } from './adspec.js';
import { errorSpec, type ErrorSpec } from './error-spec.js';
import { filterSpec, type FilterSpec, senderTemplate, type SenderTemplate } from './filter-spec.js';
import { flowspec, type Flowspec } from './flowspec.js';
import { hop, type Hop } from './hop.js';
import { integrity, type Integrity } from './integrity.js';
import { CLASS, OBJECT_HEADER, type ObjectCodec, readObjectHeader, UnknownObjectError } from './object.js';
import { policyData, type PolicyData } from './policy-data.js';
import { resvConfirm, type ResvConfirm } from './resv-confirm.js';
import { scope, type Scope } from './scope.js';
import { session, type Session } from './session.js';
import { style, type Style } from './style.js';
import { timeValues, type TimeValues } from './time-values.js';
import { senderTspec, type SenderTspec } from './tspec.js';
import { invalid } from './wire.js';

/** An object of a class this codec does not know, class-num 192 to 255: kept to be forwarded. */
export interface ForwardedObject { kind: 'UNKNOWN'; classNum: number; cType: number; body: string }

export type RsvpObject =
  | Session | Hop | TimeValues | Style | Flowspec | FilterSpec | SenderTemplate | SenderTspec
  | Adspec | ErrorSpec | Scope | ResvConfirm | Integrity | PolicyData | ForwardedObject;

export type ObjectKind = RsvpObject['kind'];

// Each codec's value type is the member of the union with its kind.
const CODECS: { [K in Exclude<ObjectKind, 'UNKNOWN'>]: ObjectCodec<Extract<RsvpObject, { kind: K }>> } = {
  SESSION: session, RSVP_HOP: hop, TIME_VALUES: timeValues, STYLE: style, FLOWSPEC: flowspec,
  FILTER_SPEC: filterSpec, SENDER_TEMPLATE: senderTemplate, SENDER_TSPEC: senderTspec, ADSPEC: adspec,
  ERROR_SPEC: errorSpec, SCOPE: scope, RESV_CONFIRM: resvConfirm, INTEGRITY: integrity, POLICY_DATA: policyData,
};

const BY_CLASS = new Map<number, ObjectCodec<RsvpObject>>(Object.values(CODECS).map((c) => [c.classNum, c as unknown as ObjectCodec<RsvpObject>]));

// by kind, for the encoder: a Map lookup rather than a keyed property load of a varying name
const BY_KIND = new Map<string, ObjectCodec<RsvpObject>>(Object.entries(CODECS).map(([k, c]) => [k, c as unknown as ObjectCodec<RsvpObject>]));

function codecOf(v: RsvpObject): ObjectCodec<RsvpObject> {
  const c = BY_KIND.get(v?.kind);
  if (!c) invalid('object', `unknown kind ${JSON.stringify(v?.kind)}`);
  return c;
}

function forwardedBody(v: ForwardedObject): Buffer {
  if (!Number.isInteger(v.classNum) || v.classNum < 192 || v.classNum > 255) invalid('object', `an unknown object to forward has class-num ${v.classNum} (192 to 255, RFC 2205 section 3.10)`);
  if (typeof v.body !== 'string' || !/^([0-9a-f]{8})*$/.test(v.body)) invalid(`object of class ${v.classNum}`, 'body is not lower-case hex of a multiple of 4 bytes');
  return Buffer.from(v.body, 'hex');
}

/** The codec of a known object (an unknown kind is the encode error), null for one to forward
 * (ForwardedObject: objectLength and writeObject handle it): for an encoder that looks it up once. */
export function codecFor(v: RsvpObject): ObjectCodec<RsvpObject> | null {
  return v?.kind === 'UNKNOWN' ? null : codecOf(v);
}

/** Bytes of one object, header included. */
export function objectLength(v: RsvpObject): number {
  return v?.kind === 'UNKNOWN' ? OBJECT_HEADER + forwardedBody(v).length : codecOf(v).encodingLength(v);
}

/** Writes one object at offset; returns the bytes written. length, when given, is what objectLength(v) gave. */
export function writeObject(v: RsvpObject, buf: Uint8Array, offset: number, length?: number): number {
  if (v?.kind !== 'UNKNOWN') return codecOf(v).write(v, buf, offset, length);
  const body = forwardedBody(v);
  const n = OBJECT_HEADER + body.length;
  if (n > 0xffff) invalid(`object of class ${v.classNum}`, `${n} bytes, longer than the length field allows`);
  if (!Number.isInteger(v.cType) || v.cType < 0 || v.cType > 255) invalid(`object of class ${v.classNum}`, `c-type ${v.cType}`);
  buf[offset] = n >> 8; buf[offset + 1] = n & 0xff; buf[offset + 2] = v.classNum; buf[offset + 3] = v.cType;
  buf.set(body, offset + OBJECT_HEADER);
  return n;
}

/** readObject, but an object the message would be rejected for (UnknownObjectError) is
 * skipped and put in `unknown`: for a node to answer it (RFC 2205 section 3.10). */
export function readObjectSkipping(buf: Uint8Array, offset: number, end: number, unknown: UnknownObjectError[]): { value: RsvpObject | null; length: number } {
  try {
    return readObject(buf, offset, end);
  } catch (e) {
    if (!(e instanceof UnknownObjectError)) throw e;
    unknown.push(e);
    return { value: null, length: readObjectHeader(buf, offset, end).length };
  }
}

/** One object read at offset, never past end: the object, or null for one to drop (NULL, or
 * an unknown class-num 128 to 191), with the bytes it took. An unknown class-num below 128 is
 * a decode error ("Unknown object class", RFC 2205 error code 13). */
export function readObject(buf: Uint8Array, offset: number, end: number): { value: RsvpObject | null; length: number } {
  // a known class's codec checks the header itself (with the same errors): read it once
  const c = end - offset >= OBJECT_HEADER ? BY_CLASS.get(buf[offset + 2]!) : undefined;
  if (c) return c.read(buf, offset, end);
  const h = readObjectHeader(buf, offset, end);
  if (h.classNum === CLASS.NULL) return { value: null, length: h.length };
  if (h.classNum < 128) throw new UnknownObjectError(`RSVP object of class ${h.classNum}, byte ${offset + 2}: unknown class-num ${h.classNum} (0bbbbbbb: the message is rejected, RFC 2205 section 3.10)`, h.classNum, h.cType, 13);
  if (h.classNum < 192) return { value: null, length: h.length }; // 10bbbbbb: ignored silently, not forwarded
  return { value: { kind: 'UNKNOWN', classNum: h.classNum, cType: h.cType, body: Buffer.from(buf.subarray(offset + OBJECT_HEADER, offset + h.length)).toString('hex') }, length: h.length };
}
