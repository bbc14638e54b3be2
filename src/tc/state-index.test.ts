import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelRate, parseFilter, type TcFlow, type TcInterface, type TcState } from './model.js';
import { parseFlowSpec } from '../flowspec/parse.js';
import { TcIndex } from './state-index.js';

const dev = (name: string, slot: number): TcInterface => ({ dev: name, rate: 125e6, marks: {}, nonconforming: { dscp: 8, pcp: 1 }, slot, vlan: false, dot1p: false });
const flow = (id: number, on: string, rate: string): TcFlow => ({
  id, dev: on, name: null, spec: parseFlowSpec({ TokenRate: rate }, { path: 'flowspec' }), mode: 'borrow', framing: { proto: 'udp', ipv6: false }, dscp: null, pcp: null, owner: { kind: 'admin' },
});

function state(): { devs: Map<string, TcInterface>; flows: Map<number, TcFlow>; filters: TcState['filters'] & Map<number, ReturnType<typeof parseFilter>> } {
  const flows = new Map([[1, flow(1, 'a0', '1Mbit')], [2, flow(2, 'a0', '2Mbit')], [3, flow(3, 'b0', '1Mbit')]]);
  const filters = new Map([
    [1, parseFilter({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', proto: 'udp', sport: 1000, dport: 2000 }, 1)],
    [2, parseFilter({ flow: 2, dst: '10.0.1.0/24', proto: 'tcp' }, 2)],
  ]);
  return { devs: new Map([['a0', dev('a0', 0)], ['b0', dev('b0', 1)]]), flows, filters };
}

test('the index sums each interface\'s reserved rate and counts its flows, and follows changes', () => {
  const s = state();
  const ix = new TcIndex(s);
  assert.equal(ix.reserved('a0'), kernelRate(s.flows.get(1)!) + kernelRate(s.flows.get(2)!));
  assert.equal(ix.flows('a0'), 2);
  assert.equal(ix.flows('b0'), 1);
  assert.equal(ix.reserved('c0'), 0);
  ix.removeFlow(s.flows.get(2)!);
  assert.equal(ix.reserved('a0'), kernelRate(s.flows.get(1)!));
  assert.equal(ix.flows('a0'), 1);
});

test('an equal exact filter on the same interface conflicts; on another interface it does not', () => {
  const s = state();
  const ix = new TcIndex(s);
  const same = parseFilter({ flow: 2, src: '10.0.0.1', dst: '10.0.0.2', proto: 'udp', sport: 1000, dport: 2000 }, 0);
  assert.equal(ix.conflict(same)?.id, 1);
  assert.equal(ix.conflict({ ...same, flow: 3 }), undefined, 'flow 3 is on b0');
  assert.equal(ix.conflict(parseFilter({ flow: 2, src: '10.0.0.1', dst: '10.0.0.2', proto: 'udp', sport: 1000, dport: 2001 }, 0)), undefined);
  ix.removeFilter(s.filters.get(1)!);
  assert.equal(ix.conflict(same), undefined, 'gone once removed');
});

test('a wildcard filter overlapping another on the interface conflicts; an exact one inside it does not', () => {
  const s = state();
  const ix = new TcIndex(s);
  assert.equal(ix.conflict(parseFilter({ flow: 1, dst: '10.0.1.128/25' }, 0))?.id, 2);
  assert.equal(ix.conflict(parseFilter({ flow: 1, dst: '10.0.1.0/24', proto: 'udp' }, 0)), undefined, 'udp does not meet tcp');
  assert.equal(ix.conflict(parseFilter({ flow: 1, src: '10.9.9.9', dst: '10.0.1.7', proto: 'tcp', sport: 5, dport: 80 }, 0)), undefined);
  assert.equal(ix.conflict(parseFilter({ flow: 3, dst: '10.0.1.0/24', proto: 'tcp' }, 0)), undefined, 'on b0');
});

test('a flow\'s filters are listed, added and removed with it', () => {
  const s = state();
  const ix = new TcIndex(s);
  assert.deepEqual(ix.filtersOf(1), [1]);
  const f = parseFilter({ flow: 1, dst: '192.0.2.0/24' }, 7);
  s.filters.set(7, f);
  ix.addFilter(f);
  assert.deepEqual(ix.filtersOf(1).sort(), [1, 7]);
  assert.equal(ix.conflict(parseFilter({ flow: 2, dst: '192.0.2.5' }, 0))?.id, 7);
  ix.removeFlow(s.flows.get(1)!);
  assert.deepEqual(ix.filtersOf(1), []);
  assert.deepEqual(ix.filtersOf(99), []);
});
