/* INTEGRITY (RFC 2747, c-type 1): key identifier, sequence number and keyed message digest
 * (HMAC-MD5, RFC 2104) over the whole message, computed with the digest and the checksum set
 * to zero (section 3). sign() fills the digest; verify() recomputes it and rejects a message
 * whose digest differs or whose key is unknown. Replay protection (sequence numbers per key,
 * the handshake) needs state across messages and is the engine's, not the codec's. */

import { createHmac, timingSafeEqual } from 'node:crypto';
import { QosError } from '../errors.js';
import { CLASS, objectCodec, unknownCType } from './object.js';
import { decodeError, invalid } from './wire.js';

export interface Integrity {
  kind: 'INTEGRITY';
  /** 0x01 H: the sender answers integrity challenges (handshake) */
  flags: number;
  /** 48-bit key identifier, 12 hex digits */
  keyId: string;
  /** 64-bit sequence number, decimal */
  sequence: string;
  /** the keyed message digest, hex (16 bytes for HMAC-MD5) */
  digest: string;
}

export const INTEGRITY_HANDSHAKE = 0x01;
export const MD5_DIGEST = 16;

const hexBytes = (s: string, n: number | null, field: string): Buffer => {
  if (typeof s !== 'string' || !/^([0-9a-f]{2})*$/.test(s) || (n !== null && s.length !== 2 * n)) invalid('INTEGRITY', `${field} "${s}" is not ${n ?? 'whole'} bytes of lower-case hex`);
  return Buffer.from(s, 'hex');
};

export const integrity = objectCodec<Integrity>({
  name: 'INTEGRITY',
  classNum: CLASS.INTEGRITY,
  cType: () => 1,
  bodyLength: (v) => 16 + v.digest.length / 2,
  write(v, w) {
    w.u8(v.flags, 'flags'); w.zero(1);
    w.bytes(hexBytes(v.keyId, 6, 'key identifier'));
    if (typeof v.sequence !== 'string' || !/^\d{1,20}$/.test(v.sequence) || BigInt(v.sequence) >= 1n << 64n) invalid('INTEGRITY', `sequence number "${v.sequence}" is not a 64-bit unsigned decimal`);
    const seq = Buffer.alloc(8); seq.writeBigUInt64BE(BigInt(v.sequence)); w.bytes(seq);
    const d = hexBytes(v.digest, null, 'digest');
    if (d.length === 0 || d.length % 4) invalid('INTEGRITY', `digest of ${d.length} bytes (a non-empty multiple of 4)`);
    w.bytes(d);
  },
  read(r, cType) {
    if (cType !== 1) unknownCType(r, cType);
    const flags = r.u8('flags'); r.skip(1, 'reserved');
    const keyId = r.hex(6, 'key identifier');
    const sequence = Buffer.from(r.bytes(8, 'sequence number')).readBigUInt64BE().toString();
    if (r.left === 0) decodeError('INTEGRITY', r.pos, 'no keyed message digest');
    const digest = r.hex(r.left, 'digest');
    return { kind: 'INTEGRITY', flags, keyId, sequence, digest };
  },
});

/** Where the INTEGRITY object's digest is in an encoded message (one encode wrote, or decode
 * accepted): offset and length, or null. */
export function findDigest(msg: Uint8Array): { at: number; length: number } | null {
  // the common header is 8 bytes; RFC 2747 puts INTEGRITY first, but look at every object
  const len = Math.min((msg[6]! << 8) | msg[7]!, msg.length);
  for (let o = 8; o + 4 <= len;) {
    const olen = (msg[o]! << 8) | msg[o + 1]!;
    if (olen < 4 || o + olen > len) return null;
    if (msg[o + 2] === CLASS.INTEGRITY) return olen > 20 ? { at: o + 20, length: olen - 20 } : null;
    o += olen;
  }
  return null;
}

/** HMAC-MD5 of the message with its checksum and digest zeroed. */
export function keyedDigest(msg: Uint8Array, at: number, length: number, key: Uint8Array): Buffer {
  const copy = Buffer.from(msg);
  copy.fill(0, 2, 4);
  copy.fill(0, at, at + length);
  return createHmac('md5', key).update(copy).digest();
}

/** Checks a message's INTEGRITY digest with the key its key id names. The message is decoded
 * first (decode is passed in: message.ts imports this module), so malformed bytes are
 * QOS_ERR_RSVP_DECODE; QOS_ERR_RSVP_INTEGRITY when there is no INTEGRITY object, the key is
 * unknown, or the digest differs. */
export function verifyIntegrityWith(decode: (b: Uint8Array) => { objects: { kind: string }[] }, msg: Uint8Array, keyFor: (keyId: string) => Uint8Array | undefined): { keyId: string; sequence: string } {
  const m = decode(msg);
  const c = checkDigest(msg, m.objects, keyFor);
  if (c.ok) return { keyId: c.keyId, sequence: c.sequence };
  throw new QosError('QOS_ERR_RSVP_INTEGRITY', c.message);
}

/** Why a message fails its INTEGRITY check (RFC 2747): no INTEGRITY object, an unknown key
 * id, or a wrong digest (of the wrong length too). */
export type IntegrityFailure = 'missing' | 'unknown_key' | 'bad_digest';

/** The INTEGRITY check of a message already decoded (its bytes and its objects): the key id and
 * sequence number, or why it fails and the error's text. */
export function checkDigest(msg: Uint8Array, objects: readonly { kind: string }[], keyFor: (keyId: string) => Uint8Array | undefined):
  { ok: true; keyId: string; sequence: string } | { ok: false; why: IntegrityFailure; message: string } {
  const obj = objects.find((o): o is Integrity => o.kind === 'INTEGRITY');
  const d = findDigest(msg);
  if (!obj || !d) return { ok: false, why: 'missing', message: 'RSVP message has no INTEGRITY object' };
  const { keyId, sequence } = obj;
  const key = keyFor(keyId);
  if (!key) return { ok: false, why: 'unknown_key', message: `RSVP INTEGRITY, byte ${d.at - 14}: unknown key id ${keyId}` };
  if (d.length !== MD5_DIGEST) return { ok: false, why: 'bad_digest', message: `RSVP INTEGRITY, byte ${d.at}: digest of ${d.length} bytes, HMAC-MD5 gives ${MD5_DIGEST}` };
  const want = keyedDigest(msg.subarray(0, (msg[6]! << 8) | msg[7]!), d.at, d.length, key);
  if (!timingSafeEqual(want, msg.subarray(d.at, d.at + d.length))) {
    return { ok: false, why: 'bad_digest', message: `RSVP INTEGRITY, byte ${d.at}: keyed digest ${obj.digest} is not the message's (key id ${keyId})` };
  }
  return { ok: true, keyId, sequence };
}
