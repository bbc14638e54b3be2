/* `qos rsvp decode` as a user runs it (the real dist/cli/main.js): a message in hex, every RSVP
 * packet of a capture (protocol 46 over IPv4, behind an IPv6 hop-by-hop header, UDP 1698), and
 * malformed input reported with the object and byte, exit 65. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipPacket, pcapFile, udpPacket } from '../capture/pcap-write.js';
import { QOS_CLI } from '../daemon/child.js';
import { encode } from '../rsvp/message.js';
import { integrityZero, SAMPLE_MESSAGES_V4, SAMPLE_MESSAGES_V6, V4, V6 } from '../rsvp/samples.js';

const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, 'rsvp', ...args], { encoding: 'utf8' });
// the PathTear worked out by hand in rsvp/message.test.ts
const PATH_TEAR = '10050328 40000020 000c0101c000020a1100138c 000c0301c000020100000000';

test('qos rsvp decode --hex prints the header and each object', () => {
  const r = qos('decode', '--hex', PATH_TEAR);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, [
    'PathTear (type 5) flags 0x0 send-TTL 64 length 32 checksum 0x0328',
    '  SESSION          destination=192.0.2.10 protocol=17 flags=0 port=5004',
    '  RSVP_HOP         address=192.0.2.1 lih=0',
    '',
  ].join('\n'));
});

test('qos rsvp decode --hex --json: the message, Infinity as a string; a wrong checksum with both values, exit 65', () => {
  const path = Buffer.from(encode(SAMPLE_MESSAGES_V4[0]!)).toString('hex');
  const r = qos('decode', '--hex', path, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { ok: boolean; message: { type: string; objects: { kind: string; p?: unknown }[]; orderProblems: string[] } };
  assert.equal(j.message.type, 'Path');
  assert.deepEqual(j.message.objects.map((o) => o.kind), ['SESSION', 'RSVP_HOP', 'TIME_VALUES', 'POLICY_DATA', 'SENDER_TEMPLATE', 'SENDER_TSPEC', 'ADSPEC']);
  assert.equal(j.message.objects[5]!.p, 'Infinity');
  assert.deepEqual(j.message.orderProblems, []);
  const bad = qos('decode', '--hex', PATH_TEAR.replace('0328', '0329'), '--json');
  assert.equal(bad.status, 65);
  assert.deepEqual(JSON.parse(bad.stdout), { ok: false, error: { code: 'QOS_ERR_RSVP_CHECKSUM', message: "RSVP PathTear, byte 2: checksum 0x0329, the message's is 0x0328" } });
});

test('qos rsvp decode: malformed hex and malformed messages are errors naming the byte', () => {
  const cut = qos('decode', '--hex', PATH_TEAR.replace(/ /g, '').slice(0, 32));
  assert.equal(cut.status, 65);
  assert.equal(cut.stderr, 'qos: RSVP common header, byte 6: message length 32, only 16 bytes there\n');
  const notHex = qos('decode', '--hex', 'xyz');
  assert.equal(notHex.status, 64);
  assert.match(notHex.stderr, /--hex takes pairs of hex digits/);
  const both = qos('decode');
  assert.equal(both.status, 64);
});

test('qos rsvp decode FILE: every RSVP packet, over IPv4, IPv6 (hop-by-hop Router Alert) and UDP 1698; a damaged one exits 65', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qos-rsvp-cli-'));
  try {
    const damaged = Uint8Array.from(encode(SAMPLE_MESSAGES_V4[1]!)); damaged[8] = 0x30; // SESSION length 0x300c: past the end (the checksum, not fixed, tells first)
    const file = join(dir, 'rsvp.pcap');
    writeFileSync(file, pcapFile([
      ipPacket({ src: V4.router, dst: V4.receiver, proto: 46, payload: encode(SAMPLE_MESSAGES_V4[0]!), routerAlert: true }),
      udpPacket({ src: V4.sender, dst: V4.receiver, sport: 5000, dport: 5004, payload: Buffer.from('not RSVP') }),
      ipPacket({ src: V6.router, dst: V6.receiver, proto: 46, payload: encode(SAMPLE_MESSAGES_V6[1]!), routerAlert: true }),
      udpPacket({ src: V4.router, dst: V4.receiver, sport: 1698, dport: 1698, payload: encode(SAMPLE_MESSAGES_V4[4]!) }),
      ipPacket({ src: V4.router, dst: V4.receiver, proto: 46, payload: damaged }),
    ]));
    const r = qos('decode', file, '--json');
    assert.equal(r.status, 65, r.stderr);
    const j = JSON.parse(r.stdout) as { packet: number; src: string; transport: string; ok: boolean; message?: { type: string }; error?: { code: string; message: string } }[];
    assert.deepEqual(j.map((p) => [p.packet, p.src, p.transport, p.ok, p.message?.type ?? p.error?.code]), [
      [1, V4.router, 'ip', true, 'Path'],
      [3, V6.router, 'ip', true, 'Resv'],
      [4, V4.router, 'udp', true, 'PathTear'],
      [5, V4.router, 'ip', false, 'QOS_ERR_RSVP_CHECKSUM'],
    ]);
    const text = qos('decode', file);
    assert.equal(text.status, 65);
    assert.match(text.stdout, /^packet 1 192\.0\.2\.1 > 192\.0\.2\.10 IP: Path \(type 1\) /m);
    assert.match(text.stdout, /^ {2}SENDER_TSPEC +r=10000 b=400 p=inf m=200 M=200$/m);
    assert.match(text.stdout, /^packet 4 192\.0\.2\.1 > 192\.0\.2\.10 UDP: PathTear/m);
    assert.match(text.stdout, /^packet 5 .*: error: RSVP Resv, byte 2: checksum 0x[0-9a-f]{4}, the message's is 0x[0-9a-f]{4}$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('qos rsvp decode --key: a message signed with the key is shown; another key, or none, is an INTEGRITY error', () => {
  const key = 'a shared secret';
  const m = { ...SAMPLE_MESSAGES_V4[0]!, objects: [integrityZero, ...SAMPLE_MESSAGES_V4[0]!.objects] };
  const signed = Buffer.from(encode(m, Buffer.from(key))).toString('hex');
  const ok = qos('decode', '--hex', signed, '--key', `${integrityZero.keyId}=${key}`);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^ {2}INTEGRITY +flags=1 keyId=0000c0000201 sequence=1732842000000001 digest=[0-9a-f]{32}$/m);
  const hexKey = qos('decode', '--hex', signed, '--key', `${integrityZero.keyId}=0x${Buffer.from(key).toString('hex')}`);
  assert.equal(hexKey.status, 0, hexKey.stderr);
  const wrong = qos('decode', '--hex', signed, '--key', `${integrityZero.keyId}=another`);
  assert.equal(wrong.status, 65);
  assert.match(wrong.stderr, /^qos: RSVP INTEGRITY, byte 28: keyed digest [0-9a-f]{32} is not the message's \(key id 0000c0000201\)$/m);
  const unsigned = qos('decode', '--hex', PATH_TEAR, '--key', `${integrityZero.keyId}=${key}`, '--json');
  assert.equal(unsigned.status, 65);
  assert.equal((JSON.parse(unsigned.stdout) as { error: { code: string } }).error.code, 'QOS_ERR_RSVP_INTEGRITY');
  assert.equal(qos('decode', '--hex', signed, '--key', 'abc=x').status, 64);
});

test('qos rsvp router --key and qos daemon --rsvp-key: a malformed key or --require-integrity without one is a usage error, before anything starts', () => {
  const router = (...a: string[]) => qos('router', ...a);
  const bad = router('--key', 'abc=x');
  assert.equal(bad.status, 64);
  assert.match(bad.stderr, /--key takes KEYID=SECRET/);
  assert.equal(router('--require-integrity').status, 64);
  const daemon = spawnSync(process.execPath, [QOS_CLI, 'daemon', '--rsvp', 'on', '--rsvp-key', '0000c0000201=0xabc'], { encoding: 'utf8' });
  assert.equal(daemon.status, 64);
  assert.match(daemon.stderr, /--rsvp-key 0000c0000201: a secret after 0x is pairs of hex digits/);
});
