/* An application that sets its own IP_TOS, IPV6_TCLASS or SO_PRIORITY keeps its choice under
 * a policy rule that matches it, unless the rule says override (docs/policy.md): before a
 * connect, before sendto/sendmsg/sendmmsg, over IPv6, after the agent already decided a
 * destination, with a one-byte IP_TOS. A C program (agent/test/own_mark.c) makes the calls
 * and prints every result; the DS field is read on the wire by tshark, and the program's output
 * is the same with the agent, with the agent and no daemon, and without the agent. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AGENT_TEST_BIN, requireE2e, type Packet, TestDaemon, Testbed } from './harness.js';

requireE2e();
let tb: Testbed;
let daemon: TestDaemon;
const ownMark = join(AGENT_TEST_BIN, 'own_mark');
const P = { udp4: 7401, udp6: 7402, tcp4: 7403, tcp6: 7404, later: 7405, later2: 7406, byte: 7407, forced: 7408 };

// The issue's policy: the program's datagrams get TOS 48 (0x30) and priority 5, no override;
// only port `forced` is marked with override.
const POLICY = `
rules:
  - { name: forced, match: { event: sendto, remote_port: ${P.forced} }, action: { tos: 48, override: true } }
  - { name: own-dgram, match: { cmdline: "*own_mark*", type: dgram }, action: { tos: 48, priority: 5 } }
  - { name: own-stream, match: { cmdline: "*own_mark*", type: stream }, action: { tos: 48, priority: 5 } }
`;

before(async () => {
  tb = new Testbed();
  daemon = await new TestDaemon(tb.dir, POLICY).start();
  await tb.udpSink([P.udp4, P.udp6, P.later, P.later2, P.byte, P.forced]);
  await tb.sink(P.tcp4);
  await tb.sink(P.tcp6);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

/** The DSCP of each packet the client sent to port, in order. */
const dscpsTo = (pkts: Packet[], port: number) => pkts.filter((p) => p.dstPort === port).map((p) => p.dscp);

/** Runs own_mark with steps three ways; asserts it prints the same (`get` lines included
 * unless sameGet is false) and returns the agent's run. */
async function ownMarkRun(steps: string[], ports: number[], sameGet = true) {
  const filter = `(dst host ${tb.serverIp} or dst host ${tb.serverIp6}) and (${ports.map((p) => `dst port ${p}`).join(' or ')})`;
  const runs = await daemon.threeWays(tb, [ownMark, tb.serverIp, tb.serverIp6, ...steps], filter);
  const lines = (s: string) => s.split('\n').filter((l) => sameGet || !l.startsWith('get '));
  for (const r of Object.values(runs)) assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(lines(runs.agent.stdout), lines(runs.plain.stdout), 'the program sees the same with the agent as without');
  assert.deepEqual(lines(runs.noDaemon.stdout), lines(runs.plain.stdout), 'and with the agent but no daemon');
  assert.equal(runs.agent.stderr, '');
  return runs;
}

test('UDP: the application\'s IP_TOS 0x20 and SO_PRIORITY stand under a matching rule without override (sendto, sendmsg, sendmmsg)', async () => {
  const runs = await ownMarkRun(['udp4', 'tos=32', 'prio=2', `sendto=4:${P.udp4}`, `sendmsg=4:${P.udp4}`, `sendmmsg=4:${P.udp4}`, 'get'], [P.udp4]);
  assert.match(runs.agent.stdout, /^get IP_TOS 32 SO_PRIORITY 2$/m);
  assert.deepEqual(dscpsTo(runs.agent.packets, P.udp4), [8, 8, 8, 8], 'DSCP 8 (0x20), not 12 (the rule\'s 0x30)');
  assert.deepEqual(dscpsTo(runs.plain.packets, P.udp4), [8, 8, 8, 8]);
});

test('UDP over IPv6: the application\'s IPV6_TCLASS stands', async () => {
  const runs = await ownMarkRun(['udp6', 'tclass=32', 'prio=2', `sendto=6:${P.udp6}`, `sendmsg=6:${P.udp6}`, `sendmmsg=6:${P.udp6}`, 'get'], [P.udp6]);
  assert.match(runs.agent.stdout, /^get IP_TOS \d+ IPV6_TCLASS 32 SO_PRIORITY 2$/m);
  assert.deepEqual(dscpsTo(runs.agent.packets, P.udp6), [8, 8, 8, 8]);
});

test('TCP: IP_TOS and IPV6_TCLASS set before connect stand on the SYN and after', async () => {
  const v4 = await ownMarkRun(['tcp4', 'tos=32', 'prio=2', `connect=4:${P.tcp4}`, 'send', 'get'], [P.tcp4]);
  assert.match(v4.agent.stdout, /^get IP_TOS 32 SO_PRIORITY 2$/m);
  const syn4 = v4.agent.packets.filter((p) => p.dstPort === P.tcp4);
  assert.ok(syn4.some((p) => p.syn) && syn4.length >= 3, 'SYN, data and FIN captured');
  assert.deepEqual([...new Set(syn4.map((p) => p.dscp))], [8]);
  const v6 = await ownMarkRun(['tcp6', 'tclass=32', 'prio=2', `connect=6:${P.tcp6}`, 'send', 'get'], [P.tcp6]);
  assert.match(v6.agent.stdout, /IPV6_TCLASS 32 SO_PRIORITY 2$/m);
  assert.deepEqual([...new Set(v6.agent.packets.map((p) => p.dscp))], [8]);
});

test('a mark set after the agent decided a destination stands for it and for new ones', async () => {
  const runs = await ownMarkRun(['udp4', `sendto=4:${P.later}`, 'tos=32', 'prio=2', `sendto=4:${P.later}`, `sendto=4:${P.later2}`, `sendto=4:${P.later}`, 'get'], [P.later, P.later2]);
  assert.match(runs.agent.stdout, /^get IP_TOS 32 SO_PRIORITY 2$/m);
  assert.deepEqual(dscpsTo(runs.agent.packets, P.later), [12, 8, 8], 'the rule\'s 0x30 until the program chose 0x20');
  assert.deepEqual(dscpsTo(runs.agent.packets, P.later2), [8]);
});

test('IP_TOS given as one byte counts as the application\'s choice too', async () => {
  const runs = await ownMarkRun(['udp4', 'tos1=32', `sendto=4:${P.byte}`, `sendto=4:${P.byte}`, 'get'], [P.byte], false);
  assert.match(runs.agent.stdout, /^get IP_TOS 32 SO_PRIORITY 5$/m, 'the program\'s TOS, the rule\'s priority (the program chose none)');
  assert.deepEqual(dscpsTo(runs.agent.packets, P.byte), [8, 8]);
  assert.deepEqual(dscpsTo(runs.plain.packets, P.byte), [8, 8]);
});

test('a rule with override: true replaces the application\'s choice', async () => {
  const runs = await ownMarkRun(['udp4', 'tos=32', `sendto=4:${P.forced}`, `sendto=4:${P.forced}`, 'get'], [P.forced], false);
  assert.deepEqual(dscpsTo(runs.agent.packets, P.forced), [12, 12]);
  assert.deepEqual(dscpsTo(runs.plain.packets, P.forced), [8, 8]);
});
