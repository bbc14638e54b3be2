/* A streaming reader of pcap (tcpdump -w) and pcapng (Wireshark, dumpcap) captures, in
 * constant memory: bytes go in as they come (a file or a live `tcpdump -U -w -`), records
 * come out decoded to what qosd measures (time, DS field, addresses, ports, TCP flags, the
 * start of the payload). Every length is checked against what is there; a file whose
 * structure is broken gets a QosError with the byte offset, one bad record (a time out of
 * range, an IP header that cannot be read) is skipped as damaged with a warning, and records
 * of link types not read are counted. Versions and the link-type field are checked as libpcap checks them.
 * pcap: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap; pcapng:
 * https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng */

import { QosError } from '../errors.js';
import { linkTypeName, READ_LINK_TYPES, type CaptureSummary } from './summary.js';

export { linkTypeName, type CaptureSummary } from './summary.js';

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

const PCAPNG_SHB = 0x0a0d0d0a;
/** A pcapng block longer than this is taken as corruption. */
const MAX_BLOCK = 16 << 20;
const GLOBAL_HEADER = 24;
/** Larger records than this are taken as corruption (tcpdump's own limit is 256 KiB). */
const MAX_RECORD = 262_144;
/** Warnings kept about one capture (damaged records, link types not read); past that counted. */
const MAX_WARNINGS = 20;

function fail(offset: number, message: string): never {
  throw new QosError('QOS_ERR_CAPTURE', `capture, byte ${offset}: ${message}`);
}

/** Seconds since the epoch with nine decimals, from nanoseconds. */
export function epochSeconds(ns: bigint): string {
  const neg = ns < 0n, a = neg ? -ns : ns;
  return `${neg ? '-' : ''}${a / 1_000_000_000n}.${String(a % 1_000_000_000n).padStart(9, '0')}`;
}

interface Iface { linkType: number; read: boolean; snaplen: number; unitsPerSec: bigint; offsetSec: bigint; fcs: number }

/** Feeds capture bytes in order; calls onPacket for each IP packet. Records of a link type
 * not read are skipped and counted (`skipped`), a record with an impossible time or an IP
 * header that cannot be read is skipped as damaged with a warning; a file whose structure is
 * broken is a QosError. */
export class PcapReader {
  private buf: Buffer = Buffer.alloc(0);
  /** file offset of buf[0] */
  private offset = 0;
  private format: 'pcap' | 'pcapng' | null = null;
  private little = true;
  // pcap
  private nano = false;
  private recordHeader = 16;
  /** caplen and len change places: 'swapped' before version 2.3, 'maybe' in 2.3 (libpcap) */
  private lengths: 'normal' | 'swapped' | 'maybe' = 'normal';
  private pcapIface: Iface | null = null;
  // pcapng: the current section's interfaces
  private ifaces: Iface[] = [];
  private sections = 0;
  /** records seen, IP or not (tshark's frame number of the last one) */
  records = 0;
  private ipPackets = 0;
  private ipBytes = 0;
  private first: bigint | null = null;
  private last: bigint | null = null;
  private notIp = 0;
  private damaged = 0;
  private readonly skipped = new Map<number, number>();
  /** what was skipped and why, at most MAX_WARNINGS of them (the rest counted in warningsLeftOff) */
  readonly warnings: string[] = [];
  warningsLeftOff = 0;

  constructor(private readonly onPacket: (p: Packet) => void) {}

  /** What the capture held so far. */
  summary(): CaptureSummary {
    const skipped: Record<string, number> = {};
    for (const [t, n] of [...this.skipped].sort((a, b) => a[0] - b[0])) skipped[String(t)] = n;
    return {
      format: this.format, records: this.records, ip_packets: this.ipPackets, ip_bytes: this.ipBytes,
      first_s: this.first === null ? null : epochSeconds(this.first), last_s: this.last === null ? null : epochSeconds(this.last),
      not_ip: this.notIp, damaged: this.damaged, skipped,
    };
  }

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
    if (this.format === 'pcap' && !this.pcapIface) fail(this.offset, 'file ends inside the pcap header');
    if (this.buf.length) fail(this.offset, `file ends inside a ${this.format === 'pcap' ? 'record' : 'block'} (${this.buf.length} bytes of it present)`);
  }

  private warn(offset: number, message: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(`capture, byte ${offset}: ${message}`);
    else this.warningsLeftOff++;
  }

  /** Decodes whole pcap records from buf; returns how many bytes were used. */
  private pcapRecords(): number {
    let pos = 0;
    if (!this.pcapIface) {
      if (this.buf.length < GLOBAL_HEADER) return 0;
      this.header();
      pos = GLOBAL_HEADER;
    }
    const ifc = this.pcapIface!;
    while (this.buf.length - pos >= this.recordHeader) {
      const rd = (o: number) => (this.little ? this.buf.readUInt32LE(pos + o) : this.buf.readUInt32BE(pos + o));
      let incl = rd(8), orig = rd(12);
      if (this.lengths === 'swapped' || (this.lengths === 'maybe' && incl > orig)) [incl, orig] = [orig, incl];
      const at = this.offset + pos;
      if (incl > MAX_RECORD) fail(at + 8, `record length ${incl} is larger than any packet (corrupt file?)`);
      if (this.buf.length - pos - this.recordHeader < incl) break;
      const sec = rd(0), frac = rd(4);
      const data = this.buf.subarray(pos + this.recordHeader, pos + this.recordHeader + incl);
      pos += this.recordHeader + incl;
      this.records++;
      if (frac >= (this.nano ? 1_000_000_000 : 1_000_000)) {
        this.damaged++;
        this.warn(at + 4, `record ${this.records}: sub-second time ${frac} is out of range (${this.nano ? 'ns' : 'µs'}): skipped as damaged`);
        continue;
      }
      this.frame(ifc, BigInt(sec) * 1_000_000_000n + BigInt(this.nano ? frac : frac * 1000), data, orig, at);
    }
    return pos;
  }

  /** The pcap file header, checked as libpcap checks it (sf-pcap.c). */
  private header(): void {
    const magic = this.buf.readUInt32LE(0);
    // 0xa1b2cd34: the "modified" pcap of Alexey Kuznetzov's patch, with 8 more bytes per record
    if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d || magic === 0xa1b2cd34) this.little = true;
    else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1 || magic === 0x34cdb2a1) this.little = false;
    else fail(0, `not a pcap or pcapng file (magic 0x${magic.toString(16)})`);
    const m = this.little ? magic : this.buf.readUInt32BE(0);
    this.nano = m === 0xa1b23c4d;
    this.recordHeader = m === 0xa1b2cd34 ? 24 : 16;
    const u16 = (o: number) => (this.little ? this.buf.readUInt16LE(o) : this.buf.readUInt16BE(o));
    const major = u16(4), minor = u16(6);
    if (!((major === 2 && minor <= 4) || (major === 543 && minor === 0))) fail(4, `pcap version ${major}.${minor}: there is none such (libpcap reads 2.0 to 2.4, and DG/UX's 543.0)`);
    this.lengths = major === 543 || minor < 3 ? 'swapped' : minor === 3 ? 'maybe' : 'normal';
    const field = this.little ? this.buf.readUInt32LE(20) : this.buf.readUInt32BE(20);
    // the link type is the low 16 bits; above them 10 reserved bits, the FCS flag and length
    if (field & 0x03ff0000) fail(20, `link type field 0x${field.toString(16).padStart(8, '0')} has its reserved bits set (as libpcap, refused)`);
    const linkType = field & 0xffff;
    this.pcapIface = this.iface(linkType, 20, 0, 1n, 0n, field & 0x04000000 ? ((field >>> 28) & 0xf) * 2 : 0);
  }

  /** An interface (the pcap file's one, or a pcapng description); one of a link type not read
   * is kept, to count its records, with a warning. */
  private iface(linkType: number, at: number, snaplen: number, unitsPerSec: bigint, offsetSec: bigint, fcs: number): Iface {
    const read = READ_LINK_TYPES.has(linkType);
    if (!read) this.warn(at, `link type ${linkTypeName(linkType)} is not one qosd reads (${[...new Set(READ_LINK_TYPES.values())].join(', ')}): its records are skipped`);
    return { linkType, read, snaplen, unitsPerSec, offsetSec, fcs };
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
      case PCAPNG_SHB: {
        need(16, 'section header');
        // as libpcap (sf-pcapng.c): the first section 1.0 or 1.2 (which some writers put), any
        // later one of major version 1
        const major = u16(4), minor = u16(6);
        if (major !== 1 || (this.sections === 0 && minor !== 0 && minor !== 2)) fail(at + 4, `pcapng version ${major}.${minor}: there is none such (libpcap reads 1.0, and 1.2 which some writers put)`);
        this.sections++;
        this.ifaces = [];
        return;
      }
      case 1: { // interface description
        need(8, 'interface description');
        let unitsPerSec = 1_000_000n, offsetSec = 0n, fcs = 0;
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
          } else if (code === 13 && olen === 1) { // if_fcslen, bytes of FCS at the end of each frame
            fcs = b[o + 4]!;
          }
          o += 4 + olen + ((4 - (olen % 4)) % 4);
        }
        this.ifaces.push(this.iface(u16(0), at, u32(4), unitsPerSec, offsetSec, fcs));
        return;
      }
      case 6: case 2: { // enhanced packet; the obsolete packet block
        need(20, type === 6 ? 'enhanced packet' : 'packet');
        const id = type === 6 ? u32(0) : u16(0);
        const ifc = this.ifaces[id];
        if (!ifc) fail(at, `packet on interface ${id}, which the section has not described`);
        const caplen = u32(12);
        if (caplen > b.length - 20) fail(at + 12, `captured length ${caplen} runs past its block (${b.length - 20} bytes)`);
        this.records++;
        this.frame(ifc, this.time(ifc, (BigInt(u32(4)) << 32n) | BigInt(u32(8))), b.subarray(20, 20 + caplen), u32(16), at - 8);
        return;
      }
      case 3: { // simple packet: interface 0, no time
        need(4, 'simple packet');
        const ifc = this.ifaces[0];
        if (!ifc) fail(at, 'simple packet before any interface description');
        const orig = u32(0);
        const caplen = Math.min(orig, ifc.snaplen || orig, b.length - 4);
        this.records++;
        this.frame(ifc, this.time(ifc, 0n), b.subarray(4, 4 + caplen), orig, at - 8);
        return;
      }
      default: // name resolution, statistics, decryption secrets, custom: not ours
    }
  }

  private time(ifc: Iface, units: bigint): bigint {
    return (units * 1_000_000_000n) / ifc.unitsPerSec + ifc.offsetSec * 1_000_000_000n;
  }

  /** One record's frame (its original length orig, the record at byte at): decoded, or counted
   * as skipped, damaged or not IP. */
  private frame(ifc: Iface, tsNs: bigint, data: Buffer, orig: number, at: number): void {
    if (!ifc.read) { this.skipped.set(ifc.linkType, (this.skipped.get(ifc.linkType) ?? 0) + 1); return; }
    // a frame ends with its FCS when the file says so: taken off the bytes captured, or out of
    // those lost when the capture cut the frame
    let lost = Math.max(0, orig - data.length);
    if (ifc.fcs) {
      const kept = Math.max(0, ifc.fcs - lost);
      lost -= ifc.fcs - kept;
      data = data.subarray(0, Math.max(0, data.length - kept));
    }
    const p = decodeLink(ifc.linkType, data, tsNs, lost);
    if (p === null) { this.notIp++; return; }
    if (typeof p === 'string') {
      this.damaged++;
      this.warn(at, `record ${this.records}: ${p}: skipped as damaged`);
      return;
    }
    this.ipPackets++;
    this.ipBytes += p.ipLength;
    this.first ??= tsNs;
    this.last = tsNs;
    this.onPacket(p);
  }
}

/** What a frame held: its IP packet; a string saying why the IP header in it cannot be read
 * (damaged, or cut short by the capture); or null when it holds no IP packet. */
export type Decoded = Packet | string | null;

/** The IP packet inside one link-layer frame. lost: bytes of the frame on the wire that the
 * capture did not keep (its snap length), for the sizes the IP header does not give. */
export function decodeLink(linkType: number, d: Buffer, tsNs: bigint, lost = 0): Decoded {
  switch (linkType) {
    case 1: return d.length < 14 ? null : network(d, 14, d.readUInt16BE(12), tsNs, lost); // Ethernet
    case 113: return d.length < 16 ? null : network(d, 16, d.readUInt16BE(14), tsNs, lost); // Linux cooked
    case 276: return d.length < 20 ? null : network(d, 20, d.readUInt16BE(0), tsNs, lost); // Linux cooked v2
    case 0: case 108: { // the address family, in the capturing host's byte order (0), or network order (108)
      if (d.length < 4) return null;
      let af = linkType === 108 ? d.readUInt32BE(0) : d.readUInt32LE(0);
      if (af > 0xffff) af = d.readUInt32BE(0);
      // AF_INET; AF_INET6 on NetBSD and OpenBSD, FreeBSD, Darwin (Linux does not write these)
      return network(d, 4, af === 2 ? 0x0800 : af === 24 || af === 28 || af === 30 ? 0x86dd : -1, tsNs, lost);
    }
    case 9: case 50: { // PPP, perhaps behind HDLC's address and control bytes; or Cisco HDLC
      if (d.length < 4) return null;
      if (linkType === 50 && (d[0] === 0x0f || d[0] === 0x8f)) return network(d, 4, d.readUInt16BE(2), tsNs, lost);
      const o = d[0] === 0xff && d[1] === 0x03 ? 2 : 0;
      // a protocol field compressed to one byte is odd
      const [proto, at] = d[o]! & 1 ? [d[o]!, o + 1] : [d.readUInt16BE(o), o + 2];
      return network(d, at, PPP_TYPES.get(proto) ?? -1, tsNs, lost);
    }
    case 104: return d.length < 4 ? null : network(d, 4, d.readUInt16BE(2), tsNs, lost); // Cisco HDLC
    case 239: return nflog(d, tsNs, lost);
    case 228: return ipv4(d, 0, tsNs, lost, 'raw IPv4');
    case 229: return ipv6(d, 0, tsNs, lost, 'raw IPv6');
    case 12: case 14: case 101: return ipByVersion(d, tsNs, lost, 'raw IP');
    default: return null;
  }
}

/** PPP protocol numbers, as EtherTypes: IPv4, IPv6, MPLS unicast and multicast. */
const PPP_TYPES = new Map([[0x21, 0x0800], [0x57, 0x86dd], [0x281, 0x8847], [0x283, 0x8848]]);

/** The IP packet behind an EtherType at offset o, following VLAN tags (802.1Q, 802.1ad QinQ),
 * MPLS labels, LLC/SNAP, integrity-only MACsec and Arista's timestamp header. */
function network(d: Buffer, o: number, type: number, tsNs: bigint, lost: number): Decoded {
  // IP at once, as most frames are: kept small for the compiler to inline
  if (type === 0x0800) return ipv4(d, o, tsNs, lost, 'EtherType IPv4');
  if (type === 0x86dd) return ipv6(d, o, tsNs, lost, 'EtherType IPv6');
  return encapsulated(d, o, type, tsNs, lost);
}

/** network() for the EtherTypes that are not IP. */
function encapsulated(d: Buffer, o: number, type: number, tsNs: bigint, lost: number): Decoded {
  for (;;) {
    switch (type) {
      case 0x0800: return ipv4(d, o, tsNs, lost, 'EtherType IPv4');
      case 0x86dd: return ipv6(d, o, tsNs, lost, 'EtherType IPv6');
      case 0x8100: case 0x88a8: case 0x9100: // a VLAN tag: TCI, then the EtherType within
        if (d.length < o + 4) return null;
        type = d.readUInt16BE(o + 2); o += 4;
        continue;
      case 0x8847: case 0x8848: // MPLS: labels to the bottom of the stack, then IP by its version
        for (;;) {
          if (d.length < o + 5) return null;
          const bottom = d[o + 2]! & 1;
          o += 4;
          if (bottom) break;
        }
        return d[o]! >> 4 === 4 ? ipv4(d, o, tsNs, lost, 'MPLS') : d[o]! >> 4 === 6 ? ipv6(d, o, tsNs, lost, 'MPLS') : null;
      case 0x88e5: { // MACsec: a SecTAG (with the SCI when its bit says), the data, a 16-byte ICV
        if (d.length < o + 1) return null;
        const tci = d[o]!;
        if (tci & 0x0c) return null; // encrypted or changed: nothing to read
        const tag = tci & 0x20 ? 14 : 6;
        const icvKept = Math.max(0, 16 - lost); // the ICV ends the frame: the capture may have cut it
        if (d.length < o + tag + 2 + icvKept) return null;
        return network(d.subarray(0, d.length - icvKept), o + tag + 2, d.readUInt16BE(o + tag), tsNs, lost - (16 - icvKept));
      }
      case 0xd28b: { // Arista's timestamp: subtype 1, timescale, format (64 or 48 bits), time
        if (d.length < o + 4 || d.readUInt16BE(o) !== 1) return null;
        const format = d[o + 3]! >> 4;
        const n = format === 1 ? 8 : format === 2 ? 6 : -1;
        if (n < 0 || d.length < o + 4 + n + 2) return null;
        type = d.readUInt16BE(o + 4 + n); o += 4 + n + 2;
        continue;
      }
      default:
        // an 802.3 length, not a type: LLC with a SNAP header (AA AA 03, OUI) names the type
        if (type >= 0 && type <= 1500 && d.length >= o + 8 && d[o] === 0xaa && d[o + 1] === 0xaa && d[o + 2] === 0x03) {
          type = d.readUInt16BE(o + 6); o += 8;
          continue;
        }
        return null;
    }
  }
}

/** Linux NFLOG (`tcpdump -i nflog:N`): a header (family, version, group), then TLVs of the
 * capturing host's byte order, each padded to 4 bytes; the packet is the payload TLV (type 9). */
function nflog(d: Buffer, tsNs: bigint, lost: number): Decoded {
  if (d.length < 4) return null;
  for (const little of [true, false]) {
    for (let o = 4; o + 4 <= d.length;) {
      const len = little ? d.readUInt16LE(o) : d.readUInt16BE(o);
      const type = (little ? d.readUInt16LE(o + 2) : d.readUInt16BE(o + 2)) & 0x7fff;
      if (len < 4 || o + len > d.length) break; // not this byte order, or cut
      if (type === 9) {
        return ipByVersion(d.subarray(o + 4, o + len), tsNs, lost, 'NFLOG');
      }
      o += (len + 3) & ~3;
    }
  }
  return null;
}

/** A bare IP packet (raw IP, NFLOG's payload): its version says which; none if it is empty. */
function ipByVersion(d: Buffer, tsNs: bigint, lost: number, what: string): Decoded {
  return d.length < 1 ? null : d[0]! >> 4 === 6 ? ipv6(d, 0, tsNs, lost, what) : ipv4(d, 0, tsNs, lost, what);
}

/** The bytes from o to the end of the frame as it was on the wire. */
const wire = (d: Buffer, o: number, lost: number) => d.length - o + lost;

function ipv4(d: Buffer, o: number, tsNs: bigint, lost: number, what: string): Decoded {
  if (d.length < o + 20) return `${what}: IPv4 header cut short (${d.length - o} bytes)`;
  if (d[o]! >> 4 !== 4) return `${what}: IP version ${d[o]! >> 4}, not 4`;
  const ihl = (d[o]! & 0x0f) * 4;
  if (ihl < 20) return `${what}: IPv4 header length ${ihl}, less than 20`;
  const fragOffset = d.readUInt16BE(o + 6) & 0x1fff;
  // a Total Length of 0 is a packet the sender's segmentation offload (TSO, BIG TCP) has not cut
  // yet: its size is its length on the wire, as tshark presumes ("reported as 0, presumed TSO")
  const total = d.readUInt16BE(o + 2) || wire(d, o, lost);
  const p = base(d, tsNs, 4, d[o + 1]!, total, d[o + 9]!, `${d[o + 12]}.${d[o + 13]}.${d[o + 14]}.${d[o + 15]}`, `${d[o + 16]}.${d[o + 17]}.${d[o + 18]}.${d[o + 19]}`);
  // Only a first fragment carries the transport header, and only after options all captured.
  return fragOffset === 0 && d.length >= o + ihl ? transport(p, d, o + ihl, o + Math.max(ihl, p.ipLength)) : p;
}

function ipv6(d: Buffer, o: number, tsNs: bigint, lost: number, what: string): Decoded {
  if (d.length < o + 40) return `${what}: IPv6 header cut short (${d.length - o} bytes)`;
  if (d[o]! >> 4 !== 6) return `${what}: IP version ${d[o]! >> 4}, not 6`;
  const tc = ((d.readUInt16BE(o) >> 4) & 0xff);
  const addr = (a: number) => Array.from({ length: 8 }, (_, i) => d.readUInt16BE(a + 2 * i).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
  const plen = d.readUInt16BE(o + 4);
  const p = base(d, tsNs, 6, tc, 40 + plen, d[o + 6]!, addr(o + 8), addr(o + 24));
  if (plen === 0) {
    // a jumbogram (RFC 2675): its length in the hop-by-hop header's Jumbo Payload option (over
    // 65,535 and within the frame), its transport after that header
    const jumbo = d[o + 6] === 0 ? jumboLength(d, o + 40) : null;
    if (jumbo && jumbo.payload > 0xffff && 40 + jumbo.payload <= wire(d, o, lost)) {
      p.ipLength = 40 + jumbo.payload;
      p.proto = jumbo.next;
      return transport(p, d, o + 40 + jumbo.hbh, o + p.ipLength);
    }
    // otherwise, as an IPv4 Total Length of 0: a packet before segmentation offload (BIG TCP
    // takes the hop-by-hop header off), as long as it was on the wire
    p.ipLength = wire(d, o, lost);
    if (jumbo) { p.proto = jumbo.next; return transport(p, d, o + 40 + jumbo.hbh, o + p.ipLength); }
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
