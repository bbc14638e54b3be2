import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TrafficControl, type TcRunner } from '../tc/control.js';
import type { Reservation } from './engine/types.js';
import { flowCL, flowGS, session4, V4 } from './samples.js';
import { filterInputsOf, flowInputOf, TcInstaller } from './tc-install.js';

/** A runner that applies nothing and answers for one interface of 100 Mb/s. */
function fakeRunner(): TcRunner {
  return { async apply() {}, async link(dev: string) { return { exists: dev === 'eth1', vlan: false, speed: 12_500_000, root: null }; }, async leftovers() { return { devs: [], table: false, tagged: [] }; } };
}

const ff = (filters: Reservation['filters'], flowspec: Reservation['flowspec'] = flowCL): Reservation => ({ key: `${session4.destination}/17/5004 eth1 ${filters[0]?.source}`, ifname: 'eth1', session: session4, style: 'FF', flowspec, filters });

test('a Controlled Load FLOWSPEC is the same token bucket as a GQoS FLOWSPEC; Guaranteed reserves its Rspec rate', () => {
  const cl = flowInputOf(ff([]));
  // IntServ counts IP datagrams: the rate is r as it is, the largest payload M less 28 bytes of IPv4 and UDP
  assert.deepEqual(cl.flowspec, { TokenRate: 10000, TokenBucketSize: 400, PeakBandwidth: null, MaxSduSize: 172 });
  assert.equal(cl.service, 'ControlledLoad');
  assert.equal(cl.proto, 'udp');
  const gs = flowInputOf(ff([], flowGS));
  assert.equal(gs.service, 'Guaranteed');
  assert.deepEqual(gs.flowspec, { TokenRate: 12500, TokenBucketSize: 400, PeakBandwidth: 20000, MaxSduSize: 172 });
});

test('filters: one per sender, port 0 any port, WF any source', () => {
  const f = [...filterInputsOf(ff([{ kind: 'FILTER_SPEC', source: V4.sender, port: 40000 }, { kind: 'FILTER_SPEC', source: '203.0.113.9', port: 0 }]), 5).values()];
  assert.deepEqual(f.map((x) => [x.src, x.sport, x.dst, x.dport, x.proto]), [[V4.sender, '40000', V4.receiver, '5004', '17'], ['203.0.113.9', '*', V4.receiver, '5004', '17']]);
  const wf = [...filterInputsOf({ ...ff([{ kind: 'FILTER_SPEC', source: V4.sender, port: 40000 }]), style: 'WF' }, 5).values()];
  assert.deepEqual(wf.map((x) => [x.src, x.sport]), [['*', '*']]);
});

test('a reservation becomes a flow with its filters; a change adds and removes only the difference; removal leaves nothing', async () => {
  const tc = new TrafficControl(fakeRunner());
  const inst = new TcInstaller(tc);
  const a = { kind: 'FILTER_SPEC' as const, source: V4.sender, port: 40000 };
  const b = { kind: 'FILTER_SPEC' as const, source: '203.0.113.9', port: 40002 };
  const r = { ...ff([a]), style: 'SE' as const };
  await inst.update(r);
  let l = tc.list() as { flows: Array<{ id: number; rate: number; owner: unknown; service: string }>; filters: Array<{ id: number; src: string }> };
  assert.equal(l.flows.length, 1);
  assert.deepEqual(l.flows[0]!.owner, { kind: 'rsvp', reservation: r.key });
  assert.deepEqual(l.filters.map((f) => f.src), [V4.sender]);
  const first = l.filters[0]!.id;
  await inst.update({ ...r, filters: [a, b], flowspec: flowGS });
  l = tc.list() as typeof l;
  assert.equal(l.flows.length, 1);
  assert.equal(l.flows[0]!.service, 'Guaranteed');
  assert.deepEqual(l.filters.map((f) => f.src).sort(), ['203.0.113.9', V4.sender].sort());
  assert.ok(l.filters.some((f) => f.id === first), 'the filter kept is the same one');
  await inst.update({ ...r, filters: [b] });
  assert.deepEqual((tc.list() as typeof l).filters.map((f) => f.src), ['203.0.113.9']);
  await inst.remove(r.key);
  await inst.remove(r.key); // twice: nothing
  assert.deepEqual(tc.list(), { interfaces: (tc.list() as { interfaces: unknown[] }).interfaces, flows: [], filters: [] });
  assert.deepEqual(inst.list(), []);
});

test('a reservation the interface cannot hold is refused and leaves nothing', async () => {
  const tc = new TrafficControl(fakeRunner());
  const inst = new TcInstaller(tc);
  const huge = { ...flowCL, tspec: { ...flowCL.tspec, r: 50_000_000, b: 100_000 } };
  await assert.rejects(inst.update(ff([{ kind: 'FILTER_SPEC', source: V4.sender, port: 40000 }], huge)), /cannot hold it/);
  assert.equal((tc.list() as { flows: unknown[] }).flows.length, 0);
  await assert.rejects(inst.update({ ...ff([]), ifname: 'nosuch0' }), /nosuch0/);
});
