/* The engine end to end on a network in one process (testnet.ts: sender S, routers R1 and R2,
 * receivers D and E) and a ManualClock: path and reservation set-up, refresh for hours, time-out
 * of a crashed sender, teardown, admission and policy refusal, merging of the three styles,
 * conflicting and unknown styles, blockade, confirmation, refresh jitter, traffic control
 * failures and ordering, and a thousand sessions on one clock timer per node. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkAdmission } from '../admission.js';
import type { Flowspec } from '../flowspec.js';
import type { Session } from '../session.js';
import type { StyleName } from '../style.js';
import type { SenderTspec } from '../tspec.js';
import { pick } from './messages.js';
import { chain, settle, type TestNet } from './testnet.js';
import { ManualClock } from '../../clock.js';
import { RsvpEngine } from './engine.js';
import type { Adspec } from '../adspec.js';
import { initialAdspec } from '../support.js';

const R = 30_000;
const L = (3 + 0.5) * 1.5 * R;
const uni: Session = { kind: 'SESSION', destination: '10.0.3.2', protocol: 17, flags: 0, port: 5004 };
const group: Session = { ...uni, destination: '224.1.1.1' };
const tspec: SenderTspec = { kind: 'SENDER_TSPEC', r: 10_000, b: 400, p: Infinity, m: 200, M: 200 };
const cl = (r: number, b = 400): Flowspec => ({ kind: 'FLOWSPEC', service: 'CL', tspec: { r, b, p: Infinity, m: 200, M: 200 } });
const S1 = { kind: 'SENDER_TEMPLATE' as const, source: '10.0.1.2', port: 40000 };
const S2 = { kind: 'SENDER_TEMPLATE' as const, source: '10.0.1.2', port: 40002 };
const f = (s: { source: string; port: number }) => ({ kind: 'FILTER_SPEC' as const, source: s.source, port: s.port });
const adspec = { kind: 'ADSPEC' as const, general: { breakBit: false, hopCount: 0, pathBw: 1e6, minLatency: 0, mtu: 1500 } };

function setUp(net: TestNet, session = uni, style: StyleName = 'FF', flow = cl(10_000), receiver = 'D') {
  const s = net.node('S').engine.sender({ session, sender: S1, tspec, adspec });
  const r = net.node(receiver).engine.reserve({ session, style, descriptors: [{ flowspec: flow, filters: style === 'WF' ? [] : [f(S1)] }] });
  return { s, r };
}

const kinds = (net: TestNet, n: string) => net.node(n).events.map((e) => e.kind);

test('Path reaches the receiver through both routers; Resv comes back and each router installs the reservation once', () => {
  const net = chain();
  setUp(net);
  const d = net.node('D');
  const path = d.events.find((e) => e.kind === 'path');
  assert.ok(path && path.kind === 'path');
  assert.equal(path.phop, '10.0.3.1', 'the previous hop is R2 on the LAN');
  assert.equal(path.adspec?.general.hopCount, 2, 'each router is one more IS hop');
  const fromR1 = net.node('R1').sent.find((x) => x.o.msg.type === 'Path')!.o;
  assert.deepEqual([fromR1.src, fromR1.dst, fromR1.ttl, fromR1.msg.sendTtl, fromR1.routerAlert, fromR1.ifname], ['10.0.1.2', '10.0.3.2', 63, 63, true, 'r1b']);
  assert.deepEqual(pick(fromR1.msg).hop, { kind: 'RSVP_HOP', address: '10.0.2.1', lih: 12 });
  for (const [n, ifname] of [['R1', 'r1b'], ['R2', 'r2b']] as const) {
    const u = net.node(n).traffic.updates;
    assert.equal(u.length, 1, `${n} installs once`);
    assert.deepEqual({ ...u[0]!, session: undefined }, { key: `10.0.3.2/17/5004@${ifname}#10.0.1.2:40000`, ifname, session: undefined, style: 'FF', flowspec: cl(10_000), filters: [f(S1)] });
  }
  assert.deepEqual(net.node('R1').engine.counts(), { sessions: 1, psb: 1, rsb: 1, tcsb: 1, blockades: 0, paths_refused: 0 });
  assert.ok(kinds(net, 'S').includes('resv'), 'the sender host hears of the reservation');
});

test('refreshes keep all state for 6 hours with no change and no further traffic control call', () => {
  const net = chain();
  setUp(net);
  net.clock.advance(6 * 3600_000);
  for (const n of ['R1', 'R2']) {
    assert.deepEqual(net.node(n).engine.counts(), { sessions: 1, psb: 1, rsb: 1, tcsb: 1, blockades: 0, paths_refused: 0 });
    assert.equal(net.node(n).traffic.calls.length, 1);
  }
  const paths = net.node('R1').sent.filter((x) => x.o.msg.type === 'Path').length;
  assert.ok(paths > 6 * 120 * 0.8 && paths < 6 * 120 * 1.2, `R1 refreshed downstream by itself about every R: ${paths} in 6 h`);
  assert.ok(!kinds(net, 'D').includes('path-gone'));
});

test('a sender that dies (no PathTear) leaves no path state, reservation or traffic control behind within (K+0.5)*1.5*R', async () => {
  const net = chain();
  setUp(net);
  net.clock.advance(5 * R);
  net.kill('S');
  net.clock.advance(L + 1);
  await settle(); // traffic control calls are async, one key's in order
  for (const n of ['R1', 'R2']) {
    const node = net.node(n);
    assert.deepEqual(node.engine.counts(), { sessions: 0, psb: 0, rsb: 0, tcsb: 0, blockades: 0, paths_refused: 0 }, n);
    assert.equal(node.traffic.removes.length, 1, `${n} removed its class`);
    assert.equal(node.traffic.calls.at(-1)!.op, 'remove');
  }
  assert.ok(net.node('R1').events.some((e) => e.kind === 'path-gone' && e.why === 'timeout'));
  assert.ok(kinds(net, 'D').includes('path-gone'));
});

test('a receiver that dies lets its reservation time out on both routers', () => {
  const net = chain();
  setUp(net);
  net.kill('D');
  net.clock.advance(L + 1);
  for (const n of ['R1', 'R2']) {
    assert.equal(net.node(n).engine.counts().rsb, 0);
    assert.equal(net.node(n).engine.counts().psb, 1, 'path state stays: the sender is alive');
  }
  assert.ok(net.node('R2').events.some((e) => e.kind === 'resv-gone' && e.why === 'timeout'));
  assert.ok(net.node('R1').events.some((e) => e.kind === 'resv-gone' && e.why === 'tear'), 'R2 tore its merged request upstream at once');
});

test('PathTear and ResvTear remove state at once', async () => {
  const net = chain();
  const { s, r } = setUp(net);
  r.close();
  for (const n of ['R1', 'R2']) assert.deepEqual(net.node(n).engine.counts(), { sessions: 1, psb: 1, rsb: 0, tcsb: 0, blockades: 0, paths_refused: 0 }, n);
  await settle();
  assert.equal(net.node('R1').traffic.removes.length, 1);
  const again = net.node('D').engine.reserve({ session: uni, style: 'FF', descriptors: [{ flowspec: cl(10_000), filters: [f(S1)] }] });
  assert.equal(net.node('R1').engine.counts().rsb, 1);
  s.close();
  for (const n of ['R1', 'R2']) assert.deepEqual(net.node(n).engine.counts(), { sessions: 0, psb: 0, rsb: 0, tcsb: 0, blockades: 0, paths_refused: 0 }, n);
  assert.ok(net.node('D').events.some((e) => e.kind === 'path-gone' && e.why === 'tear'));
  again.close();
});

test('admission refusal: ResvErr code 1 reaches the receiver, and nothing is installed', () => {
  const net = chain({ r2: { admission: new LinkAdmission({ links: { r2b: { rate: 100_000, share: 0.05 } } }) } });
  setUp(net);
  const err = net.node('D').events.find((e) => e.kind === 'resv-error');
  assert.ok(err && err.kind === 'resv-error');
  assert.deepEqual([err.code, err.value, err.node], [1, 2, '10.0.3.1']);
  for (const n of ['R1', 'R2']) {
    assert.equal(net.node(n).traffic.updates.length, 0);
    assert.equal(net.node(n).engine.counts().rsb, 0, 'the refused request is not kept');
  }
});

test('policy refusal: a user over quota gets ResvErr code 2', () => {
  const admission = new LinkAdmission({ links: { r1b: { rate: 1e9, share: 1 } }, users: { alice: 5_000 } });
  const net = chain({ r1: { admission } });
  net.node('S').engine.sender({ session: uni, sender: S1, tspec });
  const alice = { kind: 'POLICY_DATA' as const, options: '', elements: [{ pType: 2 as const, attributes: [{ aType: 2, subType: 1, text: 'alice' }] }] };
  net.node('D').engine.reserve({ session: uni, style: 'FF', descriptors: [{ flowspec: cl(10_000), filters: [f(S1)] }], policyData: alice });
  const err = net.node('D').events.find((e) => e.kind === 'resv-error');
  assert.ok(err && err.kind === 'resv-error' && err.code === 2 && err.value === 4 && err.node === '10.0.2.1');
  assert.equal(net.node('R1').traffic.updates.length, 0);
  assert.equal(net.node('R2').traffic.updates.length, 1, 'R2 admitted it before R1 refused');
});

test('FF: two receivers of one sender merge into the LUB of their flowspecs', async () => {
  const net = chain();
  setUp(net, group, 'FF', cl(10_000, 400));
  net.node('E').engine.reserve({ session: group, style: 'FF', descriptors: [{ flowspec: cl(8_000, 900), filters: [f(S1)] }] });
  await settle();
  const want = cl(10_000, 900);
  for (const n of ['R1', 'R2']) assert.deepEqual(net.node(n).traffic.updates.at(-1)!.flowspec, want, n);
  assert.equal(net.node('R2').engine.counts().rsb, 2);
  assert.equal(net.node('R1').engine.counts().rsb, 1, 'R2 merged: one request upstream');
});

test('SE: one shared reservation, the LUB, for the union of the filters; WF: one for every sender', async () => {
  const net = chain();
  const S = net.node('S').engine;
  S.sender({ session: group, sender: S1, tspec });
  S.sender({ session: group, sender: S2, tspec });
  net.node('D').engine.reserve({ session: group, style: 'SE', descriptors: [{ flowspec: cl(12_000), filters: [f(S1)] }] });
  net.node('E').engine.reserve({ session: group, style: 'SE', descriptors: [{ flowspec: cl(9_000, 800), filters: [f(S2)] }] });
  await settle();
  const last = net.node('R2').traffic.updates.at(-1)!;
  assert.deepEqual([last.key, last.style, last.flowspec, last.filters], ['224.1.1.1/17/5004@r2b', 'SE', cl(12_000, 800), [f(S1), f(S2)]]);
  assert.deepEqual(net.node('R1').traffic.updates.at(-1)!.filters, [f(S1), f(S2)]);

  const wf = chain();
  const W = wf.node('S').engine;
  W.sender({ session: group, sender: S1, tspec });
  wf.node('D').engine.reserve({ session: group, style: 'WF', descriptors: [{ flowspec: cl(5_000), filters: [] }] });
  wf.node('E').engine.reserve({ session: group, style: 'WF', descriptors: [{ flowspec: cl(7_000, 100), filters: [] }] });
  W.sender({ session: group, sender: S2, tspec }); // a new sender joins the wildcard reservation
  await settle();
  const w = wf.node('R1').traffic.updates.at(-1)!;
  assert.deepEqual([w.key, w.style, w.flowspec, w.filters], ['224.1.1.1/17/5004@r1b', 'WF', cl(7_000, 400), [f(S1), f(S2)]]);
});

test('conflicting styles get ResvErr 5; no path state 3; an unknown style 6', () => {
  const net = chain();
  setUp(net, group, 'FF');
  net.node('E').engine.reserve({ session: group, style: 'SE', descriptors: [{ flowspec: cl(1_000), filters: [f(S1)] }] });
  const e = net.node('E').events.find((x) => x.kind === 'resv-error');
  assert.ok(e && e.kind === 'resv-error' && e.code === 5);
  assert.equal(e.value, 0x0a, 'the value is the low 16 bits of the existing style\'s option vector: FF (RFC 2205 appendix B)');
  const R2 = net.node('R2').engine;
  const resv = (session: Session, style: string) => ({
    msg: { type: 'Resv' as const, flags: 0, sendTtl: 64, objects: [session, { kind: 'RSVP_HOP' as const, address: '10.0.3.3', lih: 22 }, { kind: 'TIME_VALUES' as const, refreshMs: R }, { kind: 'STYLE' as const, flags: 0, style: style as StyleName }, cl(1), f(S1)] },
    ifname: 'r2b', src: '10.0.3.3', dst: '10.0.3.1', ttl: 64, routerAlert: false,
  });
  const before = net.node('E').events.length;
  R2.receive(resv({ ...uni, port: 9 }, 'FF'));
  R2.receive(resv(group, 'XX'));
  const codes = net.node('E').events.slice(before).map((x) => (x.kind === 'resv-error' ? x.code : -1));
  assert.deepEqual(codes, [3, 6]);
});

test('blockade: a request refused upstream does not stop a smaller one from another receiver (RFC 2205 section 3.5)', async () => {
  const net = chain({ r1: { admission: new LinkAdmission({ links: { r1b: { rate: 20_000, share: 1 } } }) } });
  setUp(net, group, 'FF', cl(50_000));
  assert.ok(net.node('D').events.some((e) => e.kind === 'resv-error' && e.code === 1));
  net.node('E').engine.reserve({ session: group, style: 'FF', descriptors: [{ flowspec: cl(10_000), filters: [f(S1)] }] });
  await settle();
  assert.equal(net.node('R2').engine.counts().blockades, 1);
  assert.deepEqual(net.node('R1').traffic.updates.at(-1)?.flowspec, cl(10_000), 'the smaller request got through');
  assert.ok(!net.node('E').events.some((e) => e.kind === 'resv-error'), 'E is not blamed');
  // the blockade lapses after Kb = 2 refresh periods; the big request is tried again, fails again, and the small one stays
  net.clock.advance(2 * R + 1);
  await settle();
  assert.equal(net.node('D').events.filter((e) => e.kind === 'resv-error').length >= 2, true);
  assert.deepEqual(net.node('R1').traffic.updates.at(-1)?.flowspec, cl(10_000));
  assert.equal(net.node('R1').traffic.removes.length, 0);
});

test('confirmation: the sender host confirms a new reservation, a merge point one already in place', () => {
  const net = chain();
  net.node('S').engine.sender({ session: group, sender: S1, tspec });
  net.node('D').engine.reserve({ session: group, style: 'FF', confirm: true, descriptors: [{ flowspec: cl(10_000), filters: [f(S1)] }] });
  const c = net.node('D').events.find((e) => e.kind === 'confirm');
  assert.ok(c && c.kind === 'confirm' && c.receiver === '10.0.3.2');
  assert.equal(net.node('S').sent.filter((x) => x.o.msg.type === 'ResvConf').length, 1);
  net.node('E').engine.reserve({ session: group, style: 'FF', confirm: true, descriptors: [{ flowspec: cl(5_000), filters: [f(S1)] }] });
  assert.ok(net.node('E').events.some((e) => e.kind === 'confirm'));
  const conf = net.node('R2').sent.filter((x) => x.o.msg.type === 'ResvConf');
  assert.deepEqual(conf.map((x) => [x.o.dst, x.o.routerAlert]), [['10.0.3.3', false]], 'R2, where it merged, confirmed to E by unicast');
});

test('refreshes go out 0.5 R to 1.5 R apart', () => {
  const net = chain();
  setUp(net);
  net.clock.advance(3600_000);
  for (const [n, type] of [['S', 'Path'], ['R1', 'Path'], ['D', 'Resv'], ['R2', 'Resv']] as const) {
    const at = net.node(n).sent.filter((x) => x.o.msg.type === type).map((x) => x.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]!).filter((g) => g > 0);
    assert.ok(gaps.length > 60, n);
    assert.ok(gaps.every((g) => g >= 0.5 * R && g <= 1.5 * R), `${n}: ${Math.min(...gaps)}..${Math.max(...gaps)}`);
    assert.ok(Math.max(...gaps) - Math.min(...gaps) > 0.3 * R, `${n} jitters`);
  }
});

test('traffic control refusing an update: ResvErr 21 to the receiver and the reservation dropped', async () => {
  const net = chain();
  net.node('R1').traffic.failWith = 'tc: no such device';
  setUp(net);
  await settle();
  const e = net.node('D').events.find((x) => x.kind === 'resv-error');
  assert.ok(e && e.kind === 'resv-error' && e.code === 21 && e.node === '10.0.2.1');
  assert.equal(net.node('R1').engine.counts().rsb, 0);
  assert.equal(net.node('R1').engine.counts().tcsb, 0);
});

test('traffic control calls for one key land in order: a remove after a slow update lands last', async () => {
  const net = chain();
  const landed: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const t = net.node('R1').traffic;
  t.update = (r) => { landed.push('update-start'); return gate.then(() => { landed.push(`update ${r.flowspec.tspec.r}`); }); };
  t.remove = async () => { landed.push('remove'); };
  const { r } = setUp(net);
  r.close();
  assert.deepEqual(landed, ['update-start'], 'the remove waits for the update');
  release();
  await settle();
  assert.deepEqual(landed, ['update-start', 'update 10000', 'remove']);
});

test('1,000 sessions: one clock timer per node, state kept through refreshes', () => {
  const net = chain();
  for (let i = 0; i < 1000; i++) {
    const session: Session = { ...uni, port: 10_000 + i };
    net.node('S').engine.sender({ session, sender: S1, tspec });
    net.node('D').engine.reserve({ session, style: 'FF', descriptors: [{ flowspec: cl(1_000), filters: [f(S1)] }] });
  }
  assert.ok(net.clock.waiting <= net.nodes.size, `clock timers: ${net.clock.waiting}`);
  net.clock.advance(10 * R);
  assert.ok(net.clock.waiting <= net.nodes.size);
  for (const n of ['R1', 'R2']) {
    assert.deepEqual(net.node(n).engine.counts(), { sessions: 1000, psb: 1000, rsb: 1000, tcsb: 1000, blockades: 0, paths_refused: 0 });
    assert.equal(net.node(n).traffic.calls.length, 1000);
  }
  const dump = net.node('R1').engine.state() as { sessions: unknown[] };
  assert.equal(JSON.parse(JSON.stringify(dump)).sessions.length, 1000);
});

test('PathErr goes hop by hop back to the sender host', () => {
  const net = chain();
  setUp(net);
  const error = { kind: 'ERROR_SPEC' as const, node: '10.0.3.2', flags: 0, code: 20, value: 1 };
  net.node('R2').engine.receive({ msg: { type: 'PathErr', flags: 0, sendTtl: 64, objects: [uni, error, S1, tspec] }, ifname: 'r2b', src: '10.0.3.2', dst: '10.0.3.1', ttl: 64, routerAlert: false });
  assert.deepEqual(net.node('R1').sent.filter((x) => x.o.msg.type === 'PathErr').map((x) => x.o.dst), ['10.0.1.2']);
  const e = net.node('S').events.find((x) => x.kind === 'path-error');
  assert.ok(e && e.kind === 'path-error' && e.code === 20 && e.node === '10.0.3.2');
});

test('a Path whose session conflicts in destination ports gets PathErr 7, one whose sender conflicts in ports PathErr 8; neither is installed', () => {
  const net = chain();
  setUp(net);
  const S = net.node('S');
  const zero = { kind: 'SENDER_TEMPLATE' as const, source: S1.source, port: 0 };
  S.engine.sender({ session: { ...uni, port: 0 }, sender: zero, tspec });
  S.engine.sender({ session: uni, sender: zero, tspec });
  const errs = S.events.flatMap((e) => (e.kind === 'path-error' ? [[e.code, e.value, e.node, e.session.port]] : []));
  assert.deepEqual(errs, [[7, 0, '10.0.1.1', 0], [8, 0, '10.0.1.1', 5004]], 'R1 answers each, naming itself');
  const pathErr = net.node('R1').sent.find((x) => x.o.msg.type === 'PathErr')!.o;
  assert.deepEqual([pathErr.dst, pathErr.ifname, pathErr.routerAlert], ['10.0.1.2', 'r1a', false]);
  assert.deepEqual(pick(pathErr.msg).template, zero, 'the PathErr carries the offending sender descriptor');
  assert.deepEqual(net.node('R1').engine.counts(), { sessions: 1, psb: 1, rsb: 1, tcsb: 1, blockades: 0, paths_refused: 0 }, 'nothing of either Path is installed');
  assert.equal(net.node('R2').engine.counts().psb, 1, 'nor forwarded');
  net.clock.advance(3 * R);
  assert.deepEqual(net.node('R1').engine.counts(), { sessions: 1, psb: 1, rsb: 1, tcsb: 1, blockades: 0, paths_refused: 0 }, 'refreshes of the refused Paths are refused again');
  assert.ok(S.events.filter((e) => e.kind === 'path-error').length > 2);
});

test('refuseUnknown: a Path with an unknown object class gets PathErr 13, a Resv with an unknown c-type ResvErr 14, the value class-num << 8 | c-type', () => {
  const net = chain();
  setUp(net);
  const R2 = net.node('R2').engine;
  const hop = { kind: 'RSVP_HOP' as const, address: '10.0.2.1', lih: 12 };
  // the messages as decodeSkippingUnknown gives them: what could be read
  R2.refuseUnknown({ msg: { type: 'Path', flags: 0, sendTtl: 63, objects: [uni, hop, { kind: 'TIME_VALUES', refreshMs: R }, S1, tspec] }, ifname: 'r2a', src: '10.0.1.2', dst: '10.0.3.2', ttl: 63, routerAlert: true }, 13, (100 << 8) | 1);
  const e = net.node('S').events.find((x) => x.kind === 'path-error');
  assert.ok(e && e.kind === 'path-error');
  assert.deepEqual([e.code, e.value, e.node], [13, 0x6401, '10.0.2.2'], 'R2 answered its previous hop, R1 passed it on to the sender');
  assert.deepEqual(net.node('R2').sent.filter((x) => x.o.msg.type === 'PathErr').map((x) => [x.o.dst, x.o.ifname]), [['10.0.2.1', 'r2a']]);
  const D = net.node('D');
  R2.refuseUnknown({ msg: { type: 'Resv', flags: 0, sendTtl: 64, objects: [uni, { kind: 'RSVP_HOP', address: '10.0.3.2', lih: 31 }, { kind: 'STYLE', flags: 0, style: 'FF' }, cl(1), f(S1)] }, ifname: 'r2b', src: '10.0.3.2', dst: '10.0.3.1', ttl: 64, routerAlert: false }, 14, (5 << 8) | 9);
  const r = D.events.find((x) => x.kind === 'resv-error');
  assert.ok(r && r.kind === 'resv-error');
  assert.deepEqual([r.code, r.value, r.node], [14, 0x0509, '10.0.3.1']);
  assert.equal(net.node('R2').engine.counts().rsb, 1, 'the reservation in place is untouched');
});

test('ADSPEC composition: each router adds a hop, lowers the path bandwidth to its outgoing link\'s rate and the MTU to its MTU; latency unchanged', () => {
  const net = chain({ links: { r1b: { rate: 1_250_000, mtu: 1400 }, r2b: { rate: 12_500_000, mtu: 9000 } } });
  const start = { kind: 'ADSPEC' as const, general: { breakBit: false, hopCount: 0, pathBw: 1e7, minLatency: 120, mtu: 1500 }, cl: { breakBit: false } };
  net.node('S').engine.sender({ session: uni, sender: S1, tspec, adspec: start });
  const at = (n: string) => { const p = net.node(n).events.find((e) => e.kind === 'path'); return p?.kind === 'path' ? p.adspec : null; };
  const fromR1 = pick(net.node('R1').sent.find((x) => x.o.msg.type === 'Path')!.o.msg).adspec;
  assert.deepEqual(fromR1?.general, { breakBit: false, hopCount: 1, pathBw: 1_250_000, minLatency: 120, mtu: 1400 }, 'R1: its 10 Mb/s link and MTU 1400');
  assert.deepEqual(at('D'), { ...start, general: { breakBit: false, hopCount: 2, pathBw: 1_250_000, minLatency: 120, mtu: 1400 } }, 'R2\'s faster link and larger MTU change nothing');
  const odd = chain({ links: { r1b: { rate: 1_000_000.3 } } }); // a rate no 32-bit float holds: the nearest one that is
  odd.node('S').engine.sender({ session: uni, sender: S1, tspec, adspec: start });
  const p = odd.node('D').events.find((e) => e.kind === 'path');
  assert.ok(p?.kind === 'path' && p.adspec?.general.pathBw === Math.fround(1_000_000.3));
});

test('ADSPEC Guaranteed terms: each router adds its outgoing interface\'s C and D to Ctot/Csum and Dtot/Dsum; an empty or broken fragment passes as it came', () => {
  // R1's 10 Mb/s link: one 1500-byte packet, 1200 us; R2's 100 Mb/s link: 1500 bytes, 120 us
  const c1 = 1500, d1 = 1200, c2 = 1500, d2 = 120;
  const gsAt = (net: TestNet, start: Adspec) => {
    net.node('S').engine.sender({ session: uni, sender: S1, tspec, adspec: start });
    const p = net.node('D').events.find((e) => e.kind === 'path');
    assert.ok(p?.kind === 'path', 'D has the path');
    return p.adspec?.gs;
  };
  const links = { r1b: { rate: 1_250_000, gs: { c: c1, d: d1 } }, r2b: { rate: 12_500_000, gs: { c: c2, d: d2 } } };
  const start = initialAdspec({ mtu: 1500 });
  assert.deepEqual(gsAt(chain({ links }), start), { breakBit: false, terms: { ctot: c1 + c2, dtot: d1 + d2, csum: c1 + c2, dsum: d1 + d2 } });
  const from = { breakBit: false, terms: { ctot: 100, dtot: 10, csum: 50, dsum: 5 } };
  assert.deepEqual(gsAt(chain({ links }), { ...start, gs: from }), { breakBit: false, terms: { ctot: 3100, dtot: 1330, csum: 3050, dsum: 1325 } }, 'added to what the sender put');
  assert.deepEqual(gsAt(chain({ links: { r1b: links.r1b } }), start)?.terms, { ctot: c1, dtot: d1, csum: c1, dsum: d1 }, 'R2 has no terms: it adds none');
  assert.deepEqual(gsAt(chain({ links }), { ...start, gs: { breakBit: true, terms: null } }), { breakBit: true, terms: null }, 'an empty, broken fragment');
  const broken = { breakBit: true, terms: { ctot: 7, dtot: 7, csum: 7, dsum: 7 } };
  assert.deepEqual(gsAt(chain({ links }), { ...start, gs: broken }), broken, 'a broken fragment is not composed');
  const big = { breakBit: false, terms: { ctot: 0xffffffff - 100, dtot: 0, csum: 0, dsum: 0 } };
  assert.equal((gsAt(chain({ links }), { ...start, gs: big }) as { terms: { ctot: number } }).terms.ctot, 0xffffffff, 'held at the largest 32-bit value');
});

test('path state is bounded: past maxPaths a new sender\'s Path is dropped and counted; a refresh of one held is not, and room comes back', () => {
  const clock = new ManualClock(0);
  const sent: unknown[] = [];
  const e = new RsvpEngine({
    role: 'router', clock, maxPaths: 2, send: (o: unknown) => sent.push(o),
    interfaces: [{ name: 'a', addresses: ['10.1.0.1'], lih: 1 }, { name: 'b', addresses: ['10.2.0.1'], lih: 2 }],
    routes: { lookup: () => ({ ifname: 'b', gateway: null, src: '10.2.0.1' }) },
    traffic: { update: async () => undefined, remove: async () => undefined },
  });
  const path = (port: number) => ({
    msg: { type: 'Path' as const, flags: 0, sendTtl: 64, objects: [
      { kind: 'SESSION' as const, destination: '10.2.0.9', protocol: 17, flags: 0, port: 5004 },
      { kind: 'RSVP_HOP' as const, address: '10.1.0.7', lih: 1 },
      { kind: 'TIME_VALUES' as const, refreshMs: 30_000 },
      { kind: 'SENDER_TEMPLATE' as const, source: '10.1.0.7', port },
      { kind: 'SENDER_TSPEC' as const, r: 1000, b: 200, p: Infinity, m: 100, M: 200 },
    ] },
    ifname: 'a', src: '10.1.0.7', dst: '10.2.0.9', ttl: 64, routerAlert: true,
  });
  e.receive(path(1)); e.receive(path(2)); e.receive(path(3));
  assert.deepEqual([e.counts().psb, e.counts().paths_refused], [2, 1]);
  e.receive(path(1)); // a refresh of a sender held
  assert.deepEqual([e.counts().psb, e.counts().paths_refused], [2, 1]);
  clock.advance(200_000); // both time out ((3 + 0.5) x 1.5 x 30 s)
  assert.equal(e.counts().psb, 0);
  e.receive(path(3));
  assert.deepEqual([e.counts().psb, e.counts().paths_refused], [1, 1]);
  e.stop();
});
