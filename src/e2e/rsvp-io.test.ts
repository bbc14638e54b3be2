/* RSVP's transports on real kernels: three network namespaces, sender — router — receiver,
 * joined by veth pairs, each node a peer process (rsvp-peer.ts) with the transport open.
 * A Path with Router Alert toward the receiver is intercepted by the router (IP_ROUTER_ALERT,
 * forwarding on) and not delivered; the router sends it on with the sender's source address
 * and it arrives; a Resv goes hop by hop; captures decoded by tshark show protocol 46, the
 * Router Alert option and the message type; the UDP encapsulation (RFC 2205 appendix C) gets
 * a host's Path to the router and the router's to a host; IPv4 and IPv6. Run it under
 * `flock /tmp/qosd-e2e.lock`: other end-to-end tests use this machine too. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { must, removeNamespace, removeStale } from '../demo/net.js';
import { run } from '../exec.js';
import { requireTools } from '../prerequisites.js';
import { decode, encode, type RsvpMessage } from '../rsvp/message.js';
import { RSVPIO_PROGRAM as RSVPIO } from '../paths.js';
import type { RsvpObject } from '../rsvp/objects.js';
import { SAMPLE_MESSAGES_V4, SAMPLE_MESSAGES_V6 } from '../rsvp/samples.js';
import { requireE2e, sleep } from './harness.js';
import { Capture } from './rsvp-net.js';
import { Peer, type PeerEvent, type PeerPacket } from './rsvp-peer.js';

requireE2e();
requireTools('sysctl', 'setpriv');

const PREFIX = 'qrsvp';
const TAG = `${PREFIX}${process.pid}`;
const NS = { s: `${TAG}-s`, r: `${TAG}-r`, d: `${TAG}-d` };
/** addresses: sender on link 1, receiver on link 2, the router on both */
const A = {
  4: { s: '10.251.1.2', r1: '10.251.1.1', r2: '10.251.2.1', d: '10.251.2.2' },
  6: { s: 'fd00:251:1::2', r1: 'fd00:251:1::1', r2: 'fd00:251:2::1', d: 'fd00:251:2::2' },
} as const;
const made: string[] = [];
const peers: Peer[] = [];
/** each family's sender and router of the first test, for the second */
const nodes: Partial<Record<4 | 6, { sender: Peer; router: Peer }>> = {};
let dir: string;

function inNs(ns: string, ...argv: string[]): void {
  must(['ip', 'netns', 'exec', ns, ...argv]);
}

before(() => {
  removeStale(PREFIX);
  dir = mkdtempSync(join(tmpdir(), 'qosd-rsvp-io-'));
  for (const ns of Object.values(NS)) { must(['ip', 'netns', 'add', ns]); made.push(ns); inNs(ns, 'ip', 'link', 'set', 'lo', 'up'); }
  must(['ip', 'link', 'add', 's0', 'netns', NS.s, 'type', 'veth', 'peer', 'name', 'r1', 'netns', NS.r]);
  must(['ip', 'link', 'add', 'r2', 'netns', NS.r, 'type', 'veth', 'peer', 'name', 'd0', 'netns', NS.d]);
  const addr = (ns: string, dev: string, k: 's' | 'r1' | 'r2' | 'd') => {
    inNs(ns, 'ip', 'addr', 'add', `${A[4][k]}/24`, 'dev', dev);
    inNs(ns, 'ip', '-6', 'addr', 'add', `${A[6][k]}/64`, 'dev', dev, 'nodad');
    inNs(ns, 'ip', 'link', 'set', dev, 'up');
  };
  addr(NS.s, 's0', 's'); addr(NS.r, 'r1', 'r1'); addr(NS.r, 'r2', 'r2'); addr(NS.d, 'd0', 'd');
  for (const [ns, via] of [[NS.s, 'r1'], [NS.d, 'r2']] as const) {
    inNs(ns, 'ip', 'route', 'add', 'default', 'via', A[4][via]);
    inNs(ns, 'ip', '-6', 'route', 'add', 'default', 'via', A[6][via]);
  }
  // IP_ROUTER_ALERT takes only what the node would forward
  inNs(NS.r, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  inNs(NS.r, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
});

after(async () => {
  await Promise.all(peers.map((p) => p.child.stop('SIGTERM', 3000)));
  for (const ns of made.splice(0).reverse()) removeNamespace(ns);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function peer(ns: string, open: Parameters<Peer['open']>[0]): Promise<Peer> {
  const p = new Peer(ns);
  peers.push(p);
  return p.open(open);
}

/** A sample message of the family with this testbed's addresses in it. */
function message(f: 4 | 6, type: 'Path' | 'Resv'): { msg: RsvpMessage; hex: string } {
  const sample = (f === 4 ? SAMPLE_MESSAGES_V4 : SAMPLE_MESSAGES_V6).find((m) => m.type === type)!;
  const a = A[f];
  const objects = sample.objects.map((o): RsvpObject => {
    if (o.kind === 'SESSION') return { ...o, destination: a.d };
    if (o.kind === 'RSVP_HOP') return { ...o, address: type === 'Path' ? a.s : a.d };
    if (o.kind === 'SENDER_TEMPLATE' || o.kind === 'FILTER_SPEC') return { ...o, source: a.s };
    return o;
  });
  const msg = { ...sample, objects };
  return { msg, hex: Buffer.from(encode(msg)).toString('hex') };
}

const isPacket = (e: PeerEvent): e is Extract<PeerEvent, { ev: 'packet' }> => e.ev === 'packet';

for (const f of [4, 6] as const) {
  const a = A[f];
  const ra = f === 4 ? 'ip.opt.ra' : 'ipv6.opt.router_alert';
  const ip = f === 4 ? 'ip' : 'ipv6';
  const ttl = f === 4 ? 'ip.ttl' : 'ipv6.hlim';

  test(`IPv${f}: a Path with Router Alert is intercepted by the router, not delivered; sent on with the sender's source it arrives; a Resv goes hop by hop; tshark sees protocol 46, Router Alert and the types`, async () => {
    const sender = await peer(NS.s, { op: 'raw', intercept: false, families: [f] });
    const router = await peer(NS.r, { op: 'raw', intercept: true, families: [f] });
    const receiver = await peer(NS.d, { op: 'raw', intercept: false, families: [f] });
    nodes[f] = { sender, router };
    const path = message(f, 'Path');
    const capIn = new Capture(NS.r, 'r1', f === 4 ? 'ip proto 46' : 'ip6', dir);
    const capOut = new Capture(NS.d, 'd0', f === 4 ? 'ip proto 46' : 'ip6', dir);
    await Promise.all([capIn.started(), capOut.started()]);

    // (1) intercepted with where it came from, and not forwarded
    sender.cmd({ op: 'send', p: { hex: path.hex, ifname: null, src: a.s, dst: a.d, ttl: 64, routerAlert: true } });
    const got = (await router.waitFor(isPacket)).p;
    assert.deepEqual({ ...got, hex: '' }, { hex: '', ifname: 'r1', src: a.s, dst: a.d, ttl: 64, routerAlert: true, via: 'raw' });
    assert.deepEqual(decode(Buffer.from(got.hex, 'hex')), path.msg, 'the codec reads what came');
    await sleep(500);
    assert.deepEqual(receiver.packets(), [], 'the router kept it: the receiver has nothing');
    assert.deepEqual(await sender.counts(), { sent: 1, received: 0, sendErrors: 0 });

    // (2) the router sends it on, the IP source the sender's (RFC 2205 section 3.1.3)
    router.cmd({ op: 'send', p: { hex: got.hex, ifname: 'r2', src: a.s, dst: a.d, ttl: 63, routerAlert: true } });
    const arrived = (await receiver.waitFor(isPacket)).p;
    assert.deepEqual(arrived, { hex: path.hex, ifname: 'd0', src: a.s, dst: a.d, ttl: 63, routerAlert: true, via: 'raw' });

    // (3) a Resv, unicast and without Router Alert, to the router's address on the receiver's link
    const resv = message(f, 'Resv');
    receiver.cmd({ op: 'send', p: { hex: resv.hex, ifname: null, src: a.d, dst: a.r2, ttl: 64, routerAlert: false } });
    const back = await router.waitFor(isPacket, 5000, router.events.findIndex(isPacket) + 1);
    assert.deepEqual(back.p, { hex: resv.hex, ifname: 'r2', src: a.d, dst: a.r2, ttl: 64, routerAlert: false, via: 'raw' });
    assert.deepEqual(await router.counts(), { sent: 1, received: 2, sendErrors: 0 });

    // (4) what was on the wires, by an independent decoder
    const want = [`${ip}.src`, `${ip}.dst`, ttl, ra, 'rsvp.msg'];
    const onIn = (await capIn.fields(want)).filter((l) => l.endsWith('|1'));
    assert.equal(onIn.length, 1, `one Path on the sender's link: ${onIn.join(' / ')}`);
    const [src, dst, hops, alert] = onIn[0]!.split('|');
    assert.deepEqual([src, dst, hops], [a.s, a.d, '64']);
    assert.notEqual(alert, '', 'the Router Alert option is there');
    const onOut = (await capOut.fields(want)).filter((l) => /\|[12]$/.test(l)).map((l) => l.split('|'));
    assert.deepEqual(onOut.map((x) => [x[0], x[1], x[2], x[3] !== '', x[4]]), [[a.s, a.d, '63', true, '1'], [a.d, a.r2, '64', false, '2']]);
  });

  test(`IPv${f}: a second raw socket in a namespace works beside the first; a send that cannot go is counted, not thrown`, async () => {
    const router2 = await peer(NS.r, { op: 'raw', intercept: true, families: [f] });
    const receiver2 = await peer(NS.d, { op: 'raw', intercept: false, families: [f] });
    const { sender, router: first } = nodes[f]!;
    const path = message(f, 'Path');
    sender.cmd({ op: 'send', p: { hex: path.hex, ifname: null, src: a.s, dst: a.d, ttl: 9, routerAlert: true } });
    assert.equal((await router2.waitFor(isPacket)).p.ttl, 9, 'the second intercepting socket has it too');
    await first.waitFor((e): e is PeerEvent => isPacket(e) && e.p.ttl === 9);
    router2.cmd({ op: 'send', p: { hex: path.hex, ifname: 'r2', src: a.s, dst: a.d, ttl: 8, routerAlert: true } });
    assert.equal((await receiver2.waitFor(isPacket)).p.ttl, 8);
    const before = await sender.counts();
    sender.cmd({ op: 'send', p: { hex: path.hex, ifname: 'nosuch0', src: a.s, dst: a.d, ttl: 9, routerAlert: true } });
    sender.cmd({ op: 'send', p: { hex: '00'.repeat(65536), ifname: null, src: a.s, dst: a.d, ttl: 9, routerAlert: true } });
    const w1 = await sender.waitFor((e): e is Extract<PeerEvent, { ev: 'warning' | 'error' }> => e.ev === 'warning' && e.message.includes('no interface nosuch0'));
    assert.match(w1.message, /^rsvp send: no interface nosuch0$/);
    await sender.waitFor((e): e is PeerEvent => e.ev === 'warning' && e.message.includes('65536 bytes'));
    assert.deepEqual(await sender.counts(), { ...before, sendErrors: before.sendErrors + 2 });
  });
}

test('UDP encapsulation: a host\'s Path reaches the router on 1698 by 224.0.0.14, the router\'s Path reaches a host on 1699; tshark decodes both as RSVP', async () => {
  const host = await peer(NS.s, { op: 'udp', role: 'host' });
  const router = await peer(NS.r, { op: 'udp', role: 'router' });
  const receiver = await peer(NS.d, { op: 'udp', role: 'host' });
  const path = message(4, 'Path');
  const capIn = new Capture(NS.r, 'r1', 'udp', dir);
  const capOut = new Capture(NS.d, 'd0', 'udp', dir);
  await Promise.all([capIn.started(), capOut.started()]);
  host.cmd({ op: 'send', p: { hex: path.hex, ifname: 's0', src: A[4].s, dst: A[4].d, ttl: 1, routerAlert: true } });
  const got = (await router.waitFor(isPacket)).p;
  assert.deepEqual(got, { hex: path.hex, ifname: 'r1', src: A[4].s, dst: '224.0.0.14', ttl: 1, routerAlert: true, via: 'udp' });
  router.cmd({ op: 'send', p: { hex: path.hex, ifname: 'r2', src: A[4].r2, dst: A[4].d, ttl: 63, routerAlert: true } });
  const there: PeerPacket = (await receiver.waitFor(isPacket)).p;
  assert.deepEqual(there, { hex: path.hex, ifname: 'd0', src: A[4].r2, dst: A[4].d, ttl: 63, routerAlert: true, via: 'udp' });
  const decodeAs = ['udp.port==1698,rsvp', 'udp.port==1699,rsvp'];
  const fields = ['ip.src', 'ip.dst', 'udp.dstport', 'rsvp.msg'];
  assert.deepEqual(await capIn.fields(fields, decodeAs), [`${A[4].s}|224.0.0.14|1698|1`]);
  assert.deepEqual((await capOut.fields(fields, decodeAs)).filter((l) => !l.includes('224.0.0.')), [`${A[4].r2}|${A[4].d}|1699|1`]);
});

test('the helper goes when its user does: closed, or its process killed, no rsvpio is left in the namespace', async () => {
  const helpers = (ns: string) => must(['ip', 'netns', 'pids', ns]).split(/\s+/).filter(Boolean)
    .filter((pid) => { try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'rsvpio'; } catch { return false; } });
  const ns = NS.s;
  for (const p of peers.filter((x) => x.ns === ns)) await p.child.stop('SIGKILL', 3000);
  const closing = await peer(ns, { op: 'raw', intercept: false });
  const killed = await peer(ns, { op: 'raw', intercept: false });
  assert.equal(helpers(ns).length, 2);
  closing.cmd({ op: 'close' });
  await closing.waitFor((e): e is PeerEvent => e.ev === 'closed');
  assert.equal(helpers(ns).length, 1);
  await killed.child.stop('SIGKILL', 3000);
  for (let i = 0; i < 100 && helpers(ns).length; i++) await sleep(20);
  assert.deepEqual(helpers(ns), [], 'its stdin closed with the peer, and it exited');
});

test('without CAP_NET_RAW the helper says so in one line and exits 2', async () => {
  const r = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', RSVPIO, 'raw', '-4'], { ok: 'any', netns: NS.s });
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'rsvpio: socket(AF_INET, SOCK_RAW, 46): Operation not permitted (it needs CAP_NET_RAW)\n');
});
