/* A small writer of classic pcap files (the format pcap.ts reads), with the IPv4, IPv6 and UDP
 * headers built around a payload, checksums included, so that what qosd emits (RSVP messages)
 * can be handed to tshark as packets. Raw IP link type (101): no link-layer header. */

import { QosError } from '../errors.js';
import { inetChecksum, onesComplementSum } from '../inet-checksum.js';

export const LINKTYPE_RAW = 101;
export const IPPROTO_UDP = 17;

/** What else a pcap file may be written with (tests of the reader): the header's link-type
 * field (default raw IP) and version (2.4), and each record's two length fields as they stand
 * in the file (default both the packet's length). */
export interface PcapFileOptions {
  linkField?: number;
  version?: readonly [number, number];
  lengths?: (packet: Uint8Array) => readonly [number, number];
}

/** A pcap file (microsecond times, little-endian) of the given packets (raw IP unless
 * o.linkField says otherwise), one second apart, or at the given times (seconds after
 * startSec, one per packet). */
export function pcapFile(packets: readonly Uint8Array[], startSec = 1_700_000_000, times?: readonly number[], o: PcapFileOptions = {}): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0); head.writeUInt16LE(o.version?.[0] ?? 2, 4); head.writeUInt16LE(o.version?.[1] ?? 4, 6);
  head.writeUInt32LE(65535, 16); head.writeUInt32LE((o.linkField ?? LINKTYPE_RAW) >>> 0, 20);
  const parts: Buffer[] = [head];
  packets.forEach((p, i) => {
    const rec = Buffer.alloc(16);
    const us = Math.round((times?.[i] ?? i) * 1e6);
    const [a, b] = o.lengths?.(p) ?? [p.length, p.length];
    rec.writeUInt32LE(startSec + Math.floor(us / 1e6), 0); rec.writeUInt32LE(us % 1e6, 4);
    rec.writeUInt32LE(a, 8); rec.writeUInt32LE(b, 12);
    parts.push(rec, Buffer.from(p));
  });
  return Buffer.concat(parts);
}

function bad(a: string): never { throw new QosError('QOS_ERR_USAGE', `"${a}" is not an IP address`); }

/** The bytes of an IPv4 (dotted quad) or IPv6 address. */
export function addressBytes(a: string): Buffer {
  if (!a.includes(':')) {
    const p = a.split('.').map((x) => (/^\d{1,3}$/.test(x) ? Number(x) : 256));
    if (p.length !== 4 || p.some((x) => x > 255)) bad(a);
    return Buffer.from(p);
  }
  const [h, t, ...more] = a.split('::');
  if (more.length) bad(a);
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : bad(a))) : []);
  const head = groups(h), tail = groups(t);
  const all = t === undefined ? head : [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  if (all.length !== 8 || (t !== undefined && head.length + tail.length > 7)) bad(a);
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  return out;
}

export interface IpOptions {
  src: string;
  dst: string;
  /** IP protocol (IPv4) or next header (IPv6) */
  proto: number;
  payload: Uint8Array;
  ttl?: number;
  tos?: number;
  /** add the Router Alert option (RFC 2113 / RFC 2711), as RSVP Path messages carry */
  routerAlert?: boolean;
}

/** An IPv4 packet, header checksum computed (with the Router Alert option if asked). */
export function ipv4Packet(o: IpOptions): Buffer {
  const opts = o.routerAlert ? Buffer.from([0x94, 0x04, 0x00, 0x00]) : Buffer.alloc(0);
  const hl = 20 + opts.length;
  const h = Buffer.alloc(hl);
  h[0] = 0x40 | (hl / 4); h[1] = o.tos ?? 0;
  h.writeUInt16BE(hl + o.payload.length, 2);
  h.writeUInt16BE(0x4000, 6); // DF
  h[8] = o.ttl ?? 64; h[9] = o.proto;
  addressBytes(o.src).copy(h, 12); addressBytes(o.dst).copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, o.payload]);
}

/** An IPv6 packet (with a hop-by-hop Router Alert header if asked). */
export function ipv6Packet(o: IpOptions): Buffer {
  const hbh = o.routerAlert ? Buffer.from([o.proto, 0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]) : Buffer.alloc(0); // RFC 2711: value 0, then PadN
  const h = Buffer.alloc(40);
  h.writeUInt32BE((6 << 28) | ((o.tos ?? 0) << 20), 0);
  h.writeUInt16BE(hbh.length + o.payload.length, 4);
  h[6] = o.routerAlert ? 0 : o.proto; h[7] = o.ttl ?? 64;
  addressBytes(o.src).copy(h, 8); addressBytes(o.dst).copy(h, 24);
  return Buffer.concat([h, hbh, o.payload]);
}

/** An IP packet of the addresses' family. */
export function ipPacket(o: IpOptions): Buffer {
  return o.src.includes(':') ? ipv6Packet(o) : ipv4Packet(o);
}

/** A UDP datagram in an IP packet of the addresses' family, UDP checksum computed. */
export function udpPacket(o: { src: string; dst: string; sport: number; dport: number; payload: Uint8Array; ttl?: number }): Buffer {
  const u = Buffer.alloc(8 + o.payload.length);
  u.writeUInt16BE(o.sport, 0); u.writeUInt16BE(o.dport, 2); u.writeUInt16BE(u.length, 4);
  u.set(o.payload, 8);
  const src = addressBytes(o.src), dst = addressBytes(o.dst);
  // the pseudo-header: RFC 768 for IPv4 (protocol, length), RFC 8200 section 8.1 for IPv6
  const tail = src.length === 16 ? Buffer.from([0, 0, u.length >> 8, u.length & 0xff, 0, 0, 0, IPPROTO_UDP]) : Buffer.from([0, IPPROTO_UDP, u.length >> 8, u.length & 0xff]);
  const sum = inetChecksum(u, onesComplementSum(Buffer.concat([src, dst, tail])));
  u.writeUInt16BE(sum === 0 ? 0xffff : sum, 6); // RFC 768: a computed zero is sent as all ones
  return ipPacket({ src: o.src, dst: o.dst, proto: IPPROTO_UDP, payload: u, ttl: o.ttl });
}
