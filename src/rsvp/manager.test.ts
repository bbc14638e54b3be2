/* The RSVP manager (manager.ts) on engines in an in-process network (engine/testnet.ts: sender
 * host S — R1 — R2 — receiver hosts D and E), on a ManualClock: sessions, AutoRESV following
 * path state with seed 001's default styles, support mode's R, and FD_QOS notifications once
 * per change, not per refresh. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chain, type TestNet, type TestNode } from './engine/testnet.js';
import { pick } from './engine/messages.js';
import { MAX_AUTO, RsvpManager, type Managed } from './manager.js';
import type { PolicyData } from './policy-data.js';
import type { Session } from './session.js';
import type { StatusEvent } from './status.js';

const POLICY: PolicyData = { kind: 'POLICY_DATA', options: '', elements: [] };
const SESSION: Session = { kind: 'SESSION', destination: '10.0.3.2', protocol: 17, flags: 0, port: 5004 };
const bucket = (r: number) => ({ r, b: 8000, p: Infinity, m: 64, M: 1028 });

/** A manager on a node, fed its engine's events as they come. */
function managed(net: TestNet, name: string, autoResv: { service: 'CL' | 'GS'; delayS: number | null } | null = null) {
  const node: TestNode = net.node(name);
  const notes: StatusEvent[] = [];
  let seq = 0, fed = 0;
  const m = new RsvpManager({ engine: () => node.engine, notify: (e) => notes.push({ ...e, seq: ++seq, at: '' }), autoResv, hostPolicy: () => POLICY });
  const pump = () => { while (fed < node.events.length) m.onEngine(node.events[fed++]!); };
  return { m, node, notes, pump };
}

function run(net: TestNet, parts: { pump(): void }[], ms: number): void {
  for (let t = 0; t < ms; t += 100) {
    net.clock.advance(100);
    for (const p of parts) p.pump();
  }
}

const sender = (port: number, r: number): Omit<Managed, 'id' | 'active' | 'opened'> => ({
  uid: 1000, role: 'sender', origin: 'admin', policy: POLICY, program: null, dscp: null,
  sender: { session: SESSION, sender: { kind: 'SENDER_TEMPLATE', source: '10.0.1.2', port }, tspec: bucket(r) },
});

const resvs = (n: TestNode) => n.sent.filter((x) => x.o.msg.type === 'Resv').map((x) => pick(x.o.msg));

test('AutoRESV: a Path nobody asked for is answered WF; a second sender makes it FF with one descriptor each; the last sender gone takes the session', () => {
  const net = chain({ refreshMs: 1000 });
  const s = managed(net, 'S'), d = managed(net, 'D', { service: 'CL', delayS: null });
  s.m.open(sender(40000, 250_000), true);
  run(net, [s, d], 500);
  const first = d.m.all();
  assert.equal(first.length, 1);
  assert.equal(first[0]!.origin, 'auto');
  assert.equal(resvs(d.node).at(-1)!.style, 'WF', 'one sender: WF');
  assert.ok(s.notes.some((n) => n.code === 'RECEIVERS' && n.id === 1), 'the sender heard RECEIVERS');
  const two = s.m.open(sender(40001, 125_000), true);
  run(net, [s, d], 500);
  const last = resvs(d.node).at(-1)!;
  assert.equal(last.style, 'FF', 'two senders: FF');
  assert.deepEqual(last.descriptors.map((x) => [x.filters[0]!.port, x.flowspec!.tspec.r]).sort(), [[40000, 250_000], [40001, 125_000]]);
  s.m.close(two.id);
  s.m.close(1);
  run(net, [s, d], 500);
  assert.equal(d.m.size, 0, 'AutoRESV\'s session went with its last sender');
  assert.deepEqual(d.notes.filter((n) => n.code === 'NO_SENDERS').length, 2);
});

test('notifications once per change: a minute of refreshes adds no SENDERS or RECEIVERS; a new TSpec (update) does, at once', () => {
  const net = chain({ refreshMs: 1000 });
  const s = managed(net, 'S'), d = managed(net, 'D', { service: 'CL', delayS: null });
  const a = s.m.open(sender(40000, 250_000), true);
  run(net, [s, d], 60_000);
  assert.equal(d.notes.filter((n) => n.code === 'SENDERS').length, 1);
  assert.equal(s.notes.filter((n) => n.code === 'RECEIVERS').length, 1);
  s.m.updateTspec(a.id, bucket(300_000));
  run(net, [s, d], 300);
  assert.equal(d.notes.filter((n) => n.code === 'SENDERS').length, 2, 'the new TSpec is a change');
  assert.equal(s.notes.filter((n) => n.code === 'RECEIVERS').length, 2, 'and so is the Resv that follows it');
  assert.equal(net.node('S').sent.filter((x) => x.o.msg.type === 'PathTear').length, 0, 'a re-advertisement is not a teardown');
});

test('support mode, Guaranteed: R from the delay asked and the ADSPEC\'s terms; deactivate sends ResvTear, activate asks again', () => {
  const links = { r1b: { gs: { c: 1500, d: 1200 } }, r2b: { gs: { c: 1500, d: 120 } } };
  const net = chain({ refreshMs: 1000, links });
  const s = managed(net, 'S'), d = managed(net, 'D');
  const adspec = { kind: 'ADSPEC' as const, general: { breakBit: false, hopCount: 0, pathBw: 1e9, minLatency: 0, mtu: 1500 }, gs: { breakBit: false, terms: { ctot: 0, dtot: 0, csum: 0, dsum: 0 } } };
  net.node('S').engine.sender({ session: SESSION, sender: { kind: 'SENDER_TEMPLATE', source: '10.0.1.2', port: 40000 }, tspec: { kind: 'SENDER_TSPEC', r: 250_000, b: 20_000, p: Infinity, m: 64, M: 1028 }, adspec });
  const r = d.m.open({
    uid: 0, role: 'receiver', origin: 'admin', policy: POLICY, program: null, dscp: null,
    receiver: { session: SESSION, service: 'GS', mode: 'support', style: null, senders: [], tspec: null, R: null, S: 0, bandwidth: 250_000, delayS: 0.05, autoResv: true, confirm: false },
  }, true);
  run(net, [s, d], 500);
  const fs = resvs(d.node).at(-1)!.descriptors[0]!.flowspec!;
  assert.equal(fs.service, 'GS');
  // by hand: Ctot = 3000 bytes, Dtot = 1320 us; R = (b + Ctot) / (W - Dtot) = 23000 / 0.04868
  const R = 23_000 / (0.05 - 0.00132);
  assert.ok(fs.service === 'GS' && fs.R >= R && fs.R - R < 0.05, `R ${fs.service === 'GS' ? fs.R : '-'} is not ${R}`);
  d.m.deactivate(r.id);
  assert.ok(d.node.sent.some((x) => x.o.msg.type === 'ResvTear'), 'deactivating sends ResvTear');
  const before = resvs(d.node).length;
  d.m.activate(r.id);
  run(net, [s, d], 200);
  assert.ok(resvs(d.node).length > before, 'activating asks again');
});

test('a TSpec the wire cannot carry exactly is rounded up to the next 32-bit float, never down', () => {
  const net = chain({ refreshMs: 1000 });
  const s = managed(net, 'S');
  s.m.open(sender(40000, 129_013.969_240_672_77), true);
  const path = net.node('S').sent.find((x) => x.o.msg.type === 'Path')!;
  const r = pick(path.o.msg).tspec!.r;
  assert.equal(r, Math.fround(r));
  assert.ok(r >= 129_013.969_240_672_77 && r - 129_013.969_240_672_77 < 0.01);
});

test('AutoRESV answers at most MAX_AUTO sessions: Paths past it are reported, not answered', () => {
  const net = chain({ refreshMs: 60_000 });
  const d = managed(net, 'D', { service: 'CL', delayS: null });
  const s = net.node('S').engine;
  for (let i = 0; i <= MAX_AUTO; i++) {
    s.sender({ session: { ...SESSION, port: 10_000 + i }, sender: { kind: 'SENDER_TEMPLATE', source: '10.0.1.2', port: 40000 }, tspec: { kind: 'SENDER_TSPEC', ...bucket(1000) } });
  }
  d.pump();
  assert.equal(d.m.size, MAX_AUTO);
  const refused = d.notes.filter((n) => n.code === 'GENERIC_ERROR');
  assert.equal(refused.length, 1);
  assert.equal(refused[0]!.session.port, 10_000 + MAX_AUTO);
});
