/* Where `qos rsvp decode` finds RSVP messages: a hex string, or the packets of a capture file
 * that carry RSVP: IP protocol 46 (after an IPv6 hop-by-hop header, where Path messages carry
 * their Router Alert) or UDP ports 1698/1699 (RFC 2205 appendix C). */

import { createReadStream } from 'node:fs';
import { type Packet, PcapReader } from '../capture/pcap.js';
import { QosError } from '../errors.js';

export const IPPROTO_RSVP = 46;
const UDP_PORTS = [1698, 1699];

/** One RSVP message's bytes with where they came from. */
export interface RsvpBytes { packet: number; src: string; dst: string; transport: 'ip' | 'udp'; bytes: Uint8Array }

/** The bytes of a hex string (spaces, colons and a 0x prefix allowed). */
export function hexBytes(hex: string): Uint8Array {
  const h = hex.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(h)) throw new QosError('QOS_ERR_USAGE', `--hex takes pairs of hex digits, not "${hex.length > 40 ? hex.slice(0, 40) + '...' : hex}"`);
  return Uint8Array.from(Buffer.from(h, 'hex'));
}

/** The RSVP message in one captured packet, or null if it carries none. */
export function rsvpIn(p: Packet, n: number): RsvpBytes | null {
  const at = { packet: n, src: p.src, dst: p.dst };
  if (p.proto === 17) return UDP_PORTS.includes(p.dport) || UDP_PORTS.includes(p.sport) ? { ...at, transport: 'udp', bytes: p.payload } : null;
  if (p.proto === IPPROTO_RSVP) return { ...at, transport: 'ip', bytes: p.payload };
  // IPv6 hop-by-hop options (next header 0): RSVP behind them, length in 8-byte units after the first 8
  if (p.family === 6 && p.proto === 0 && p.payload.length >= 2 && p.payload[0] === IPPROTO_RSVP) {
    const len = (p.payload[1]! + 1) * 8;
    return { ...at, transport: 'ip', bytes: p.payload.subarray(Math.min(len, p.payload.length)) };
  }
  return null;
}

/** Every RSVP message of a pcap or pcapng file, in order (packets numbered from 1, as tshark does). */
export async function rsvpInCapture(file: string): Promise<RsvpBytes[]> {
  const out: RsvpBytes[] = [];
  const reader = new PcapReader((p) => { const r = rsvpIn(p, reader.records); if (r) out.push({ ...r, bytes: Uint8Array.from(r.bytes) }); });
  try {
    for await (const chunk of createReadStream(file)) reader.push(chunk as Buffer);
  } catch (e) {
    if (e instanceof QosError) throw e;
    throw new QosError('QOS_ERR_CAPTURE', `cannot read ${file}: ${(e as Error).message}`);
  }
  reader.end();
  return out;
}
