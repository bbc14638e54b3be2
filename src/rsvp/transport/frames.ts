/* The frames native/rsvpio.c reads and writes on its stdin and stdout (its header comment is
 * the other copy of this): a 32-bit length, a type, and for SEND and PACKET one body: family,
 * flags (bit 0 Router Alert), TTL, UDP port, interface name, source, destination, message. */

import { addressBytes } from '../../capture/pcap-write.js';
import { QosError } from '../../errors.js';
import { formatIPv4, formatIPv6 } from '../wire.js';

export const FRAME = { SEND: 1, PACKET: 2, RESULT: 3, READY: 4 } as const;
const RA = 1;
export const IFNAMSIZ = 16;
/** type, family, flags, ttl, port, ifname, src, dst */
export const BODY = 1 + 1 + 1 + 1 + 2 + IFNAMSIZ + 16 + 16;
/** an RSVP message's length field is 16 bits */
export const MSG_MAX = 65535;
/** the largest frame after its length field */
export const FRAME_MAX = BODY + MSG_MAX;

/** What a SEND or PACKET frame carries. */
export interface Datagram {
  family: 4 | 6;
  routerAlert: boolean;
  ttl: number;
  /** UDP: the destination port (SEND), the source port (PACKET); raw: 0 */
  port: number;
  /** '' in a SEND: as routing says */
  ifname: string;
  /** '' in a SEND: the kernel chooses */
  src: string;
  dst: string;
  bytes: Uint8Array;
}

/** A frame the helper wrote. */
export type Frame =
  | { type: 'packet'; packet: Datagram }
  | { type: 'result'; errno: number; reason: string }
  | { type: 'ready' };

function bad(message: string): never {
  throw new QosError('QOS_ERR_RSVP_INVALID', `rsvpio frame: ${message}`);
}

/** The address written in 16 bytes (IPv4 in the first 4), '' as all zero. */
function address16(a: string, family: 4 | 6, field: string): Uint8Array {
  const out = new Uint8Array(16);
  if (a === '') return out;
  const b = addressBytes(a);
  if (b.length !== (family === 4 ? 4 : 16)) bad(`${field} ${a} is not an IPv${family} address`);
  out.set(b);
  return out;
}

/** A SEND frame, length field included; throws a QosError naming what is wrong. */
export function encodeSend(d: Datagram): Uint8Array {
  if (d.bytes.length > MSG_MAX) bad(`a message of ${d.bytes.length} bytes: more than ${MSG_MAX}`);
  if (!Number.isInteger(d.ttl) || d.ttl < 1 || d.ttl > 255) bad(`TTL ${d.ttl} is not 1 to 255`);
  if (!Number.isInteger(d.port) || d.port < 0 || d.port > 65535) bad(`port ${d.port} is not 0 to 65535`);
  const name = Buffer.from(d.ifname, 'utf8');
  if (name.length >= IFNAMSIZ) bad(`interface name "${d.ifname}" is longer than ${IFNAMSIZ - 1} bytes`);
  const f = Buffer.alloc(4 + BODY + d.bytes.length);
  f.writeUInt32BE(BODY + d.bytes.length, 0);
  f[4] = FRAME.SEND;
  f[5] = d.family;
  f[6] = d.routerAlert ? RA : 0;
  f[7] = d.ttl;
  f.writeUInt16BE(d.port, 8);
  name.copy(f, 10);
  f.set(address16(d.src, d.family, 'source'), 10 + IFNAMSIZ);
  f.set(address16(d.dst, d.family, 'destination'), 10 + IFNAMSIZ + 16);
  f.set(d.bytes, 4 + BODY);
  return f;
}

function decodeDatagram(b: Buffer): Datagram {
  if (b.length < BODY) bad(`a PACKET frame of ${b.length} bytes: less than ${BODY}`);
  const family = b[1];
  if (family !== 4 && family !== 6) bad(`a PACKET frame of family ${family}`);
  const addr = (at: number) => (family === 4 ? formatIPv4(b.subarray(at, at + 4)) : formatIPv6(b.subarray(at, at + 16)));
  const name = b.subarray(6, 6 + IFNAMSIZ);
  const end = name.indexOf(0);
  return {
    family, routerAlert: (b[2]! & RA) !== 0, ttl: b[3]!, port: b.readUInt16BE(4),
    ifname: name.subarray(0, end < 0 ? IFNAMSIZ : end).toString('utf8'),
    src: addr(6 + IFNAMSIZ), dst: addr(6 + IFNAMSIZ + 16),
    bytes: Uint8Array.from(b.subarray(BODY)),
  };
}

/** Splits the helper's output into frames as it comes: push() each chunk, get whole frames. */
export class FrameReader {
  private held: Buffer = Buffer.alloc(0);

  /** The whole frames the held bytes and chunk make; throws a QosError on a malformed one. */
  push(chunk: Buffer): Frame[] {
    this.held = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    const frames: Frame[] = [];
    let at = 0;
    while (this.held.length - at >= 4) {
      const n = this.held.readUInt32BE(at);
      if (n < 1 || n > FRAME_MAX) bad(`a frame of ${n} bytes (1 to ${FRAME_MAX})`);
      if (this.held.length - at < 4 + n) break;
      const b = this.held.subarray(at + 4, at + 4 + n);
      at += 4 + n;
      if (b[0] === FRAME.PACKET) frames.push({ type: 'packet', packet: decodeDatagram(b) });
      else if (b[0] === FRAME.RESULT && n >= 5) frames.push({ type: 'result', errno: b.readInt32BE(1), reason: b.subarray(5).toString('utf8') });
      else if (b[0] === FRAME.READY) frames.push({ type: 'ready' });
      else bad(`a frame of type ${b[0]} and ${n} bytes`);
    }
    this.held = this.held.subarray(at);
    return frames;
  }
}
