/* Fail-open is exact on the datagram path: a program sees the same return values, errno and
 * msg_len from sendmmsg, sendmsg and sendto with the agent as without it, and with the agent
 * but no daemon, and the same datagrams leave (agent/test/send_calls.c: sendmmsg to two
 * alternating destinations, partial sends after an error, MSG_DONTWAIT, more messages than
 * the kernel takes at once, a connected socket, a descriptor that is not a socket). With the
 * daemon, each destination's datagrams carry its own mark, on a connected socket too. The
 * capture is on the client's interface: the burst of 1,024 datagrams leaves whole there,
 * while the server's receive queue may drop part of it. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AGENT_TEST_BIN, requireE2e, type Packet, TestDaemon, Testbed } from './harness.js';

requireE2e();
let tb: Testbed;
let daemon: TestDaemon;
const sendCalls = join(AGENT_TEST_BIN, 'send_calls');
const A = 7501, B = 7502;

const POLICY = `
rules:
  - { name: to-a, match: { remote_port: ${A} }, action: { dscp: EF } }
  - { name: to-b, match: { remote_port: ${B} }, action: { dscp: AF41 } }
`;

before(async () => {
  tb = new Testbed();
  daemon = await new TestDaemon(tb.dir, POLICY).start();
  await tb.udpSink([A, B]);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

const count = (pkts: Packet[], port: number) => pkts.filter((p) => p.dstPort === port).length;

test('sendmmsg, sendmsg and sendto return the same, and send the same datagrams, with the agent, without a daemon, and without the agent', async () => {
  const runs = await daemon.threeWays(tb, [sendCalls, tb.serverIp, String(A), String(B)], `udp and dst host ${tb.serverIp} and (dst port ${A} or dst port ${B})`, 'client');
  for (const r of Object.values(runs)) assert.equal(r.status, 0, r.stderr);
  // what the kernel itself answers, as a plain program sees it
  assert.match(runs.plain.stdout, /^sendmmsg ABAB: 4 errno 0 lens 8 8 8 8 /m);
  assert.match(runs.plain.stdout, /^sendmmsg 1030 alternating: 1024 errno 0 /m);
  assert.match(runs.plain.stdout, /^sendmmsg A, short address, B: 1 errno 0 lens 8 0 0 /m);
  const lines = (s: string) => s.split('\n');
  assert.deepEqual(lines(runs.noDaemon.stdout), lines(runs.plain.stdout), 'with the agent and no daemon, exactly as without the agent');
  assert.deepEqual(lines(runs.agent.stdout), lines(runs.plain.stdout), 'with the agent and a daemon, exactly as without the agent');
  for (const way of ['agent', 'noDaemon'] as const) {
    assert.equal(count(runs[way].packets, A), count(runs.plain.packets, A), `${way}: datagrams to A`);
    assert.equal(count(runs[way].packets, B), count(runs.plain.packets, B), `${way}: datagrams to B`);
  }
  assert.ok(count(runs.plain.packets, A) > 512 && count(runs.plain.packets, B) > 512);
  const dscps = (port: number) => [...new Set(runs.agent.packets.filter((p) => p.dstPort === port).map((p) => p.dscp))];
  assert.deepEqual(dscps(A), [46], 'every datagram to A is EF, those on the socket connected to A after one to B included');
  assert.deepEqual(dscps(B), [34], 'every datagram to B is AF41');
  assert.deepEqual([...new Set(runs.noDaemon.packets.map((p) => p.dscp))], [0]);
});
