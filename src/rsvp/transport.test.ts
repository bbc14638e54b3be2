/* The transport's pieces that need no privilege: the frames spoken with native/rsvpio (byte
 * layout, splitting, refusals), the UDP encapsulation's rules (RFC 2205 appendix C), and the
 * helper itself in its unprivileged UDP mode on loopback: a message through two helpers, a bad
 * frame and an oversized one refused with one clear line, exit when stdin closes. The raw
 * sockets, Router Alert and namespaces are src/e2e/rsvp-io.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { start, type Child } from '../exec.js';
import { encode } from './message.js';
import { SAMPLE_MESSAGES_V4 } from './samples.js';
import { BODY, encodeSend, FRAME_MAX, FrameReader, IFNAMSIZ, MSG_MAX, type Datagram, type Frame } from './transport/frames.js';
import { RSVPIO_PROGRAM as RSVPIO } from '../paths.js';
import { G_STAR, listenOn, PU, PU_HOST, udpDestination } from './transport/udp-encap.js';

const PATH = encode(SAMPLE_MESSAGES_V4[0]!);
const datagram = (o: Partial<Datagram> = {}): Datagram =>
  ({ family: 4, routerAlert: true, ttl: 63, port: 0, ifname: 'veth-r1', src: '198.51.100.7', dst: '192.0.2.10', bytes: PATH, ...o });

/** A PACKET frame as rsvpio writes one (the header comment of native/rsvpio.c). */
function packetFrame(d: Datagram): Buffer {
  const f = Buffer.from(encodeSend(d));
  f[4] = 2;
  return f;
}

test('a SEND frame is laid out as native/rsvpio.c reads it', () => {
  const f = Buffer.from(encodeSend(datagram({ port: 1698 })));
  assert.equal(f.readUInt32BE(0), BODY + PATH.length);
  assert.deepEqual([...f.subarray(4, 8)], [1, 4, 1, 63]); // type, family, flags (Router Alert), TTL
  assert.equal(f.readUInt16BE(8), 1698);
  assert.equal(f.subarray(10, 10 + IFNAMSIZ).toString('latin1'), 'veth-r1'.padEnd(IFNAMSIZ, '\0'));
  assert.deepEqual([...f.subarray(26, 42)], [198, 51, 100, 7, ...Array<number>(12).fill(0)]);
  assert.deepEqual([...f.subarray(42, 46)], [192, 0, 2, 10]);
  assert.deepEqual(f.subarray(4 + BODY), Buffer.from(PATH));
  const v6 = Buffer.from(encodeSend(datagram({ family: 6, src: '', dst: 'fd00::2', ifname: '', routerAlert: false })));
  assert.deepEqual([...v6.subarray(5, 7)], [6, 0]);
  assert.ok(v6.subarray(10, 42).every((b) => b === 0), 'no interface, no source: zeros');
  assert.deepEqual([...v6.subarray(42, 58)], [0xfd, 0, ...Array<number>(13).fill(0), 2]);
});

test('what the helper writes is read back in frames whatever the chunks', () => {
  const d = datagram({ port: 40000 });
  const stream = Buffer.concat([Buffer.from([0, 0, 0, 1, 4]), packetFrame(d), Buffer.from([0, 0, 0, 8, 3, 0, 0, 0, 90, ...Buffer.from('why')])]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const r = new FrameReader();
    const frames: Frame[] = [...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))];
    assert.deepEqual(frames, [{ type: 'ready' }, { type: 'packet', packet: d }, { type: 'result', errno: 90, reason: 'why' }], `cut at ${cut}`);
  }
  const v6 = datagram({ family: 6, src: 'fe80::1', dst: 'ff02::1:2', routerAlert: false });
  assert.deepEqual(new FrameReader().push(packetFrame(v6)), [{ type: 'packet', packet: v6 }]);
});

test('a frame that cannot be sent or read is refused with what is wrong', () => {
  assert.throws(() => encodeSend(datagram({ bytes: new Uint8Array(MSG_MAX + 1) })), /a message of 65536 bytes: more than 65535/);
  assert.throws(() => encodeSend(datagram({ ifname: 'an-interface-name' })), /interface name "an-interface-name" is longer than 15 bytes/);
  assert.throws(() => encodeSend(datagram({ ttl: 0 })), /TTL 0 is not 1 to 255/);
  assert.throws(() => encodeSend(datagram({ dst: 'fd00::1' })), /destination fd00::1 is not an IPv4 address/);
  assert.throws(() => encodeSend(datagram({ src: 'nonsense' })), /"nonsense" is not an IP address/);
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(FRAME_MAX + 1);
  assert.throws(() => new FrameReader().push(huge), /a frame of 65590 bytes \(1 to 65589\)/);
  assert.throws(() => new FrameReader().push(Buffer.from([0, 0, 0, 1, 7])), /a frame of type 7/);
});

test('UDP encapsulation: a router listens on 1698 and G*, a host on 1699; each sends where appendix C says', () => {
  assert.deepEqual(listenOn('router'), { port: 1698, group: '224.0.0.14' });
  assert.deepEqual(listenOn('host'), { port: 1699, group: null });
  assert.equal(PU, 1698);
  assert.equal(PU_HOST, 1699);
  // a host's Path (Router Alert, toward D) to the routers of its LAN, on G*/Pu
  assert.deepEqual(udpDestination('host', { dst: '192.0.2.10', routerAlert: true }), { dst: G_STAR, port: 1698 });
  // a host's Resv to its previous hop, a router, on Pu
  assert.deepEqual(udpDestination('host', { dst: '10.0.0.1', routerAlert: false }), { dst: '10.0.0.1', port: 1698 });
  // a router's Path to D, and its Resv/errors to a UDP-only host, on Pu'
  assert.deepEqual(udpDestination('router', { dst: '192.0.2.10', routerAlert: true }), { dst: '192.0.2.10', port: 1699 });
  assert.deepEqual(udpDestination('router', { dst: '10.0.0.2', routerAlert: false }), { dst: '10.0.0.2', port: 1699 });
});

/** rsvpio in its unprivileged mode on a free UDP port, its frames collected. */
class Helper {
  readonly child: Child;
  readonly frames: Frame[] = [];
  private readonly reader = new FrameReader();
  constructor(args: string[] = ['udp', '--port', '0']) {
    this.child = start([RSVPIO, ...args], { stdio: ['pipe', 'pipe', 'pipe'], name: 'rsvpio' });
    this.child.proc.stdout!.on('data', (d: Buffer) => this.frames.push(...this.reader.push(d)));
  }
  async until(n: number): Promise<Frame[]> {
    for (let i = 0; i < 200 && this.frames.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return this.frames;
  }
}

test('the helper carries a message over UDP on loopback, with interface, addresses, port and TTL', async () => {
  const rx = new Helper(['udp', '--port', '0']);
  await rx.until(1);
  // its port: the one the kernel gave, read from /proc (the helper has no use for saying it)
  const port = boundPort(rx.child.pid!);
  const tx = new Helper();
  await tx.until(1);
  tx.child.proc.stdin!.write(encodeSend(datagram({ routerAlert: false, ttl: 7, port, ifname: '', src: '127.0.0.1', dst: '127.0.0.1' })));
  assert.deepEqual((await tx.until(2))[1], { type: 'result', errno: 0, reason: '' });
  const got = (await rx.until(2))[1];
  assert.equal(got?.type, 'packet');
  const p = (got as { packet: Datagram }).packet;
  assert.deepEqual({ ...p, port: 0 }, { family: 4, routerAlert: false, ttl: 7, port: 0, ifname: 'lo', src: '127.0.0.1', dst: '127.0.0.1', bytes: PATH });
  // no IPv6 in UDP mode: a result says so, and the helper goes on
  tx.child.proc.stdin!.write(encodeSend(datagram({ family: 6, src: '', dst: '::1', port })));
  assert.deepEqual((await tx.until(3))[2], { type: 'result', errno: 97, reason: 'IPv6 is not open' });
  for (const h of [rx, tx]) {
    h.child.proc.stdin!.end();
    assert.deepEqual(await h.child.exited, { code: 0, signal: null }, 'it exits when its stdin closes');
  }
});

/** The UDP port the process's one socket is bound to, from /proc. */
function boundPort(pid: number): number {
  const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((f) => /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/fd/${f}`))?.[1]).filter(Boolean));
  const line = readFileSync(`/proc/${pid}/net/udp`, 'utf8').split('\n').find((l) => inodes.has(l.trim().split(/\s+/)[9]));
  assert.ok(line, 'the helper has a UDP socket');
  return parseInt(line.trim().split(/\s+/)[1]!.split(':')[1]!, 16);
}

test('a malformed or oversized frame stops the helper with one line naming it', async () => {
  const cases: [Buffer, RegExp][] = [
    [Buffer.from([0, 0, 0, 0x10, 9]), /^rsvpio: a frame of 16 bytes: less than the 54 of a SEND frame's head\n$/],
    [Buffer.from([0, 1, 0, 0x40, 1]), /^rsvpio: a frame of 65600 bytes: more than 65589 \(a message is at most 65535 bytes\)\n$/],
    [Buffer.concat([Buffer.from([0, 0, 0, BODY, 9]), Buffer.alloc(BODY - 1)]), /^rsvpio: a frame of type 9 \(only SEND, 1, comes in\)\n$/],
    [Buffer.from([0, 0, 0]), /^rsvpio: stdin closed in the middle of a frame \(3 bytes\)\n$/],
  ];
  for (const [bytes, said] of cases) {
    const h = new Helper();
    await h.until(1);
    h.child.proc.stdin!.end(bytes);
    assert.deepEqual(await h.child.exited, { code: 2, signal: null });
    assert.match(h.child.stderr, said);
  }
  const h = new Helper(['udp', '--port', '0', '--bogus']);
  assert.deepEqual(await h.child.exited, { code: 2, signal: null });
  assert.match(h.child.stderr, /^rsvpio: unknown argument --bogus\n$/);
});
