import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Flow } from '../daemon/flows.js';
import { emptyState } from './model.js';
import { planChange } from './plan.js';
import { TcAttach, procAddress, tupleFromProcNet, type FiveTuple } from './attach.js';
import { TrafficControl, type TcRunner } from './control.js';
import { tcRequestOf } from './request.js';

test('/proc/net addresses and the line of a socket\'s inode', () => {
  assert.equal(procAddress('0100007F'), '127.0.0.1');
  assert.equal(procAddress('0000000000000000FFFF00000201A8C0'), '192.168.1.2');
  assert.equal(procAddress('B80D0120000000000000000001000000'), '2001:db8:0:0:0:0:0:1');
  const udp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  12: 0100000A:D431 0200000A:1451 01 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0
  13: 0100000A:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0`;
  assert.deepEqual(tupleFromProcNet(udp, '4242', 'udp'), { family: 4, proto: 'udp', src: '10.0.0.1', sport: 0xd431, dst: '10.0.0.2', dport: 5201 });
  assert.equal(tupleFromProcNet(udp, '4243', 'udp'), null, 'not connected yet');
  // unconnected, after a sendto to 10.0.0.9:53 from port 0xd432 of any address
  const sent = udp.replace('0100000A:0000 00000000:0000', '00000000:D432 00000000:0000');
  assert.deepEqual(tupleFromProcNet(sent, '4243', 'udp', { address: '::ffff:10.0.0.9', port: 53 }), { family: 4, proto: 'udp', src: '*', sport: 0xd432, dst: '10.0.0.9', dport: 53 });
  assert.equal(tupleFromProcNet(udp, '9', 'udp'), null);
});

/** A runner that keeps nothing but what it is told, and answers for one interface. */
function fakeRunner(): TcRunner & { applied: number } {
  const r = { applied: 0, async apply() { r.applied++; }, async link(dev: string) { return { exists: dev === 'eth0', vlan: false, speed: 125_000_000, root: null }; }, async leftovers() { return { devs: [], table: false, tagged: [] }; } };
  return r;
}

const flow = (pid: number, fd: number): Flow => ({
  pid, fd, uid: 1000, family: 'inet', type: 'dgram', proto: 'udp', protocol: 17, local: null, remote: { address: '10.0.0.2', port: 5201 }, destinations: 0,
  decision: null, class: 'none', rule: 'video', appTos: null, appPriority: null, exe: '/usr/bin/iperf3', user: 'u', created: 0, updated: 0,
});

test('attach: a decided socket gets a flow and an exact filter; a second socket of the process joins; the flow goes with the last', async () => {
  const tc = new TrafficControl(fakeRunner());
  const tuples = new Map<string, FiveTuple>([
    ['7/3', { family: 4, proto: 'udp', src: '10.0.0.1', sport: 40000, dst: '10.0.0.2', dport: 5201 }],
    ['7/4', { family: 4, proto: 'udp', src: '10.0.0.1', sport: 40001, dst: '10.0.0.2', dport: 5201 }],
  ]);
  const a = new TcAttach(tc, { tuple: (pid, fd) => tuples.get(`${pid}/${fd}`) ?? null, route: async () => 'eth0' });
  const decision = { dscp: 34, tc: tcRequestOf({ template: 'H263CIF' }) };
  const f3 = flow(7, 3), f4 = flow(7, 4);
  a.onEvent({ kind: 'decided', flow: f3, decision, rule: 'video' });
  a.onEvent({ kind: 'decided', flow: f3, decision, rule: 'video' }); // a cached call again: once
  const until = async (cond: () => boolean) => { for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5)); assert.ok(cond()); };
  await until(() => tc.current.filters.size === 1);
  a.onEvent({ kind: 'decided', flow: f4, decision, rule: 'video' });
  await until(() => tc.current.filters.size === 2);
  assert.equal(tc.current.flows.size, 1, 'the second socket joins the process\'s flow');
  const [fl] = tc.current.flows.values();
  assert.deepEqual(fl!.owner, { kind: 'policy', pid: 7, fd: 3, rule: 'video' });
  assert.equal(fl!.dscp, 34, 'the rule\'s own mark is the flow\'s');
  a.onEvent({ kind: 'closed', flow: f3, why: 'close' });
  await until(() => tc.current.filters.size === 1);
  assert.equal(tc.current.flows.size, 1);
  a.onEvent({ kind: 'closed', flow: f4, why: 'exit' });
  await until(() => tc.current.flows.size === 0);
  assert.equal(planChange(tc.current, emptyState()).nft.length, 1, 'only the table is left, as after any last flow');
  // a socket closed before its tuple appears gets nothing
  const f5 = flow(8, 5);
  a.onEvent({ kind: 'decided', flow: f5, decision, rule: 'video' });
  a.onEvent({ kind: 'closed', flow: f5, why: 'close' });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(tc.current.flows.size, 0);
  assert.equal(a.attachedTotal, 2);
});

test('attach: a user past their bound of flows gets no more, and others are not held back', async () => {
  const tc = new TrafficControl(fakeRunner());
  const a = new TcAttach(tc, { tuple: (pid, fd) => ({ family: 4, proto: 'udp', src: '10.0.0.1', sport: pid * 10 + fd, dst: '10.0.0.2', dport: 5201 }), route: async () => 'eth0' }, undefined, { flowsPerUser: 2, socketsPerUser: 3 });
  const decision = { tc: tcRequestOf({ template: 'G711' }) };
  const until = async (cond: () => boolean) => { for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5)); assert.ok(cond()); };
  const mine = [1, 2, 3, 4].map((pid) => ({ ...flow(pid, 3), uid: 1000 }));
  for (const f of mine) a.onEvent({ kind: 'decided', flow: f, decision, rule: 'r' });
  await until(() => a.attachedTotal + a.overLimit + a.failed === 4);
  assert.equal(tc.current.flows.size, 2, 'two flows for uid 1000, each a process of its own');
  assert.equal(a.overLimit, 2);
  const theirs = { ...flow(9, 3), uid: 1001 };
  a.onEvent({ kind: 'decided', flow: theirs, decision, rule: 'r' });
  await until(() => tc.current.flows.size === 3);
  // a flow that goes gives its user the room back
  a.onEvent({ kind: 'closed', flow: mine[0]!, why: 'exit' });
  await until(() => tc.current.flows.size === 2);
  a.onEvent({ kind: 'decided', flow: mine[3]!, decision, rule: 'r' });
  await until(() => tc.current.flows.size === 3);
});
