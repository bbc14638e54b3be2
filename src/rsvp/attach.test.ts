/* The policy's reserve (attach.ts) on a host whose engine sends into a list: a decided socket
 * becomes a sender session once its 5-tuple is known, with the program in it; its close sends
 * PathTear; one user's sockets are bounded; the session's notifications reach the hub with
 * the flow. The kernel's side (the 5-tuple, the route) is faked here; src/e2e/rsvp-reserve
 * has the real one. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../clock.js';
import type { FlowEvent } from '../daemon/flow-events.js';
import type { Flow } from '../daemon/flows.js';
import { parsePolicy } from '../policy/load.js';
import { actionDecision } from '../policy/engine.js';
import type { FiveTuple, SocketLookup } from '../tc/attach.js';
import { RsvpAttach, SOCKETS_PER_USER } from './attach.js';
import { RsvpEngine } from './engine/engine.js';
import type { Outbound } from './engine/types.js';
import { RsvpHost } from './host.js';

async function setUp() {
  const sent: Outbound[] = [];
  const iface = { name: 'eth0', addresses: ['10.0.0.1'], lih: 2 };
  const routes = { lookup: () => ({ ifname: 'eth0', gateway: '10.0.0.254', src: '10.0.0.1' }) };
  let attach: RsvpAttach | null = null;
  const host = new RsvpHost({
    onProgramStatus: (e) => attach?.onStatus(e), // as the daemon wires them
    open: async (onEvent) => {
      const engine = new RsvpEngine({ role: 'host', clock: new ManualClock(0), interfaces: [iface], routes, send: (o) => sent.push(o), onEvent });
      return { engine, counts: () => ({ received: 0, sent: sent.length, send_errors: 0, unencodable: 0, undecodable: {}, integrity: {} }), sourceFor: () => '10.0.0.1', close: async () => engine.stop() };
    },
  });
  await host.start();
  const lookup: SocketLookup = {
    tuple: (_pid, fd, proto, to): FiveTuple => ({ family: 4, proto, src: '10.0.0.1', sport: 40000 + fd, dst: to.address, dport: to.port }),
    route: async () => 'eth0',
  };
  const hub: FlowEvent[] = [];
  attach = new RsvpAttach(host, { lookup, publish: (e) => hub.push(e) });
  return { host, attach, sent, hub };
}

const decision = actionDecision(parsePolicy('rules:\n  - action: { dscp: AF41, reserve: { service: controlled-load, flowspec: { TokenRate: 2Mbit, TokenBucketSize: 8kB, MaxSduSize: 1000 } } }\n').rules[0]!.action)!;

function flow(pid: number, fd: number, uid = 1000): Flow {
  return {
    pid, fd, uid, family: 'inet', type: 'dgram', proto: 'udp', protocol: 17, local: null, remote: { address: '10.0.9.2', port: 5004 } as unknown as Flow['remote'],
    destinations: 1, decision, class: 'be', rule: 'video', appTos: null, appPriority: null, exe: '/usr/bin/iperf3', user: 'alice', created: 0, updated: 0,
  };
}

const settle = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 5)); };

test('a decided socket becomes a sender session for its program; its close sends PathTear; its notifications reach the hub with the flow', async () => {
  const { host, attach, sent, hub } = await setUp();
  const f = flow(4242, 7);
  attach.onEvent({ kind: 'decided', flow: f, decision, rule: 'video' });
  await settle();
  const [m] = host.manager.all();
  assert.ok(m, 'a session was opened');
  assert.deepEqual([m.origin, m.uid, m.program?.pid, m.program?.exe, m.dscp], ['policy', 1000, 4242, '/usr/bin/iperf3', 34]);
  // 2 Mbit/s of payload in datagrams of 1,000 bytes: IntServ's M counts the IP and UDP headers
  assert.deepEqual([m.sender!.sender.port, m.sender!.session.port, m.sender!.tspec.r, m.sender!.tspec.M], [40007, 5004, 250_000, 1028]);
  const path = sent.find((o) => o.msg.type === 'Path');
  assert.equal(path?.dst, '10.0.9.2');
  host.manager.onEngine({ kind: 'resv', session: m.sender!.session, style: 'WF', flowspec: { kind: 'FLOWSPEC', service: 'CL', tspec: m.sender!.tspec }, filters: [] });
  const note = hub.find((e) => e.kind === 'reservation');
  assert.ok(note && note.kind === 'reservation' && note.flow === f && note.status.code === 'RECEIVERS');
  attach.onEvent({ kind: 'closed', flow: f, why: 'close' });
  assert.equal(host.manager.size, 0);
  assert.ok(sent.some((o) => o.msg.type === 'PathTear'), 'the close sent PathTear');
  await host.stop();
});

test('one user holds at most SOCKETS_PER_USER sockets being reserved for; another user is not affected', async () => {
  const { host, attach } = await setUp();
  for (let fd = 3; fd < 3 + SOCKETS_PER_USER + 1; fd++) attach.onEvent({ kind: 'decided', flow: flow(100, fd), decision, rule: 'video' });
  attach.onEvent({ kind: 'decided', flow: flow(200, 3, 2000), decision, rule: 'video' });
  assert.equal(attach.overLimit, 1);
  await settle();
  // the sessions themselves are bounded per uid by the host (MAX_PER_UID), below the sockets' bound
  assert.ok(host.manager.all().some((m) => m.uid === 2000), 'the other user got a session');
  attach.stop();
  await host.stop();
});

test('a socket closed before its 5-tuple is read gets no session, and holds nothing of its user\'s', async () => {
  const { host, attach } = await setUp();
  const f = flow(300, 5);
  attach.onEvent({ kind: 'decided', flow: f, decision, rule: 'video' });
  attach.onEvent({ kind: 'closed', flow: f, why: 'close' });
  await settle();
  assert.equal(host.manager.size, 0);
  // its place in the user's bound was given back: the bound's worth of new sockets all get in
  for (let fd = 10; fd < 10 + SOCKETS_PER_USER; fd++) attach.onEvent({ kind: 'decided', flow: flow(300, fd), decision, rule: 'video' });
  assert.equal(attach.overLimit, 0);
  attach.stop();
  await host.stop();
});
