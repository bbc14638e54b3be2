/* The pure part of the state: LUB of CL and GS flowspecs, the blockade relation, merging by
 * style into what traffic control holds, and identity from POLICY_DATA. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Flowspec } from '../flowspec.js';
import { policy } from '../samples.js';
import { blockades, identityOf, lub, mergeReservations } from './state.js';

const cl = (r: number, b: number, m = 64, M = 1500): Flowspec => ({ kind: 'FLOWSPEC', service: 'CL', tspec: { r, b, p: Infinity, m, M } });
const gs = (r: number, R: number, S: number): Flowspec => ({ kind: 'FLOWSPEC', service: 'GS', tspec: { r, b: 100, p: 2 * r, m: 64, M: 1500 }, R, S });
const F = (port: number) => ({ kind: 'FILTER_SPEC' as const, source: '10.0.0.1', port });

test('LUB: the max of r, b, p, M and the min of m; GS the max R and the min S, and above CL', () => {
  assert.deepEqual(lub(cl(10, 500, 64, 1000), cl(20, 100, 32, 1500)), cl(20, 500, 32, 1500));
  assert.deepEqual(lub(gs(10, 100, 50), gs(5, 200, 80)), { kind: 'FLOWSPEC', service: 'GS', tspec: { r: 10, b: 100, p: 20, m: 64, M: 1500 }, R: 200, S: 50 });
  const mixed = lub(cl(30, 1000), gs(10, 100, 50));
  assert.equal(mixed.service, 'GS');
  assert.equal(mixed.tspec.r, 30);
});

test('blockade: Qb blockades every Qi it is not strictly greater than', () => {
  assert.equal(blockades(cl(50, 400), cl(10, 400)), false, 'greater in r, equal elsewhere: strictly greater');
  assert.equal(blockades(cl(50, 400), cl(50, 400)), true, 'equal');
  assert.equal(blockades(cl(50, 400), cl(10, 900)), true, 'not comparable');
  assert.equal(blockades(cl(50, 400), cl(60, 400)), true);
});

test('merging: FF per sender, SE one with the union of filters, WF one for the senders routed there', () => {
  const ff = mergeReservations('s', 'eth0', 'FF', [
    { style: 'FF', flowspec: cl(10, 100), filters: [F(2)] }, { style: 'FF', flowspec: cl(5, 300), filters: [F(2)] }, { style: 'FF', flowspec: cl(1, 1), filters: [F(1)] },
  ], []);
  assert.deepEqual(ff.map((m) => [m.key, m.flowspec, m.filters]), [['s@eth0#10.0.0.1:1', cl(1, 1), [F(1)]], ['s@eth0#10.0.0.1:2', cl(10, 300), [F(2)]]]);
  const se = mergeReservations('s', 'eth0', 'SE', [{ style: 'SE', flowspec: cl(10, 100), filters: [F(2), F(1)] }, { style: 'SE', flowspec: cl(5, 300), filters: [F(1)] }], []);
  assert.deepEqual(se, [{ key: 's@eth0', sender: null, flowspec: cl(10, 300), filters: [F(1), F(2)] }]);
  const wf = mergeReservations('s', 'eth0', 'WF', [{ style: 'WF', flowspec: cl(10, 100), filters: [] }], [F(3)]);
  assert.deepEqual(wf[0]!.filters, [F(3)]);
  assert.deepEqual(mergeReservations('s', 'eth0', 'WF', [], [F(3)]), []);
});

test('identity: the CREDENTIAL text of AUTH_USER and AUTH_APP', () => {
  assert.deepEqual(identityOf([policy]), { user: 'alice', app: '/usr/bin/ffmpeg' });
  assert.deepEqual(identityOf([]), { user: null, app: null });
});
