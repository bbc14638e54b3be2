/* The calls not covered by the programs in marking.test.ts, each made by a small C program
 * (agent/test/calls.c) under the agent: bind + listen + accept on a server, sendmmsg to two
 * destinations, and setsockopt(IP_TOS) by the application itself. The DS field on the wire,
 * read by tshark, and the daemon's decision log show each was seen and applied. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { call } from '../daemon/admin-client.js';
import { AGENT_TEST_BIN, requireE2e, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e();
let tb: Testbed;
let daemon: TestDaemon;
const calls = join(AGENT_TEST_BIN, 'calls');
const SERVE = 7300, MMSG1 = 7311, MMSG2 = 7312, TOS_KEPT = 7321, TOS_VETOED = 7322;

const policy = () => `
rules:
  - { name: srv-listen, match: { event: listen, local_port: ${SERVE} }, action: { dscp: CS4 } }
  - { name: srv-accept, match: { event: accept, remote: ${tb.clientIp}/32 }, action: { dscp: EF } }
  - { name: mmsg-1, match: { event: sendto, remote_port: ${MMSG1} }, action: { dscp: EF } }
  - { name: mmsg-2, match: { event: sendto, remote_port: ${MMSG2} }, action: { dscp: AF41 } }
  - { name: tos-veto, match: { event: setsockopt, cmdline: "* ${TOS_VETOED} *" }, action: { dscp: AF21, override: true } }
  - { name: calls-connect, match: { exe: "*/calls", event: connect }, action: { dscp: CS2 } }
`;

before(async () => {
  tb = new Testbed();
  daemon = await new TestDaemon(tb.dir, policy()).start();
  for (const port of [TOS_KEPT, TOS_VETOED]) await tb.sink(port);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

async function decisions(): Promise<{ event: string; rule: string | null }[]> {
  const r = await call(daemon.admin, 'GET', '/v1/decisions?limit=1000');
  return r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; rule: string | null });
}

test('bind, listen and accept: the SYN-ACK carries the listen decision, the data the accept decision', async () => {
  const cap = await tb.capture(`tcp and src port ${SERVE}`);
  const server = tb.start(daemon.run(calls, 'serve', String(SERVE), 'hello from the server'), tb.server);
  let out = '';
  server.stdout!.on('data', (d: Buffer) => (out += d));
  // (it listens once the daemon has answered its bind and listen: however long that takes)
  await waitFor('the server to listen', () => out.includes('listening') || server.exitCode !== null);
  assert.match(out, /listening/);
  const r = tb.inClient(['socat', '-u', `TCP:${tb.serverIp}:${SERVE}`, '-']);
  assert.equal(r.stdout, 'hello from the server', r.stderr);
  const code = await new Promise<number | null>((res) => (server.exitCode !== null ? res(server.exitCode) : server.once('exit', res)));
  assert.equal(code, 0);
  const pkts = await cap.packets();
  const synAck = pkts.filter((p) => p.syn && p.ack);
  assert.equal(synAck.length, 1);
  assert.equal(synAck[0]!.dscp, 32, 'SYN-ACK: CS4 from the listen rule');
  const after = pkts.filter((p) => !p.syn);
  assert.ok(after.length >= 2);
  assert.deepEqual([...new Set(after.map((p) => p.dscp))], [46], 'data and FIN: EF from the accept rule');
  const seen = (await decisions()).filter((d) => d.rule?.startsWith('srv-') || d.event === 'bind');
  assert.deepEqual([...new Set(seen.map((d) => `${d.event}:${d.rule}`))].sort(), ['accept:srv-accept', 'bind:null', 'listen:srv-listen']);
});

test('sendmmsg to two destinations: each destination gets its own mark, every datagram sent', async () => {
  const cap = await tb.capture(`udp and (dst port ${MMSG1} or dst port ${MMSG2})`);
  const r = tb.inClient(daemon.run(calls, 'mmsg', tb.serverIp, String(MMSG1), String(MMSG2)));
  assert.equal(r.status, 0, r.stderr);
  const pkts = await cap.packets();
  assert.deepEqual(pkts.filter((p) => p.dstPort === MMSG1).map((p) => p.dscp), [46, 46]);
  assert.deepEqual(pkts.filter((p) => p.dstPort === MMSG2).map((p) => p.dscp), [34, 34]);
});

test('setsockopt(IP_TOS) by the application: its choice stands, unless a setsockopt rule overrides it', async () => {
  const cap = await tb.capture(`tcp and (dst port ${TOS_KEPT} or dst port ${TOS_VETOED}) and tcp[tcpflags] & tcp-syn != 0`);
  for (const port of [TOS_KEPT, TOS_VETOED]) {
    const r = tb.inClient(daemon.run(calls, 'tos', tb.serverIp, String(port), String(8 << 2)));
    assert.equal(r.status, 0, r.stderr);
  }
  const pkts = await cap.packets();
  assert.deepEqual(pkts.filter((p) => p.dstPort === TOS_KEPT).map((p) => p.dscp), [8], 'CS1 as the program set it, not the connect rule\'s CS2');
  assert.deepEqual(pkts.filter((p) => p.dstPort === TOS_VETOED).map((p) => p.dscp), [18], 'AF21 from the setsockopt rule with override');
  const seen = (await decisions()).filter((d) => d.event === 'setsockopt').map((d) => d.rule);
  assert.deepEqual(seen, [null, 'tos-veto']);
});
