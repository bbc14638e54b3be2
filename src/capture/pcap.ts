/* A streaming reader of classic pcap files (tcpdump -w), in constant memory: bytes go in as
 * they come (a file or a live `tcpdump -U -w -`), records come out decoded to what qosd
 * measures (time, DS field, addresses, ports, TCP flags, the start of the payload). Every
 * length is checked against what is there; a bad file gets a QosError with the byte offset. */

import { QosError } from '../errors.js';

/** One captured IP packet. */
export interface Packet {
  /** capture time, nanoseconds since the epoch */
  tsNs: bigint;
  /** length of the IP packet on the wire (header + payload), as the IP header says */
  ipLength: number;
  /** the DS field byte (IPv4 TOS, IPv6 traffic class) */
  tos: number;
  family: 4 | 6;
  src: string;
  dst: string;
  /** IP protocol number (6 TCP, 17 UDP) */
  proto: number;
  sport: number;
  dport: number;
  /** TCP flags byte, 0 for other protocols */
  tcpFlags: number;
  /** the captured part of the transport payload (may be cut short by the snap length) */
  payload: Buffer;
}

export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;

const LINK_ETHERNET = 1;
const LINK_RAW = 101;
const LINK_LINUX_SLL = 113;
const LINK_LINUX_SLL2 = 276;
const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
/** Larger records than this are taken as corruption (tcpdump's own limit is 256 KiB). */
const MAX_RECORD = 262_144;

function fail(offset: number, message: string): never {
  throw new QosError('QOS_ERR_CAPTURE', `pcap, byte ${offset}: ${message}`);
}

/** Feeds pcap bytes in order; calls onPacket for each IP packet (others are skipped). */
export class PcapReader {
  private buf: Buffer = Buffer.alloc(0);
  /** file offset of buf[0] */
  private offset = 0;
  private little = true;
  private nano = false;
  private linkType = -1;
  /** records seen, IP or not */
  records = 0;

  constructor(private readonly onPacket: (p: Packet) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    if (this.linkType < 0) {
      if (this.buf.length < GLOBAL_HEADER) return;
      this.header();
      pos = GLOBAL_HEADER;
    }
    while (this.buf.length - pos >= RECORD_HEADER) {
      const rd = (o: number) => (this.little ? this.buf.readUInt32LE(pos + o) : this.buf.readUInt32BE(pos + o));
      const incl = rd(8);
      if (incl > MAX_RECORD) fail(this.offset + pos + 8, `record length ${incl} is larger than any packet (corrupt file?)`);
      if (this.buf.length - pos - RECORD_HEADER < incl) break;
      const sec = BigInt(rd(0));
      const frac = BigInt(rd(4));
      if (frac >= (this.nano ? 1_000_000_000n : 1_000_000n)) fail(this.offset + pos + 4, `sub-second time ${frac} out of range`);
      const ts = sec * 1_000_000_000n + (this.nano ? frac : frac * 1000n);
      const data = this.buf.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + incl);
      this.records++;
      const p = decodeLink(this.linkType, data, ts);
      if (p) this.onPacket(p);
      pos += RECORD_HEADER + incl;
    }
    this.offset += pos;
    this.buf = this.buf.subarray(pos);
  }

  /** The input ended: a partial record or header left over is an error. */
  end(): void {
    if (this.linkType < 0) fail(this.offset, this.buf.length ? 'file ends inside the pcap header' : 'empty capture');
    if (this.buf.length) fail(this.offset, `file ends inside a record (${this.buf.length} bytes of it present)`);
  }

  private header(): void {
    const magic = this.buf.readUInt32LE(0);
    if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.little = true;
    else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.little = false;
    else if (magic === 0x0a0d0d0a) fail(0, 'this is pcapng, which this reader does not take yet (tcpdump -w writes pcap)');
    else fail(0, `not a pcap file (magic 0x${magic.toString(16)})`);
    const m = this.little ? magic : this.buf.readUInt32BE(0);
    this.nano = m === 0xa1b23c4d;
    const lt = (this.little ? this.buf.readUInt32LE(20) : this.buf.readUInt32BE(20)) & 0x0fffffff;
    if (![LINK_ETHERNET, LINK_RAW, LINK_LINUX_SLL, LINK_LINUX_SLL2].includes(lt)) fail(20, `link type ${lt} is not Ethernet, Linux cooked or raw IP`);
    this.linkType = lt;
  }
}

/** The IP packet inside one link-layer frame, or null if it holds none. */
export function decodeLink(linkType: number, d: Buffer, tsNs: bigint): Packet | null {
  let off: number;
  let etherType: number;
  switch (linkType) {
    case LINK_ETHERNET: {
      if (d.length < 14) return null;
      off = 14;
      etherType = d.readUInt16BE(12);
      while ((etherType === 0x8100 || etherType === 0x88a8) && d.length >= off + 4) { // VLAN tags
        etherType = d.readUInt16BE(off + 2);
        off += 4;
      }
      break;
    }
    case LINK_LINUX_SLL:
      if (d.length < 16) return null;
      off = 16; etherType = d.readUInt16BE(14);
      break;
    case LINK_LINUX_SLL2:
      if (d.length < 20) return null;
      off = 20; etherType = d.readUInt16BE(0);
      break;
    default:
      if (d.length < 1) return null;
      off = 0; etherType = d[0]! >> 4 === 6 ? 0x86dd : 0x0800;
  }
  if (etherType === 0x0800) return ipv4(d, off, tsNs);
  if (etherType === 0x86dd) return ipv6(d, off, tsNs);
  return null;
}

function ipv4(d: Buffer, o: number, tsNs: bigint): Packet | null {
  if (d.length < o + 20 || d[o]! >> 4 !== 4) return null;
  const ihl = (d[o]! & 0x0f) * 4;
  if (ihl < 20 || d.length < o + ihl) return null;
  const fragOffset = d.readUInt16BE(o + 6) & 0x1fff;
  const p = base(d, tsNs, 4, d[o + 1]!, d.readUInt16BE(o + 2), d[o + 9]!, `${d[o + 12]}.${d[o + 13]}.${d[o + 14]}.${d[o + 15]}`, `${d[o + 16]}.${d[o + 17]}.${d[o + 18]}.${d[o + 19]}`);
  // Only a first fragment carries the transport header.
  return fragOffset === 0 ? transport(p, d, o + ihl, o + Math.max(ihl, p.ipLength)) : p;
}

function ipv6(d: Buffer, o: number, tsNs: bigint): Packet | null {
  if (d.length < o + 40 || d[o]! >> 4 !== 6) return null;
  const tc = ((d.readUInt16BE(o) >> 4) & 0xff);
  const addr = (a: number) => Array.from({ length: 8 }, (_, i) => d.readUInt16BE(a + 2 * i).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
  const p = base(d, tsNs, 6, tc, 40 + d.readUInt16BE(o + 4), d[o + 6]!, addr(o + 8), addr(o + 24));
  return transport(p, d, o + 40, o + p.ipLength); // extension headers are not followed
}

function base(d: Buffer, tsNs: bigint, family: 4 | 6, tos: number, ipLength: number, proto: number, src: string, dst: string): Packet {
  return { tsNs, ipLength, tos, family, src, dst, proto, sport: 0, dport: 0, tcpFlags: 0, payload: d.subarray(0, 0) };
}

function transport(p: Packet, d: Buffer, o: number, end: number): Packet {
  const stop = Math.min(d.length, end);
  if (p.proto === 17 && stop >= o + 8) {
    p.sport = d.readUInt16BE(o); p.dport = d.readUInt16BE(o + 2);
    p.payload = d.subarray(o + 8, stop);
  } else if (p.proto === 6 && stop >= o + 20) {
    p.sport = d.readUInt16BE(o); p.dport = d.readUInt16BE(o + 2);
    p.tcpFlags = d[o + 13]!;
    const doff = (d[o + 12]! >> 4) * 4;
    p.payload = d.subarray(Math.min(stop, o + doff), stop);
  }
  return p;
}
