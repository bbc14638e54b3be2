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
import { NetChain } from '../bench/netchain.js';
import { removeStale } from '../demo/net.js';
import { start } from '../exec.js';
import { decode, encode, type RsvpMessage } from '../rsvp/message.js';
import { initialAdspec } from '../rsvp/support.js';
import { QOS, requireE2e } from './harness.js';
import { Peer, type PeerEvent } from './rsvp-peer.js';

requireE2e('tc', 'nft');

const PREFIX = 'qgst';
const peers: Peer[] = [];
let chain: NetChain;
let dir: string;
let A: { s: string; d: string };
/** the router's interface toward the receiver */
let OUT: string;

before(() => {
  removeStale(PREFIX);
  dir = mkdtempSync(join(tmpdir(), 'qosd-gs-terms-'));
  chain = new NetChain(PREFIX, ['s', 'r', 'd']);
  A = { s: chain.node('s').right!.ip, d: chain.node('d').left!.ip };
  OUT = chain.node('r').right!.dev;
});

after(async () => {
  await Promise.all(peers.map((p) => p.child.stop('SIGTERM', 3000)));
  chain?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const isPacket = (e: PeerEvent): e is Extract<PeerEvent, { ev: 'packet' }> => e.ev === 'packet';

/** The ADSPEC of the Path the receiver gets through a router run with these options. */
async function pathThrough(routerArgs: string[], port: number): Promise<ReturnType<typeof initialAdspec>> {
  const router = start([process.execPath, QOS, 'rsvp', 'router', '--json', '--refresh', '2s', '--state-dir', dir, ...routerArgs], { netns: chain.node('r').ns, keepStdout: true, name: 'qos rsvp router' });
  try {
    await router.until('"ready"', 20_000, 'stdout');
    const sender = new Peer(chain.node('s').ns), receiver = new Peer(chain.node('d').ns);
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

test('a router with --link OUT=10Mbit adds its HTB\'s terms there: Ctot = Csum = 1500 bytes (the MTU), Dtot = Dsum = 1200 us (1500 bytes at 10 Mb/s)', async () => {
  const ad = await pathThrough(['--link', `${OUT}=10Mbit`], 5004);
  assert.deepEqual(ad.gs, { breakBit: false, terms: { ctot: 1500, dtot: 1200, csum: 1500, dsum: 1200 } });
  assert.deepEqual(ad.general, { breakBit: false, hopCount: 1, pathBw: 1_250_000, minLatency: 0, mtu: 1500 });
});

test('--gs-terms OUT=3000,77 gives the interface those terms instead', async () => {
  const ad = await pathThrough(['--link', `${OUT}=10Mbit`, '--gs-terms', `${OUT}=3000,77`], 5006);
  assert.deepEqual(ad.gs?.terms, { ctot: 3000, dtot: 77, csum: 3000, dsum: 77 });
});
