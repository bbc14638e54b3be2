import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { QosError } from '../errors.js';
import { PcapReader, TCP_ACK, TCP_SYN, type Packet } from './pcap.js';
import { requireTools } from '../prerequisites.js';

function header(linkType = 1, nano = true): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4); b.writeUInt16LE(4, 6);
  b.writeUInt32LE(262144, 16);
  b.writeUInt32LE(linkType, 20);
  return b;
}

/** A pcap record; orig: the frame's length on the wire (default what is captured). */
function record(sec: number, frac: number, frame: Buffer, orig = frame.length): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(sec, 0); h.writeUInt32LE(frac, 4); h.writeUInt32LE(frame.length, 8); h.writeUInt32LE(orig, 12);
  return Buffer.concat([h, frame]);
}

function udp4(tos: number, payload: Buffer, sport = 4000, dport = 5004): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip[1] = tos; ip.writeUInt16BE(20 + 8 + payload.length, 2); ip[8] = 64; ip[9] = 17;
  Buffer.from([10, 91, 1, 2]).copy(ip, 12); Buffer.from([10, 91, 3, 2]).copy(ip, 16);
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0); u.writeUInt16BE(dport, 2); u.writeUInt16BE(8 + payload.length, 4);
  const eth = Buffer.alloc(14); eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, u, payload]);
}

function tcp6(flags: number): Buffer {
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE((6 << 28) | (0xb8 << 20), 0); ip.writeUInt16BE(20, 4); ip[6] = 6; ip[7] = 64;
  ip.writeUInt16BE(0xfd00, 8); ip.writeUInt16BE(1, 22); ip.writeUInt16BE(0xfd00, 24); ip.writeUInt16BE(2, 38);
  const t = Buffer.alloc(20); t.writeUInt16BE(40000, 0); t.writeUInt16BE(5005, 2); t[12] = 5 << 4; t[13] = flags;
  const sll2 = Buffer.alloc(20); sll2.writeUInt16BE(0x86dd, 0);
  return Buffer.concat([sll2, ip, t]);
}

/** IPv6/TCP over Ethernet (the SLL2 frame's IP packet behind an Ethernet header). */
function tcpEth(): Buffer {
  const eth = Buffer.alloc(14); eth.writeUInt16BE(0x86dd, 12);
  return Buffer.concat([eth, tcp6(TCP_SYN | TCP_ACK).subarray(20)]);
}

function read(chunks: Buffer[]): Packet[] {
  const out: Packet[] = [];
  const r = new PcapReader((p) => out.push(p));
  for (const c of chunks) r.push(c);
  r.end();
  return out;
}

const file = Buffer.concat([header(), record(1_700_000_000, 123_456_789, udp4(184, Buffer.from('QMD1payload'))), record(1_700_000_001, 5, udp4(0, Buffer.alloc(3)))]);

test('reads IPv4/UDP over Ethernet: time in ns, DS field, addresses, ports, payload', () => {
  const [a, b] = read([file]);
  assert.equal(a!.tsNs, 1_700_000_000_123_456_789n);
  assert.deepEqual({ tos: a!.tos, src: a!.src, dst: a!.dst, proto: a!.proto, sport: a!.sport, dport: a!.dport, len: a!.ipLength }, { tos: 184, src: '10.91.1.2', dst: '10.91.3.2', proto: 17, sport: 4000, dport: 5004, len: 39 });
  assert.equal(a!.payload.toString(), 'QMD1payload');
  assert.equal(b!.tsNs, 1_700_000_001_000_000_005n);
});

test('the same packets whatever the chunking, down to one byte at a time', () => {
  const whole = read([file]);
  const bytes = read([...file].map((x) => Buffer.from([x])));
  assert.deepEqual(bytes.map((p) => [p.tsNs, p.tos, p.payload.toString('hex')]), whole.map((p) => [p.tsNs, p.tos, p.payload.toString('hex')]));
});

test('microsecond pcap, IPv6/TCP over Linux cooked v2', () => {
  const [p] = read([Buffer.concat([header(276, false), record(10, 999_999, tcp6(TCP_SYN))])]);
  assert.equal(p!.tsNs, 10_999_999_000n);
  assert.deepEqual({ family: p!.family, tos: p!.tos, src: p!.src, dst: p!.dst, flags: p!.tcpFlags, dport: p!.dport }, { family: 6, tos: 0xb8, src: 'fd00::1', dst: 'fd00::2', flags: TCP_SYN, dport: 5005 });
});

test('bad captures get a clear error with the byte offset, never a crash', () => {
  assert.throws(() => read([Buffer.alloc(0)]), /byte 0: empty capture/);
  assert.throws(() => read([file.subarray(0, 10)]), /byte 0: file ends inside the pcap header/);
  assert.throws(() => read([file.subarray(0, file.length - 3)]), (e: Error) => /byte \d+: file ends inside a record/.test(e.message) && (e as { code?: string }).code === 'QOS_ERR_CAPTURE');
  assert.throws(() => read([Buffer.from('GIF89a........................')]), /not a pcap or pcapng file/);
  assert.throws(() => read([Buffer.concat([Buffer.from([0x0a, 0x0d, 0x0d, 0x0a]), Buffer.alloc(40)])]), /pcapng/);
  const lying = Buffer.from(file);
  lying.writeUInt32LE(0x7fffffff, 24 + 8);
  assert.throws(() => read([lying]), /byte 32: record length 2147483647/);
  const v14 = Buffer.from(file); v14.writeUInt16LE(1, 4);
  assert.throws(() => read([v14]), /byte 4: pcap version 1\.4: there is none such/);
  const reserved = Buffer.from(file); reserved.writeUInt32LE(0x00010001, 20);
  assert.throws(() => read([reserved]), /byte 20: link type field 0x00010001 has its reserved bits set/);
});

/** The reader after a whole file, and the packets it gave. */
function readAll(b: Buffer): { reader: PcapReader; packets: Packet[] } {
  const packets: Packet[] = [];
  const reader = new PcapReader((p) => packets.push(p));
  reader.push(b);
  reader.end();
  return { reader, packets };
}

test('a record with a sub-second time out of range is skipped as damaged, with a warning naming its offset; the rest is read', () => {
  const badTime = Buffer.from(file);
  badTime.writeUInt32LE(2_000_000_000, 24 + 4);
  const { reader, packets } = readAll(badTime);
  assert.equal(packets.length, 1);
  assert.equal(packets[0]!.tsNs, 1_700_000_001_000_000_005n);
  assert.deepEqual(reader.warnings, ['capture, byte 28: record 1: sub-second time 2000000000 is out of range (ns): skipped as damaged']);
  const s = reader.summary();
  assert.deepEqual([s.records, s.ip_packets, s.damaged, s.first_s, s.last_s], [2, 1, 1, '1700000001.000000005', '1700000001.000000005']);
});

test('records of a link type not read are skipped and counted under it, with one warning; in pcapng per interface', () => {
  const { reader, packets } = readAll(Buffer.concat([header(105), record(1, 0, udp4(0, Buffer.alloc(1))), record(2, 0, udp4(0, Buffer.alloc(1)))]));
  assert.equal(packets.length, 0);
  assert.deepEqual(reader.summary().skipped, { 105: 2 });
  assert.equal(reader.warnings.length, 1);
  assert.match(reader.warnings[0]!, /^capture, byte 20: link type 105 \(IEEE 802\.11\) is not one qosd reads \(.*\): its records are skipped$/);
  const ngMixed = readAll(Buffer.concat([shb(), idb(105), idb(1), epb(0, 1n, udp4(0, Buffer.alloc(1))), epb(1, 2n, udp4(0, Buffer.from('y')))]));
  assert.deepEqual(ngMixed.packets.map((p) => p.payload.toString()), ['y']);
  assert.deepEqual(ngMixed.reader.summary().skipped, { 105: 1 });
});

test('an IP header that cannot be read (cut short, a wrong version, a length under 20) is a damaged record with a warning', () => {
  const cut = udp4(0, Buffer.alloc(0)).subarray(0, 14 + 19);
  const v5 = udp4(0, Buffer.alloc(4)); v5[14] = 0x55;
  const ihl = udp4(0, Buffer.alloc(4)); ihl[14] = 0x44;
  const { reader, packets } = readAll(Buffer.concat([header(), record(1, 0, cut), record(2, 0, v5), record(3, 0, ihl), record(4, 0, udp4(0, Buffer.from('ok')))]));
  assert.deepEqual(packets.map((p) => p.payload.toString()), ['ok']);
  assert.equal(reader.summary().damaged, 3);
  assert.deepEqual(reader.warnings.map((w) => w.replace(/^capture, byte (\d+): record (\d+): (.*): skipped as damaged$/, '$1 $2 $3')), [
    '24 1 EtherType IPv4: IPv4 header cut short (19 bytes)', '73 2 EtherType IPv4: IP version 5, not 4', '135 3 EtherType IPv4: IPv4 header length 16, less than 20']);
});

test('warnings stop at 20; the rest are counted', () => {
  const bad = Array.from({ length: 25 }, (_, i) => record(i, 1_000_000_000, udp4(0, Buffer.alloc(1))));
  const { reader } = readAll(Buffer.concat([header(), ...bad]));
  assert.equal(reader.warnings.length, 20);
  assert.equal(reader.warningsLeftOff, 5);
  assert.equal(reader.summary().damaged, 25);
});

test('pcap versions and magics libpcap reads: 2.2 and DG/UX 543.0 (lengths the other way round), 2.3 (either way), the modified pcap\'s 24-byte records', () => {
  const frame = udp4(0, Buffer.from('z'));
  const rec = (a: number, b: number, extra = 0) => { const h = Buffer.alloc(16 + extra); h.writeUInt32LE(9, 0); h.writeUInt32LE(a, 8); h.writeUInt32LE(b, 12); return Buffer.concat([h, frame]); };
  for (const [maj, min, a, b] of [[2, 2, frame.length + 50, frame.length], [543, 0, frame.length + 50, frame.length], [2, 3, frame.length + 50, frame.length], [2, 3, frame.length, frame.length + 50]] as const) {
    const h = header(1, false); h.writeUInt16LE(maj, 4); h.writeUInt16LE(min, 6);
    const { packets } = readAll(Buffer.concat([h, rec(a, b)]));
    assert.deepEqual(packets.map((p) => p.payload.toString()), ['z'], `${maj}.${min}`);
  }
  const kuz = header(1, false); kuz.writeUInt32LE(0xa1b2cd34, 0);
  assert.deepEqual(readAll(Buffer.concat([kuz, rec(frame.length, frame.length, 8), rec(frame.length, frame.length, 8)])).packets.length, 2);
});

test('a frame\'s FCS (pcap link-type field, pcapng if_fcslen) is not part of the IP packet: a TSO packet is as long as the frame without it', () => {
  const tso = udp4(0, Buffer.alloc(200)); tso.writeUInt16BE(0, 16);
  const withFcs = Buffer.concat([tso, Buffer.alloc(4, 0xee)]);
  const pcapFcs = header(1); pcapFcs.writeUInt32LE(0x24000001, 20); // P bit, 2 16-bit words
  assert.equal(readAll(Buffer.concat([pcapFcs, record(1, 0, withFcs)])).packets[0]!.ipLength, tso.length - 14);
  const idbFcs = Buffer.alloc(16); idbFcs.writeUInt16LE(1, 0); idbFcs.writeUInt16LE(13, 8); idbFcs.writeUInt16LE(1, 10); idbFcs[12] = 4;
  assert.equal(readAll(Buffer.concat([shb(), block(1, idbFcs), epb(0, 1n, withFcs)])).packets[0]!.ipLength, tso.length - 14);
});

test('frames that are not IP, or cut short, are skipped', () => {
  const arp = Buffer.alloc(42); arp.writeUInt16BE(0x0806, 12);
  const short = udp4(0, Buffer.alloc(0)).subarray(0, 20);
  const out = read([Buffer.concat([header(), record(1, 0, arp), record(2, 0, short), record(3, 0, udp4(0, Buffer.from('x')))])]);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.payload.toString(), 'x');
});

// ---- pcapng -------------------------------------------------------------------------------

/** One pcapng block in the given byte order: type, length, body padded to 4, length. */
function block(type: number, body: Buffer, le = true): Buffer {
  const pad = Buffer.alloc((4 - (body.length % 4)) % 4);
  const len = 12 + body.length + pad.length;
  const h = Buffer.alloc(8), t = Buffer.alloc(4);
  if (le) { h.writeUInt32LE(type, 0); h.writeUInt32LE(len, 4); t.writeUInt32LE(len, 0); } else { h.writeUInt32BE(type, 0); h.writeUInt32BE(len, 4); t.writeUInt32BE(len, 0); }
  return Buffer.concat([h, body, pad, t]);
}
function shb(le = true): Buffer {
  const b = Buffer.alloc(16);
  if (le) { b.writeUInt32LE(0x1a2b3c4d, 0); b.writeUInt16LE(1, 4); } else { b.writeUInt32BE(0x1a2b3c4d, 0); b.writeUInt16BE(1, 4); }
  b.writeBigInt64LE(-1n, 8);
  return block(0x0a0d0d0a, b, le);
}
function idb(linkType: number, tsresol?: number, le = true): Buffer {
  const b = Buffer.alloc(8 + (tsresol === undefined ? 0 : 12));
  if (le) { b.writeUInt16LE(linkType, 0); b.writeUInt32LE(262144, 4); } else { b.writeUInt16BE(linkType, 0); b.writeUInt32BE(262144, 4); }
  if (tsresol !== undefined) {
    if (le) { b.writeUInt16LE(9, 8); b.writeUInt16LE(1, 10); } else { b.writeUInt16BE(9, 8); b.writeUInt16BE(1, 10); }
    b[12] = tsresol; // then padding, then opt_endofopt (zeros)
  }
  return block(1, b, le);
}
function epb(iface: number, units: bigint, frame: Buffer, le = true): Buffer {
  const b = Buffer.alloc(20);
  const w = (v: number, o: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  w(iface, 0); w(Number(units >> 32n), 4); w(Number(units & 0xffffffffn), 8); w(frame.length, 12); w(frame.length, 16);
  return block(6, Buffer.concat([b, frame]), le);
}

const ng = Buffer.concat([shb(), idb(1, 9), epb(0, 1_700_000_000_123_456_789n, udp4(184, Buffer.from('QMD1payload'))), block(5, Buffer.alloc(8)), epb(0, 1_700_000_001_000_000_005n, udp4(0, Buffer.alloc(3)))]);
const key = (ps: Packet[]) => ps.map((p) => [p.tsNs, p.tos, p.src, p.dst, p.proto, p.sport, p.dport, p.ipLength, p.payload.toString('hex')]);

test('pcapng: the same packets as pcap, whatever the chunking; blocks that are not packets skipped', () => {
  assert.deepEqual(key(read([ng])), key(read([file])));
  assert.deepEqual(key(read([...ng].map((x) => Buffer.from([x])))), key(read([file])));
});

test('pcapng: microseconds by default, a power-of-two resolution, a big-endian section, two sections', () => {
  const us = read([Buffer.concat([shb(), idb(276), epb(0, 10_999_999n, tcp6(TCP_SYN))])]);
  assert.equal(us[0]!.tsNs, 10_999_999_000n);
  assert.equal(us[0]!.dport, 5005);
  const bin = read([Buffer.concat([shb(), idb(1, 0x80 | 10), epb(0, 3n * 1024n + 512n, udp4(0, Buffer.from('y')))])]);
  assert.equal(bin[0]!.tsNs, 3_500_000_000n, '1/1024 s units');
  const be = read([Buffer.concat([shb(false), idb(1, 9, false), epb(0, 42n, udp4(8, Buffer.from('be')), false), shb(), idb(101), epb(0, 7n, udp4(0, Buffer.from('le')).subarray(14))])]);
  assert.deepEqual(be.map((p) => [p.tsNs, p.payload.toString()]), [[42n, 'be'], [7_000n, 'le']]);
});

test('pcapng: corrupt and truncated files get a clear error with the byte offset', () => {
  const err = (b: Buffer, re: RegExp) => assert.throws(() => read([b]), (e: Error) => re.test(e.message) && (e as { code?: string }).code === 'QOS_ERR_CAPTURE', re.source);
  err(ng.subarray(0, ng.length - 5), /byte \d+: file ends inside a block/);
  const lying = Buffer.from(ng);
  lying.writeUInt32LE(0x7ffffff0, shb().length + idb(1, 9).length + 4);
  err(lying, /byte 64: pcapng block length 2147483632 is larger than any packet/);
  const odd = Buffer.from(ng);
  odd.writeUInt32LE(30, 4);
  err(odd, /byte 4: pcapng block length 30/);
  const tail = Buffer.from(ng);
  tail.writeUInt32LE(99, shb().length - 4);
  err(tail, /byte 24: pcapng block ends with length 99, begins with 28/);
  const cap = Buffer.from(ng);
  cap.writeUInt32LE(5000, shb().length + idb(1, 9).length + 8 + 12);
  err(cap, /captured length 5000 runs past its block/);
  err(Buffer.concat([shb(), epb(0, 1n, udp4(0, Buffer.alloc(1)))]), /interface 0, which the section has not described/);
  const v11 = shb(); v11.writeUInt16LE(1, 8 + 6);
  err(Buffer.concat([v11, idb(1)]), /byte 12: pcapng version 1\.1: there is none such/);
  const bom = Buffer.from(ng);
  bom.writeUInt32LE(0x12345678, 8);
  err(bom, /byte 8: pcapng section header with byte-order magic 0x12345678/);
});

test('pcapng written by editcap from a pcap reads as the same packets', () => {
  requireTools('editcap');
  const dir = mkdtempSync(join(tmpdir(), 'qosd-pcap-'));
  try {
    const mixed = Buffer.concat([header(1, true), record(1_700_000_000, 123_456_789, udp4(184, Buffer.from('QMD1payload'))), record(1_700_000_000, 500_000_000, tcpEth()), record(1_700_000_001, 5, udp4(0, Buffer.alloc(3)))]);
    writeFileSync(join(dir, 'a.pcap'), mixed);
    const r = spawnSync('editcap', ['-F', 'pcapng', join(dir, 'a.pcap'), join(dir, 'a.pcapng')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const ngFile = readFileSync(join(dir, 'a.pcapng'));
    assert.equal(ngFile.readUInt32LE(0), 0x0a0d0d0a, 'editcap wrote pcapng');
    assert.deepEqual(key(read([ngFile])), key(read([mixed])));
    assert.equal(read([ngFile]).length, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('damaged captures (random bytes changed, cut anywhere) give packets or a QosError, never anything else', () => {
  let seed = 7;
  const rnd = (k: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % k; };
  for (const base of [file, ng]) {
    for (let i = 0; i < 400; i++) {
      const b = Buffer.from(base.subarray(0, rnd(3) ? base.length : rnd(base.length + 1)));
      for (let k = rnd(4); k > 0 && b.length; k--) b[rnd(b.length)] = rnd(256);
      try { read([b]); } catch (e) { assert.ok(e instanceof QosError && e.code === 'QOS_ERR_CAPTURE', `case ${i}: ${(e as Error).stack}`); }
    }
  }
});

test('an IPv4 Total Length of 0 (a TSO or BIG TCP packet captured on its sender) is the captured length, as tshark presumes', () => {
  const frame = udp4(0, Buffer.alloc(3000));
  frame.writeUInt16BE(0, 14 + 2);
  const [p] = read([Buffer.concat([header(), record(1_700_000_000, 0, frame)])]);
  assert.equal(p!.ipLength, frame.length - 14);
  assert.equal(p!.payload.length, 3000);
});

test('an IPv6 jumbogram (RFC 2675) is as long as its Jumbo Payload option says, its transport after the hop-by-hop header', () => {
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(6 << 28, 0); ip.writeUInt16BE(0, 4); ip[6] = 0; ip[7] = 64; // payload length 0, next: hop-by-hop
  ip.writeUInt16BE(0xfd00, 8); ip.writeUInt16BE(1, 22); ip.writeUInt16BE(0xfd00, 24); ip.writeUInt16BE(2, 38);
  const hbh = Buffer.from([17, 0, 0xc2, 4, 0, 1, 0, 14]); // next UDP; Jumbo Payload 65,550
  const u = Buffer.alloc(8); u.writeUInt16BE(4000, 0); u.writeUInt16BE(5004, 2);
  const eth = Buffer.alloc(14); eth.writeUInt16BE(0x86dd, 12);
  const frame = Buffer.concat([eth, ip, hbh, u, Buffer.alloc(100)]); // captured short of its 65,604 bytes
  const [p] = read([Buffer.concat([header(), record(1_700_000_000, 0, frame, 14 + 40 + 65_550)])]);
  assert.equal(p!.ipLength, 40 + 65_550);
  assert.equal(p!.proto, 17);
  assert.deepEqual([p!.sport, p!.dport], [4000, 5004]);
  // a Jumbo Payload longer than the frame on the wire is not believed: the wire length is
  const [q] = read([Buffer.concat([header(), record(1_700_000_000, 0, frame, 14 + 40 + 1000)])]);
  assert.equal(q!.ipLength, 40 + 1000);
  // BIG TCP takes the hop-by-hop header off: Payload Length 0 and none, as long as on the wire
  const big = Buffer.concat([eth, ip, u, Buffer.alloc(100)]);
  big[14 + 6] = 17;
  const [r] = read([Buffer.concat([header(), record(1_700_000_000, 0, big, 14 + 80_000)])]);
  assert.equal(r!.ipLength, 80_000);
  assert.equal(r!.dport, 5004);
});
