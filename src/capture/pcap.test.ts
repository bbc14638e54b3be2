import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PcapReader, TCP_SYN, type Packet } from './pcap.js';

function header(linkType = 1, nano = true): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4); b.writeUInt16LE(4, 6);
  b.writeUInt32LE(262144, 16);
  b.writeUInt32LE(linkType, 20);
  return b;
}

function record(sec: number, frac: number, frame: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(sec, 0); h.writeUInt32LE(frac, 4); h.writeUInt32LE(frame.length, 8); h.writeUInt32LE(frame.length, 12);
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
  assert.throws(() => read([Buffer.from('GIF89a........................')]), /not a pcap file/);
  assert.throws(() => read([Buffer.concat([Buffer.from([0x0a, 0x0d, 0x0d, 0x0a]), Buffer.alloc(40)])]), /pcapng/);
  const lying = Buffer.from(file);
  lying.writeUInt32LE(0x7fffffff, 24 + 8);
  assert.throws(() => read([lying]), /byte 32: record length 2147483647/);
  const badTime = Buffer.from(file);
  badTime.writeUInt32LE(2_000_000_000, 24 + 4);
  assert.throws(() => read([badTime]), /byte 28: sub-second time/);
  assert.throws(() => read([header(105)]), /link type 105/);
});

test('frames that are not IP, or cut short, are skipped', () => {
  const arp = Buffer.alloc(42); arp.writeUInt16BE(0x0806, 12);
  const short = udp4(0, Buffer.alloc(0)).subarray(0, 20);
  const out = read([Buffer.concat([header(), record(1, 0, arp), record(2, 0, short), record(3, 0, udp4(0, Buffer.from('x')))])]);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.payload.toString(), 'x');
});
