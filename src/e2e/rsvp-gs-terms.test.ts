/* The Guaranteed Service error terms a real `qos rsvp router` adds to the ADSPEC (RFC 2212
 * section 6): three network namespaces, sender — router — receiver; the sender's Path carries
 * the ADSPEC a host originates (support.ts initialAdspec, all terms 0); what the receiver gets
 * has the router's outgoing interface's terms: by default its HTB's at the --link rate (C = the
 * MTU, D = one MTU at the rate), or those --gs-terms gives. Run it under
 * `flock /tmp/qosd-e2e.lock`: other end-to-end tests use this machine too. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { must, removeNamespace, removeStale } from '../demo/net.js';
import { start } from '../exec.js';
import { requireTools } from '../prerequisites.js';
import { decode, encode, type RsvpMessage } from '../rsvp/message.js';
import { initialAdspec } from '../rsvp/support.js';
import { QOS, requireE2e } from './harness.js';
import { Peer, type PeerEvent } from './rsvp-peer.js';

requireE2e('tc', 'nft');
requireTools('sysctl');

const PREFIX = 'qgst';
const TAG = `${PREFIX}${process.pid}`;
const NS = { s: `${TAG}-s`, r: `${TAG}-r`, d: `${TAG}-d` };
const A = { s: '10.252.1.2', r1: '10.252.1.1', r2: '10.252.2.1', d: '10.252.2.2' };
const made: string[] = [];
const peers: Peer[] = [];
let dir: string;

const inNs = (ns: string, ...argv: string[]) => must(['ip', 'netns', 'exec', ns, ...argv]);

before(() => {
  removeStale(PREFIX);
  dir = mkdtempSync(join(tmpdir(), 'qosd-gs-terms-'));
  for (const ns of Object.values(NS)) { must(['ip', 'netns', 'add', ns]); made.push(ns); inNs(ns, 'ip', 'link', 'set', 'lo', 'up'); }
  must(['ip', 'link', 'add', 's0', 'netns', NS.s, 'type', 'veth', 'peer', 'name', 'r1', 'netns', NS.r]);
  must(['ip', 'link', 'add', 'r2', 'netns', NS.r, 'type', 'veth', 'peer', 'name', 'd0', 'netns', NS.d]);
  for (const [ns, dev, k] of [[NS.s, 's0', 's'], [NS.r, 'r1', 'r1'], [NS.r, 'r2', 'r2'], [NS.d, 'd0', 'd']] as const) {
    inNs(ns, 'ip', 'addr', 'add', `${A[k]}/24`, 'dev', dev);
    inNs(ns, 'ip', 'link', 'set', dev, 'up');
  }
  inNs(NS.s, 'ip', 'route', 'add', 'default', 'via', A.r1);
  inNs(NS.d, 'ip', 'route', 'add', 'default', 'via', A.r2);
  inNs(NS.r, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
});

after(async () => {
  await Promise.all(peers.map((p) => p.child.stop('SIGTERM', 3000)));
  for (const ns of made.splice(0).reverse()) removeNamespace(ns);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const isPacket = (e: PeerEvent): e is Extract<PeerEvent, { ev: 'packet' }> => e.ev === 'packet';

/** The ADSPEC of the Path the receiver gets through a router run with these options. */
async function pathThrough(routerArgs: string[], port: number): Promise<ReturnType<typeof initialAdspec>> {
  const router = start([process.execPath, QOS, 'rsvp', 'router', '--json', '--refresh', '2s', '--state-dir', dir, ...routerArgs], { netns: NS.r, keepStdout: true, name: 'qos rsvp router' });
  try {
    await router.until('"ready"', 20_000, 'stdout');
    const sender = new Peer(NS.s), receiver = new Peer(NS.d);
    peers.push(sender, receiver);
    await sender.open({ op: 'raw', intercept: false, families: [4] });
    await receiver.open({ op: 'raw', intercept: false, families: [4] });
    const path: RsvpMessage = { type: 'Path', flags: 0, sendTtl: 64, objects: [
      { kind: 'SESSION', destination: A.d, protocol: 17, flags: 0, port },
      { kind: 'RSVP_HOP', address: A.s, lih: 0 },
      { kind: 'TIME_VALUES', refreshMs: 30_000 },
      { kind: 'SENDER_TEMPLATE', source: A.s, port: 40000 },
      { kind: 'SENDER_TSPEC', r: 250_000, b: 10_000, p: Infinity, m: 64, M: 1500 },
      initialAdspec({ mtu: 1500 }),
    ] };
    sender.cmd({ op: 'send', p: { hex: Buffer.from(encode(path)).toString('hex'), ifname: null, src: A.s, dst: A.d, ttl: 64, routerAlert: true } });
    const got = decode(Buffer.from((await receiver.waitFor(isPacket, 10_000)).p.hex, 'hex'));
    assert.equal(got.type, 'Path');
    const ad = got.objects.find((o) => o.kind === 'ADSPEC');
    assert.ok(ad && ad.kind === 'ADSPEC', 'the forwarded Path has its ADSPEC');
    await Promise.all([sender.child.stop('SIGTERM', 3000), receiver.child.stop('SIGTERM', 3000)]);
    return ad;
  } finally {
    await router.stop('SIGTERM', 10_000);
  }
}

test('a router with --link r2=10Mbit adds its HTB\'s terms on r2: Ctot = Csum = 1500 bytes (the MTU), Dtot = Dsum = 1200 us (1500 bytes at 10 Mb/s)', async () => {
  const ad = await pathThrough(['--link', 'r2=10Mbit'], 5004);
  assert.deepEqual(ad.gs, { breakBit: false, terms: { ctot: 1500, dtot: 1200, csum: 1500, dsum: 1200 } });
  assert.deepEqual(ad.general, { breakBit: false, hopCount: 1, pathBw: 1_250_000, minLatency: 0, mtu: 1500 });
});

test('--gs-terms r2=3000,77 gives r2 those terms instead', async () => {
  const ad = await pathThrough(['--link', 'r2=10Mbit', '--gs-terms', 'r2=3000,77'], 5006);
  assert.deepEqual(ad.gs?.terms, { ctot: 3000, dtot: 77, csum: 3000, dsum: 77 });
});
