/* A streaming reader of pcap (tcpdump -w) and pcapng (Wireshark, dumpcap) captures, in
 * constant memory: bytes go in as they come (a file or a live `tcpdump -U -w -`), records
 * come out decoded to what qosd measures (time, DS field, addresses, ports, TCP flags, the
 * start of the payload). Every length is checked against what is there; a bad file gets a
 * QosError with the byte offset. pcapng: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng */

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
  /** the captured part of the transport payload (may be cut short by the snap length); for
   * protocols other than TCP and UDP, the bytes after the IP header (RSVP, protocol 46; IPv6
   * extension headers are not followed, so they come first) */
  payload: Buffer;
}

export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;

const LINK_ETHERNET = 1;
const LINK_RAW = 101;
const LINK_LINUX_SLL = 113;
const LINK_LINUX_SLL2 = 276;
const LINK_TYPES = [LINK_ETHERNET, LINK_RAW, LINK_LINUX_SLL, LINK_LINUX_SLL2];
const PCAPNG_SHB = 0x0a0d0d0a;
/** A pcapng block longer than this is taken as corruption. */
const MAX_BLOCK = 16 << 20;
const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
/** Larger records than this are taken as corruption (tcpdump's own limit is 256 KiB). */
const MAX_RECORD = 262_144;

function fail(offset: number, message: string): never {
  throw new QosError('QOS_ERR_CAPTURE', `capture, byte ${offset}: ${message}`);
}

/** Feeds capture bytes in order; calls onPacket for each IP packet (others are skipped). */
export class PcapReader {
  private buf: Buffer = Buffer.alloc(0);
  /** file offset of buf[0] */
  private offset = 0;
  private format: 'pcap' | 'pcapng' | null = null;
  private little = true;
  // pcap
  private nano = false;
  private linkType = -1;
  // pcapng: the current section's interfaces
  private ifaces: { linkType: number; snaplen: number; unitsPerSec: bigint; offsetSec: bigint }[] = [];
  /** records seen, IP or not */
  records = 0;

  constructor(private readonly onPacket: (p: Packet) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    if (this.format === null) {
      if (this.buf.length < 4) return;
      this.format = this.buf.readUInt32LE(0) === PCAPNG_SHB ? 'pcapng' : 'pcap';
    }
    pos = this.format === 'pcap' ? this.pcapRecords() : this.pcapngBlocks();
    this.offset += pos;
    this.buf = this.buf.subarray(pos);
  }

  /** The input ended: a partial record or header left over is an error. */
  end(): void {
    if (this.format === null) fail(this.offset, this.buf.length ? 'file ends inside the capture header' : 'empty capture');
    if (this.format === 'pcap' && this.linkType < 0) fail(this.offset, 'file ends inside the pcap header');
    if (this.buf.length) fail(this.offset, `file ends inside a ${this.format === 'pcap' ? 'record' : 'block'} (${this.buf.length} bytes of it present)`);
  }

  /** Decodes whole pcap records from buf; returns how many bytes were used. */
  private pcapRecords(): number {
    let pos = 0;
    if (this.linkType < 0) {
      if (this.buf.length < GLOBAL_HEADER) return 0;
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
    return pos;
  }

  private header(): void {
    const magic = this.buf.readUInt32LE(0);
    if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.little = true;
    else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.little = false;
    else fail(0, `not a pcap or pcapng file (magic 0x${magic.toString(16)})`);
    const m = this.little ? magic : this.buf.readUInt32BE(0);
    this.nano = m === 0xa1b23c4d;
    const lt = (this.little ? this.buf.readUInt32LE(20) : this.buf.readUInt32BE(20)) & 0x0fffffff;
    if (!LINK_TYPES.includes(lt)) fail(20, `link type ${lt} is not Ethernet, Linux cooked or raw IP`);
    this.linkType = lt;
  }

  /** Decodes whole pcapng blocks from buf; returns how many bytes were used. */
  private pcapngBlocks(): number {
    let pos = 0;
    for (;;) {
      if (this.buf.length - pos < 12) return pos;
      const at = this.offset + pos;
      const type = this.buf.readUInt32LE(pos);
      if (type === PCAPNG_SHB) {
        // the byte order of a section is known from its own header
        const bom = this.buf.readUInt32LE(pos + 8);
        if (bom === 0x1a2b3c4d) this.little = true;
        else if (bom === 0x4d3c2b1a) this.little = false;
        else fail(at + 8, `pcapng section header with byte-order magic 0x${bom.toString(16)}`);
      } else if (at === 0) fail(0, 'not a pcapng section header');
      const u32 = (o: number) => (this.little ? this.buf.readUInt32LE(pos + o) : this.buf.readUInt32BE(pos + o));
      const len = u32(4);
      if (len < 12 || len % 4 !== 0) fail(at + 4, `pcapng block length ${len} (a block is at least 12 bytes, a multiple of 4)`);
      if (len > MAX_BLOCK) fail(at + 4, `pcapng block length ${len} is larger than any packet (corrupt file?)`);
      if (this.buf.length - pos < len) return pos;
      if (u32(len - 4) !== len) fail(at + len - 4, `pcapng block ends with length ${u32(len - 4)}, begins with ${len}`);
      const body = this.buf.subarray(pos + 8, pos + len - 4);
      this.block(this.little ? type : this.buf.readUInt32BE(pos), body, at + 8);
      pos += len;
    }
  }

  private block(type: number, b: Buffer, at: number): void {
    const u16 = (o: number) => (this.little ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (o: number) => (this.little ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const need = (n: number, what: string) => { if (b.length < n) fail(at, `pcapng ${what} block of ${b.length} bytes, needs ${n}`); };
    switch (type) {
      case PCAPNG_SHB:
        need(16, 'section header');
        if (u16(4) !== 1) fail(at + 4, `pcapng major version ${u16(4)} (only 1 exists)`);
        this.ifaces = [];
        return;
      case 1: { // interface description
        need(8, 'interface description');
        const linkType = u16(0);
        if (!LINK_TYPES.includes(linkType)) fail(at, `interface ${this.ifaces.length}: link type ${linkType} is not Ethernet, Linux cooked or raw IP`);
        let unitsPerSec = 1_000_000n, offsetSec = 0n;
        for (let o = 8; o + 4 <= b.length;) { // options: code, length, value padded to 4
          const code = u16(o), olen = u16(o + 2);
          if (code === 0) break;
          if (o + 4 + olen > b.length) fail(at + o + 2, `pcapng option length ${olen} runs past its block`);
          if (code === 9 && olen === 1) { // if_tsresol
            const v = b[o + 4]!;
            if ((v & 0x7f) > (v & 0x80 ? 63 : 18)) fail(at + o + 4, `time resolution ${v} out of range`);
            unitsPerSec = v & 0x80 ? 1n << BigInt(v & 0x7f) : 10n ** BigInt(v);
          } else if (code === 14 && olen === 8) { // if_tsoffset, seconds
            offsetSec = this.little ? b.readBigInt64LE(o + 4) : b.readBigInt64BE(o + 4);
          }
          o += 4 + olen + ((4 - (olen % 4)) % 4);
        }
        this.ifaces.push({ linkType, snaplen: u32(4), unitsPerSec, offsetSec });
        return;
      }
      case 6: case 2: { // enhanced packet; the obsolete packet block
        need(20, type === 6 ? 'enhanced packet' : 'packet');
        const id = type === 6 ? u32(0) : u16(0);
        const ifc = this.ifaces[id];
        if (!ifc) fail(at, `packet on interface ${id}, which the section has not described`);
        const caplen = u32(12);
        if (caplen > b.length - 20) fail(at + 12, `captured length ${caplen} runs past its block (${b.length - 20} bytes)`);
        this.emit(ifc, (BigInt(u32(4)) << 32n) | BigInt(u32(8)), b.subarray(20, 20 + caplen));
        return;
      }
      case 3: { // simple packet: interface 0, no time
        need(4, 'simple packet');
        const ifc = this.ifaces[0];
        if (!ifc) fail(at, 'simple packet before any interface description');
        const orig = u32(0);
        const caplen = Math.min(orig, ifc.snaplen || orig, b.length - 4);
        this.emit(ifc, 0n, b.subarray(4, 4 + caplen));
        return;
      }
      default: // name resolution, statistics, decryption secrets, custom: not ours
    }
  }

  private emit(ifc: { linkType: number; unitsPerSec: bigint; offsetSec: bigint }, units: bigint, data: Buffer): void {
    this.records++;
    const ns = (units * 1_000_000_000n) / ifc.unitsPerSec + ifc.offsetSec * 1_000_000_000n;
    const p = decodeLink(ifc.linkType, data, ns);
    if (p) this.onPacket(p);
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
  // a Total Length of 0 is a packet the sender's segmentation offload (TSO, BIG TCP) has not cut
  // yet: its size is what was captured, as tshark presumes ("reported as 0, presumed TSO")
  const total = d.readUInt16BE(o + 2) || d.length - o;
  const p = base(d, tsNs, 4, d[o + 1]!, total, d[o + 9]!, `${d[o + 12]}.${d[o + 13]}.${d[o + 14]}.${d[o + 15]}`, `${d[o + 16]}.${d[o + 17]}.${d[o + 18]}.${d[o + 19]}`);
  // Only a first fragment carries the transport header.
  return fragOffset === 0 ? transport(p, d, o + ihl, o + Math.max(ihl, p.ipLength)) : p;
}

function ipv6(d: Buffer, o: number, tsNs: bigint): Packet | null {
  if (d.length < o + 40 || d[o]! >> 4 !== 6) return null;
  const tc = ((d.readUInt16BE(o) >> 4) & 0xff);
  const addr = (a: number) => Array.from({ length: 8 }, (_, i) => d.readUInt16BE(a + 2 * i).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
  const p = base(d, tsNs, 6, tc, 40 + d.readUInt16BE(o + 4), d[o + 6]!, addr(o + 8), addr(o + 24));
  const jumbo = d.readUInt16BE(o + 4) === 0 && d[o + 6] === 0 ? jumboLength(d, o + 40) : null;
  if (jumbo) {
    // a jumbogram (RFC 2675): its length in the hop-by-hop header's Jumbo Payload option, its
    // transport after that header
    p.ipLength = 40 + jumbo.payload;
    p.proto = jumbo.next;
    return transport(p, d, o + 40 + jumbo.hbh, o + p.ipLength);
  }
  return transport(p, d, o + 40, o + p.ipLength); // extension headers are not followed
}

/** The Jumbo Payload option (type 0xC2, 4 bytes) of the hop-by-hop header at o, with the header's
 * length and next header; null if there is none. */
function jumboLength(d: Buffer, o: number): { payload: number; next: number; hbh: number } | null {
  if (d.length < o + 8) return null;
  const hbh = (d[o + 1]! + 1) * 8;
  for (let i = o + 2; i < Math.min(o + hbh, d.length);) {
    const type = d[i]!;
    if (type === 0) { i++; continue; } // Pad1
    if (i + 2 > d.length) break;
    const len = d[i + 1]!;
    if (type === 0xc2 && len === 4 && i + 6 <= d.length) return { payload: d.readUInt32BE(i + 2), next: d[o]!, hbh };
    i += 2 + len;
  }
  return null;
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
  } else if (p.proto !== 6 && p.proto !== 17) {
    p.payload = d.subarray(Math.min(o, stop), stop);
  }
  return p;
}
