/* The pcap writer: what it writes, our reader (pcap.ts) reads back packet by packet, and the
 * IPv4 header and UDP checksums it computes verify (the sum over them is all ones). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { onesComplementSum } from '../inet-checksum.js';
import { type Packet, PcapReader } from './pcap.js';
import { addressBytes, ipPacket, pcapFile, udpPacket } from './pcap-write.js';

const payload = Buffer.from('an RSVP message, say');

test('packets written are read back: addresses, protocol, ports, payload, times', () => {
  const pkts = [
    ipPacket({ src: '192.0.2.1', dst: '192.0.2.10', proto: 46, payload, routerAlert: true, tos: 0xb8 }),
    udpPacket({ src: '198.51.100.7', dst: '192.0.2.10', sport: 1698, dport: 1699, payload }),
    udpPacket({ src: '2001:db8::1', dst: 'fe80::a', sport: 1698, dport: 1698, payload }),
    ipPacket({ src: '2001:db8::1', dst: '2001:db8::2', proto: 46, payload }),
  ];
  const got: Packet[] = [];
  const r = new PcapReader((p) => got.push(p));
  r.push(pcapFile(pkts, 1000)); r.end();
  assert.deepEqual(got.map((p) => [p.family, p.src, p.dst, p.proto, p.sport, p.dport, p.ipLength, p.tsNs]), [
    [4, '192.0.2.1', '192.0.2.10', 46, 0, 0, 24 + payload.length, 1000_000_000_000n],
    [4, '198.51.100.7', '192.0.2.10', 17, 1698, 1699, 28 + payload.length, 1001_000_000_000n],
    [6, '2001:db8::1', 'fe80::a', 17, 1698, 1698, 48 + payload.length, 1002_000_000_000n],
    [6, '2001:db8::1', '2001:db8::2', 46, 0, 0, 40 + payload.length, 1003_000_000_000n],
  ]);
  assert.equal(got[0]!.tos, 0xb8);
  assert.deepEqual(got[1]!.payload, payload);
  assert.deepEqual(pkts[0]!.subarray(20, 24), Buffer.from([0x94, 4, 0, 0]), 'the Router Alert option');
});

test('the IPv4 header and UDP checksums verify, over IPv4 and IPv6 pseudo-headers', () => {
  const v4 = udpPacket({ src: '198.51.100.7', dst: '192.0.2.10', sport: 1698, dport: 1698, payload });
  assert.equal(onesComplementSum(v4.subarray(0, 20)), 0xffff, 'IPv4 header');
  const udp4 = v4.subarray(20);
  const pseudo4 = Buffer.concat([addressBytes('198.51.100.7'), addressBytes('192.0.2.10'), Buffer.from([0, 17, 0, udp4.length])]);
  assert.equal(onesComplementSum(udp4, onesComplementSum(pseudo4)), 0xffff, 'UDP over IPv4');
  const v6 = udpPacket({ src: '2001:db8::1', dst: 'fe80::a', sport: 1698, dport: 1698, payload });
  const udp6 = v6.subarray(40);
  const pseudo6 = Buffer.concat([addressBytes('2001:db8::1'), addressBytes('fe80::a'), Buffer.from([0, 0, 0, udp6.length, 0, 0, 0, 17])]);
  assert.equal(onesComplementSum(udp6, onesComplementSum(pseudo6)), 0xffff, 'UDP over IPv6');
});

test('an address that is not one is a usage error', () => {
  for (const a of ['192.0.2', '192.0.2.256', '1::2::3', 'fe80::g', '1:2:3:4:5:6:7:8:9']) assert.throws(() => addressBytes(a), /is not an IP address/, a);
  assert.deepEqual(addressBytes('::1'), Buffer.from('00000000000000000000000000000001', 'hex'));
});
