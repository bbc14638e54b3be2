/* Captures nobody here wrote, read by qosd and by tshark: public test captures of the tcpdump
 * and libpcap projects (test/fixtures/captures, README.md there: origin and licence), and
 * frames of every encapsulation qosd follows built here. For each file the frames tshark calls
 * IP are the ones qosd reads, with the same time and the same length, so the counts, the bytes
 * and the first and last times agree; where they may not (a record qosd skips as damaged, a
 * header tshark 4.0 does not know) the case says which frames and why. */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../paths.js';
import { requireTools } from '../prerequisites.js';
import { QosError } from '../errors.js';
import { epochSeconds, PcapReader, type CaptureSummary } from './pcap.js';
import { pcapFile, udpPacket, type PcapFileOptions } from './pcap-write.js';

const DIR = join(PACKAGE_ROOT, 'test/fixtures/captures');

interface Frame { time: string; bytes: number }

/** What tshark reads in a file: its frames, and those it calls IP with their time and the IP
 * packet's length (IPv4 Total Length, which tshark itself presumes for TSO; IPv6 40 + Payload
 * Length, or + the Jumbo Payload option). */
function tshark(file: string): { frames: number; ip: Map<number, Frame> } {
  const r = spawnSync('tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'occurrence=f', '-e', 'frame.number', '-e', 'frame.time_epoch', '-e', 'frame.protocols', '-e', 'ip.len', '-e', 'ipv6.plen', '-e', 'ipv6.opt.jumbo'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tshark -r ${file}: ${r.stderr}`);
  const ip = new Map<number, Frame>();
  let frames = 0;
  for (const line of r.stdout.split('\n')) {
    if (!line) continue;
    const [n, time, protocols, ipLen, plen, jumbo] = line.split('\t') as [string, string, string, string, string, string];
    frames++;
    const first = protocols.split(':').find((p) => p === 'ip' || p === 'ipv6');
    if (!first) continue;
    ip.set(Number(n), { time, bytes: first === 'ip' ? Number(ipLen) : 40 + (Number(plen) || Number(jumbo)) });
  }
  return { frames, ip };
}

/** What qosd reads in a file: its IP packets by record number, the summary and the warnings. */
function qosd(file: string): { ip: Map<number, Frame>; summary: CaptureSummary; warnings: string[] } {
  const ip = new Map<number, Frame>();
  const reader: PcapReader = new PcapReader((p) => ip.set(reader.records, { time: epochSeconds(p.tsNs), bytes: p.ipLength }));
  reader.push(readFileSync(file));
  reader.end();
  return { ip, summary: reader.summary(), warnings: reader.warnings };
}

interface Case {
  file: string;
  /** what the file shows */
  covers: string;
  /** records qosd skips as damaged (their frame numbers, and the byte its warning names) */
  damaged?: { frame: number; at: number }[];
  /** IP frames tshark does not read as IP, and why */
  tsharkMisses?: { frames: number[]; why: string };
  /** records of this link type, not read: all of them skipped and counted */
  skipped?: number;
  /** frames without IP (tshark agrees: it calls none of them IP) */
  notIp?: number;
}

/** Checks a file against tshark's reading; returns what qosd read. */
function agree(path: string, c: Case): ReturnType<typeof qosd> {
  const t = tshark(path), q = qosd(path);
  const name = c.file;
  assert.equal(q.summary.records, t.frames, `${name}: records, as tshark numbers frames`);
  if (c.skipped !== undefined) {
    assert.deepEqual(q.summary.skipped, { [String(c.skipped)]: t.frames }, `${name}: every record skipped, counted under its link type`);
    assert.equal(q.summary.ip_packets, 0);
    assert.match(q.warnings[0] ?? '', new RegExp(`link type ${c.skipped}\\b.* is not one qosd reads`));
    assert.ok(t.ip.size > 0, `${name}: tshark does read IP in it (so skipping it is a choice, counted)`);
    return q;
  }
  const expected = new Map(t.ip);
  for (const d of c.damaged ?? []) {
    assert.ok(expected.delete(d.frame), `${name}: tshark reads frame ${d.frame} as IP`);
    assert.ok(q.warnings.some((w) => w.startsWith(`capture, byte ${d.at}: record ${d.frame}: `) && w.endsWith('skipped as damaged')), `${name}: a warning for frame ${d.frame} at byte ${d.at}: ${q.warnings.join(' | ')}`);
  }
  for (const f of c.tsharkMisses?.frames ?? []) {
    assert.ok(!t.ip.has(f) && q.ip.has(f), `${name}: frame ${f} is IP to qosd, not to tshark (${c.tsharkMisses!.why})`);
    expected.set(f, q.ip.get(f)!);
  }
  assert.ok(expected.size > 0 || c.notIp, `${name}: a case with IP in it`);
  assert.deepEqual([...q.ip.keys()].sort((a, b) => a - b), [...expected.keys()].sort((a, b) => a - b), `${name}: the IP frames`);
  for (const [n, f] of q.ip) {
    if (c.tsharkMisses?.frames.includes(n)) continue;
    assert.deepEqual(f, expected.get(n), `${name}: frame ${n}, its time and IP length`);
  }
  const times = [...expected.keys()].sort((a, b) => a - b).map((n) => expected.get(n)!.time);
  assert.deepEqual(
    [q.summary.ip_packets, q.summary.ip_bytes, q.summary.first_s, q.summary.last_s, q.summary.damaged, q.summary.not_ip, q.summary.skipped],
    [expected.size, [...expected.values()].reduce((s, f) => s + f.bytes, 0), times[0] ?? null, times.at(-1) ?? null, c.damaged?.length ?? 0, c.notIp ?? 0, {}],
    `${name}: count, bytes, first and last time, damaged, without IP, skipped`);
  return q;
}

const PUBLIC: Case[] = [
  { file: 'ipv4_tcp_http_xml_tso.pcap', covers: 'IPv4 Total Length 0 from a TSO sender: its length on the wire, as tshark presumes' },
  { file: 'icmp-length-zero.pcapng', covers: 'the same in pcapng, ICMP' },
  { file: 'ipv6_jumbogram_1.pcap', covers: 'an IPv6 jumbogram: 40 + its Jumbo Payload option' },
  { file: 'dns-badcookie.pcap', covers: 'link type 0 (BSD loopback), IPv4' },
  { file: 'icmpv6-RFC2894-RR.pcap', covers: 'link type 0 (BSD loopback), IPv6 (a BSD AF_INET6)' },
  { file: 'mpls-traceroute.pcap', covers: 'link type 9 (PPP), IPv4 and MPLS' },
  { file: 'LINKTYPE_IPV4.pcap', covers: 'link type 228 (raw IPv4)' },
  { file: 'LINKTYPE_IPV6.pcap', covers: 'link type 229 (raw IPv6)' },
  { file: 'LINKTYPE_RAW_ipv4.pcap', covers: 'link type 101 (raw IP), IPv4' },
  { file: 'LINKTYPE_RAW_ipv6.pcap', covers: 'link type 101 (raw IP), IPv6' },
  { file: 'HDLC.pcap', covers: 'link type 104 (Cisco HDLC); its SLARP and CDP frames hold no IP', notIp: 28 },
  { file: 'lsp-ping-timestamp.pcap', covers: 'link type 113 (Linux cooked)' },
  { file: 'nflog.pcap', covers: 'link type 239 (Linux NFLOG)' },
  { file: 'bootp_asan.pcap', covers: 'Ethernet with the FCS bits of the link-type field set (0x04000001): link type 1, as libpcap masks it' },
  { file: 'rsvp_cap.pcap', covers: 'an 802.1Q VLAN tag (RSVP behind it)' },
  { file: '802.1ad_QinQ.pcap', covers: 'QinQ (802.1ad, then 802.1Q): ARP behind it, not IP to either reader', notIp: 2 },
  { file: 'macsec-integonly.pcap', covers: 'MACsec, integrity only: IP behind the SecTAG' },
  { file: 'macsec-encrypted.pcap', covers: 'MACsec, encrypted: no IP to read', notIp: 1 },
  {
    file: 'arista_ether.pcap', covers: 'Arista\'s timestamp header, 64- and 48-bit, with VLAN tags and MPLS behind it',
    tsharkMisses: { frames: [2, 7, 10, 14], why: 'tshark 4.0 does not know the header\'s version 0x11 (hardware R3); tcpdump, whose test file it is, reads IP in them' },
  },
  { file: 'timestamp_invalid_micro.pcap', covers: 'microseconds of 1,000,000 and 2^31: those records skipped as damaged', damaged: [{ frame: 2, at: 120 }, { frame: 3, at: 212 }] },
  { file: 'timestamp_invalid_nano.pcap', covers: 'nanoseconds of 10^9 and 2^31: those records skipped as damaged', damaged: [{ frame: 2, at: 120 }, { frame: 3, at: 212 }] },
  { file: 'ieee802.11_htc.pcap', covers: 'link type 127 (radiotap 802.11), not read: skipped and counted', skipped: 127 },
];

test('public test captures: the IP frames tshark reads, with the same times and lengths; the rest skipped, damaged or without IP as the case says', () => {
  requireTools('tshark');
  for (const c of PUBLIC) agree(join(DIR, c.file), c);
});

test('captures libpcap refuses (its own test files) are refused, with the byte offset; libpcap (tcpdump -r) refuses them too', () => {
  requireTools('tcpdump');
  const cases: [string, RegExp][] = [
    ['pcap-invalid-version-1.pcap', /^capture, byte 4: pcap version 1\.4: /],
    ['pcap-invalid-version-2.pcap', /^capture, byte 4: pcap version 2\.5: /],
    ['pcapng-invalid-vers-1.pcapng', /^capture, byte 12: pcapng version 0\.1: /],
    ['pcapng-invalid-vers-2.pcapng', /^capture, byte 12: pcapng version 1\.1: /],
    ['linktype-reserved-field-not-zero.pcap', /^capture, byte 20: link type field 0x00300000 has its reserved bits set/],
  ];
  for (const [file, re] of cases) {
    assert.throws(() => qosd(join(DIR, file)), (e: Error) => e instanceof QosError && e.code === 'QOS_ERR_CAPTURE' && re.test(e.message), file);
    const r = spawnSync('tcpdump', ['-n', '-r', join(DIR, file)], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, `libpcap reads ${file}: ${r.stdout}`);
  }
});

// ---- frames built here, in every encapsulation qosd follows --------------------------------

/** A pcap file of these frames in this link-type field (pcap-write.ts), one second apart. */
const pcapOf = (linkField: number, frames: Buffer[], o: Omit<PcapFileOptions, 'linkField'> = {}) => pcapFile(frames, 1_700_000_000, undefined, { ...o, linkField });

const u16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
const u32le = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u32be = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };

/** An IPv4/UDP packet of n bytes of payload (Total Length 0 when tso, as a sender's capture has it). */
function ip4(n: number, tso = false): Buffer {
  const ip = udpPacket({ src: '192.0.2.1', dst: '192.0.2.2', sport: 4000, dport: 5004, payload: Buffer.alloc(n) });
  if (tso) ip.writeUInt16BE(0, 2);
  return ip;
}
/** An IPv6/UDP packet of n bytes of payload. */
const ip6 = (n: number) => udpPacket({ src: '2001:db8::1', dst: '2001:db8::2', sport: 4000, dport: 5004, payload: Buffer.alloc(n) });
const MACS = Buffer.from('020000000001020000000002', 'hex');
const eth = (...rest: Buffer[]) => Buffer.concat([MACS, ...rest]);
const mpls = (label: number, bottom: boolean) => u32be((label << 12) | (bottom ? 0x100 : 0) | 64);

test('frames built here in every encapsulation qosd follows: tshark reads the same IP packets, times and lengths', () => {
  requireTools('tshark');
  const dir = mkdtempSync(join(tmpdir(), 'qosd-encap-'));
  try {
    const files: [string, Buffer, Case?][] = [
      ['ethernet.pcap', pcapOf(1, [
        eth(u16(0x8100), u16(10), u16(0x0800), ip4(100)), // 802.1Q
        eth(u16(0x88a8), u16(100), u16(0x8100), u16(200), u16(0x86dd), ip6(200)), // QinQ
        eth(u16(0x9100), u16(5), u16(0x0800), ip4(50)), // the older QinQ type
        eth(u16(0x8847), mpls(16, false), mpls(17, true), ip4(300)), // an MPLS stack
        eth(u16(0x8100), u16(7), u16(0x8847), mpls(99, true), ip6(30)), // VLAN, then MPLS
        eth(u16(8 + 38), Buffer.from('aaaa03000000', 'hex'), u16(0x0800), ip4(10)), // 802.3 with LLC/SNAP
        eth(u16(0x88e5), Buffer.from('2c00000000010203040506070809', 'hex'), ip4(10)), // MACsec, encrypted (E and C bits)
        eth(u16(0x0806), Buffer.alloc(28)), // ARP
        eth(u16(0x0800), ip4(1000, true)), // TSO: Total Length 0
      ]), { file: 'ethernet.pcap', covers: '', notIp: 2 }],
      // Ethernet frames ending with a 4-byte FCS, as the link-type field says (P bit, 2 words)
      ['fcs.pcap', pcapOf(0x24000001, [eth(u16(0x0800), ip4(500, true), Buffer.from('deadbeef', 'hex')), eth(u16(0x0800), ip4(40), Buffer.from('01020304', 'hex'))])],
      // the address family in either byte order (a big-endian host's capture), AF_INET6 of the
      // BSDs, FreeBSD and Darwin; Linux's AF_INET6 (10) is no family in this link type
      ['null.pcap', pcapOf(0, [Buffer.concat([u32be(2), ip4(20)]), Buffer.concat([u32le(24), ip6(20)]), Buffer.concat([u32le(28), ip6(30)]), Buffer.concat([u32be(30), ip6(40)]), Buffer.concat([u32le(10), ip6(40)])]), { file: '', covers: '', notIp: 1 }],
      ['loop.pcap', pcapOf(108, [Buffer.concat([u32be(2), ip4(20)]), Buffer.concat([u32be(24), ip6(20)])])],
      // PPP with and without HDLC's address and control, a protocol field compressed to one byte
      ['ppp.pcap', pcapOf(9, [Buffer.concat([Buffer.from('ff03', 'hex'), u16(0x21), ip4(20)]), Buffer.concat([u16(0x57), ip6(20)]), Buffer.concat([Buffer.from([0x21]), ip4(30)]), Buffer.concat([u16(0x281), mpls(3, true), ip4(40)])])],
      ['ppp-hdlc.pcap', pcapOf(50, [Buffer.concat([Buffer.from('ff03', 'hex'), u16(0x21), ip4(20)]), Buffer.concat([Buffer.from('0f00', 'hex'), u16(0x86dd), ip6(20)])])],
      ['raw12.pcap', pcapOf(12, [ip4(20), ip6(20)])],
      ['raw14.pcap', pcapOf(14, [ip4(30), ip6(30)])],
      ['sll2.pcap', pcapOf(276, [Buffer.concat([u16(0x0800), Buffer.alloc(18), ip4(20)]), Buffer.concat([u16(0x8100), Buffer.alloc(18), u16(3), u16(0x86dd), ip6(20)])])],
      // pcap 2.2 has the record's two lengths the other way round (wire, then captured): a TSO
      // packet captured short is as long as the wire length says
      ['v2.2.pcap', pcapOf(1, [eth(u16(0x0800), ip4(20, true)), eth(u16(0x0800), ip4(60))], { version: [2, 2], lengths: (f) => [f.length + 100, f.length] })],
    ];
    for (const [name, bytes, c] of files) {
      writeFileSync(join(dir, name), bytes);
      const q = agree(join(dir, name), { ...(c ?? { covers: '' }), file: name });
      assert.ok(q.summary.ip_packets >= 2, `${name}: its IP frames read`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
