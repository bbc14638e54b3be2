/* RSVP messages (RFC 2205 section 3.1): the common header (version 1, flags, message type,
 * checksum, send TTL, length) and the objects in the order section 3.1.x gives each message
 * type. Encoding is strict: the objects must be in that order, as the RFC says a sender SHOULD;
 * decoding is lenient about order (checkOrder says whether a decoded message follows it) but
 * not about bytes: every length is checked, and a wrong checksum is its own error. */

import { QosError } from '../errors.js';
import { inetChecksum } from '../inet-checksum.js';
import { findDigest, keyedDigest, verifyIntegrityWith } from './integrity.js';
import type { ObjectCodec, UnknownObjectError } from './object.js';
import { codecFor, objectLength, type RsvpObject, readObject, readObjectSkipping, writeObject } from './objects.js';
import { decodeError, invalid } from './wire.js';

export const MESSAGE_TYPES = { Path: 1, Resv: 2, PathErr: 3, ResvErr: 4, PathTear: 5, ResvTear: 6, ResvConf: 7 } as const;
export type MessageType = keyof typeof MESSAGE_TYPES;
const TYPE_NAMES = new Map<number, MessageType>(Object.entries(MESSAGE_TYPES).map(([k, v]) => [v, k as MessageType]));

export const COMMON_HEADER = 8;

export interface RsvpMessage {
  type: MessageType;
  /** the 4 flag bits (none defined by RFC 2205; RFC 2961's refresh reduction uses 0x1) */
  flags: number;
  /** the IP TTL the message was sent with */
  sendTtl: number;
  objects: RsvpObject[];
}

// One letter per class for the order grammar; forwarded unknown objects may sit anywhere.
const LETTER: Record<Exclude<RsvpObject['kind'], 'UNKNOWN'>, string> = {
  INTEGRITY: 'I', SESSION: 'S', RSVP_HOP: 'H', TIME_VALUES: 'T', POLICY_DATA: 'P', SENDER_TEMPLATE: 'M',
  SENDER_TSPEC: 'X', ADSPEC: 'A', RESV_CONFIRM: 'C', SCOPE: 'O', STYLE: 'Y', FLOWSPEC: 'F', FILTER_SPEC: 'L', ERROR_SPEC: 'E',
};

// the same by kind, for checkOrder: a Map lookup rather than a keyed property load of a varying name
const LETTER_OF = new Map<string, string>(Object.entries(LETTER));

// Flow descriptor lists by style (RFC 2205 sections 3.1.4, 3.1.5): WF one FLOWSPEC; FF each
// FILTER_SPEC with its FLOWSPEC, which may be left out after the first (it is then the one
// before); SE one FLOWSPEC and its FILTER_SPECs. ResvTear's FLOWSPECs are optional (3.1.7).
const FLOWS = {
  WF: 'F', FF: 'FL(F?L)*', SE: 'FL+', tearWF: 'F?', tearFF: '(F?L)+', tearSE: 'F?L+', errWF: 'F?', errFF: '(FL)?', errSE: '(FL+)?',
} as const;

/** The order RFC 2205 section 3.1 gives each message, as a pattern over the class letters
 * (`STYLE` stands for the flow descriptor list of the message's style). */
const ORDER: Record<MessageType, { head: string; flows?: 'resv' | 'tear' | 'err' }> = {
  Path: { head: 'I?SHTP*(MXA?)?' },
  Resv: { head: 'I?SHTC?O?P*Y', flows: 'resv' },
  PathErr: { head: 'I?SEP*(MXA?)?' },
  ResvErr: { head: 'I?SHEO?P*Y', flows: 'err' },
  PathTear: { head: 'I?SH(MX?A?)?' }, // section 3.1.5: its SENDER_TSPEC and ADSPEC are ignored, so may be left out
  ResvTear: { head: 'I?SHO?Y', flows: 'tear' },
  ResvConf: { head: 'I?SECY', flows: 'resv' },
};

// The patterns compiled once each: a message type's head and a style's flows make a few dozen at most.
const ORDER_RE = new Map<string, RegExp>();
function orderRegExp(pattern: string): RegExp {
  let re = ORDER_RE.get(pattern);
  if (!re) { re = new RegExp(`^${pattern}$`); ORDER_RE.set(pattern, re); }
  return re;
}

/** Problems with a message's object order (RFC 2205 section 3.1), none if it follows it. */
export function checkOrder(m: RsvpMessage): string[] {
  const spec = ORDER[m.type];
  if (!spec) return [`unknown message type ${String(m.type)}`];
  let letters = '';
  for (const o of m.objects) if (o.kind !== 'UNKNOWN') letters += LETTER_OF.get(o.kind);
  let pattern = spec.head;
  if (spec.flows) {
    const st = m.objects.find((o) => o.kind === 'STYLE');
    const name = st?.kind === 'STYLE' ? st.style : 'WF';
    pattern += spec.flows === 'resv' ? FLOWS[name] : FLOWS[`${spec.flows}${name}`];
  }
  if (orderRegExp(pattern).test(letters)) return [];
  const names = m.objects.filter((o) => o.kind !== 'UNKNOWN').map((o) => o.kind).join(' ');
  return [`${m.type} objects in the order ${names || '(none)'} do not follow RFC 2205 section 3.1 (${pattern.replace(/[A-Z]/g, (c) => ' ' + Object.entries(LETTER).find(([, l]) => l === c)![0]).replace(/\( /g, ' (').trim()})`];
}

/** Bytes of the message. */
export function encodingLength(m: RsvpMessage): number {
  return COMMON_HEADER + m.objects.reduce((n, o) => n + objectLength(o), 0);
}

// Messages are encoded into slices of a shared zeroed 8 KiB buffer, as Buffer.allocUnsafe does
// from its pool: a Uint8Array of its own costs about as much as encoding the message (a
// separately allocated backing store, which the garbage collector accounts for). A slice is
// never handed out twice, so it is zero as allocated; a message longer than a quarter of the
// pool gets its own array.
const POOL_SIZE = 8192;
let pool = new ArrayBuffer(POOL_SIZE);
let poolUsed = 0;
function alloc(n: number): Uint8Array {
  if (n > POOL_SIZE / 4) return new Uint8Array(n);
  if (poolUsed + n > POOL_SIZE) { pool = new ArrayBuffer(POOL_SIZE); poolUsed = 0; }
  const buf = new Uint8Array(pool, poolUsed, n);
  poolUsed += (n + 7) & ~7; // each slice 8-byte aligned
  return buf;
}

/** The message's bytes, checksum computed; objects must be in RFC 2205 order. With key, the
 * INTEGRITY object's digest is computed (HMAC-MD5, RFC 2747) before the checksum. The bytes may
 * be a view at an offset of a larger ArrayBuffer (see alloc): use byteOffset with .buffer. */
export function encode(m: RsvpMessage, key?: Uint8Array): Uint8Array {
  const type = MESSAGE_TYPES[m?.type];
  if (!type) invalid('common header', `message type ${JSON.stringify(m?.type)} (${Object.keys(MESSAGE_TYPES).join(', ')})`);
  const order = checkOrder(m);
  if (order.length) invalid(m.type, order.join('; '));
  if (!Number.isInteger(m.flags) || m.flags < 0 || m.flags > 15) invalid('common header', `flags ${m.flags} (4 bits)`);
  if (!Number.isInteger(m.sendTtl) || m.sendTtl < 0 || m.sendTtl > 255) invalid('common header', `send TTL ${m.sendTtl}`);
  // each object's codec looked up once, its length worked out once
  const objects = m.objects, count = objects.length;
  const codecs: (ObjectCodec<RsvpObject> | null)[] = [], lengths: number[] = [];
  let n = COMMON_HEADER;
  for (let i = 0; i < count; i++) {
    const o = objects[i]!, c = codecFor(o), l = c ? c.encodingLength(o) : objectLength(o);
    codecs.push(c); lengths.push(l); n += l;
  }
  if (n > 0xffff) invalid('common header', `message of ${n} bytes is longer than the length field allows`);
  const buf = alloc(n);
  buf[0] = 0x10 | m.flags; buf[1] = type; buf[4] = m.sendTtl; buf[6] = n >> 8; buf[7] = n & 0xff;
  let at = COMMON_HEADER;
  for (let i = 0; i < count; i++) {
    const o = objects[i]!, c = codecs[i];
    at += c ? c.write(o, buf, at, lengths[i]) : writeObject(o, buf, at, lengths[i]);
  }
  if (key) {
    const d = findDigest(buf);
    if (!d) invalid(m.type, 'a key is given but the message has no INTEGRITY object');
    buf.set(keyedDigest(buf, d.at, d.length, key).subarray(0, d.length), d.at);
  }
  const sum = inetChecksum(buf);
  buf[2] = sum >> 8; buf[3] = sum & 0xff;
  return buf;
}

/** The common header as read, for tools that show it. */
export interface CommonHeader { version: number; flags: number; typeNum: number; checksum: number; sendTtl: number; length: number }

export function readCommonHeader(bytes: Uint8Array, offset = 0): CommonHeader {
  if (bytes.length - offset < COMMON_HEADER) decodeError('common header', offset, `needs 8 bytes, ${Math.max(0, bytes.length - offset)} there`);
  const b = (i: number) => bytes[offset + i]!;
  return { version: b(0) >> 4, flags: b(0) & 0x0f, typeNum: b(1), checksum: (b(2) << 8) | b(3), sendTtl: b(4), length: (b(6) << 8) | b(7) };
}

/** The message at offset; bytes after its length are not read. Throws QOS_ERR_RSVP_DECODE for
 * malformed bytes and QOS_ERR_RSVP_CHECKSUM for a checksum that does not match (zero: none sent). */
export function decode(bytes: Uint8Array, at?: number): RsvpMessage {
  return decodeMessage(bytes, at ?? 0, null);
}

/** A message decode() rejects only for objects it does not know (RFC 2205 section 3.10: an
 * unknown class-num 0bbbbbbb, an unknown c-type of a known class): the rest of it, and what
 * was left out (class-num, c-type, and the error code to answer with, 13 or 14), so a node can
 * answer with PathErr or ResvErr. `unknown` is empty when decode() takes the message; every
 * other problem throws as decode() does. */
export function decodeSkippingUnknown(bytes: Uint8Array, at?: number): { message: RsvpMessage; unknown: UnknownObjectError[] } {
  const unknown: UnknownObjectError[] = [];
  return { message: decodeMessage(bytes, at ?? 0, unknown), unknown };
}

function decodeMessage(bytes: Uint8Array, offset: number, unknown: UnknownObjectError[] | null): RsvpMessage {
  const h = readCommonHeader(bytes, offset);
  if (h.version !== 1) decodeError('common header', offset, `version ${h.version} (RSVP is 1)`);
  const type = TYPE_NAMES.get(h.typeNum);
  if (!type) decodeError('common header', offset + 1, `message type ${h.typeNum} (1 to 7: ${Object.keys(MESSAGE_TYPES).join(', ')})`);
  if (h.length < COMMON_HEADER || h.length % 4) decodeError('common header', offset + 6, `message length ${h.length} (a multiple of 4, at least 8)`);
  if (h.length > bytes.length - offset) decodeError('common header', offset + 6, `message length ${h.length}, only ${bytes.length - offset} bytes there`);
  const end = offset + h.length;
  if (h.checksum !== 0) {
    // the checksum of the message with its checksum field as zero: the first word, then the rest after the field
    const want = inetChecksum(bytes.subarray(offset + 4, end), (bytes[offset]! << 8) | bytes[offset + 1]!);
    if (want !== h.checksum) throw new QosError('QOS_ERR_RSVP_CHECKSUM', `RSVP ${type}, byte ${offset + 2}: checksum 0x${hex4(h.checksum)}, the message's is 0x${hex4(want)}`);
  }
  const objects: RsvpObject[] = [];
  for (let at = offset + COMMON_HEADER; at < end;) {
    const { value, length } = unknown ? readObjectSkipping(bytes, at, end, unknown) : readObject(bytes, at, end);
    if (value) objects.push(value);
    at += length;
  }
  return { type, flags: h.flags, sendTtl: h.sendTtl, objects };
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

/** Decodes the message and checks its INTEGRITY digest (RFC 2747) with the key its key id
 * names: malformed bytes are QOS_ERR_RSVP_DECODE, a missing object, unknown key or wrong digest
 * QOS_ERR_RSVP_INTEGRITY. Returns the key id and sequence number (replay is the caller's to judge). */
export function verifyIntegrity(bytes: Uint8Array, keyFor: (keyId: string) => Uint8Array | undefined): { keyId: string; sequence: string } {
  return verifyIntegrityWith(decode, bytes, keyFor);
}

/** The message codec in the shape assertRoundTrip takes. */
export const rsvpMessage = { encode: (m: RsvpMessage) => encode(m), decode, encodingLength };
