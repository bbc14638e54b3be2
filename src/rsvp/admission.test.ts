/* Admission control: the reservable share of a link, per-user and per-application quotas, a
 * change judged by its difference, release giving bandwidth back, and the refusal codes of RFC
 * 2205 appendix B and RFC 2750. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMISSION_BANDWIDTH_UNAVAILABLE, LinkAdmission, POLICY_QUOTA_VIOLATION } from './admission.js';
import type { Flowspec } from './flowspec.js';

const cl = (r: number): Flowspec => ({ kind: 'FLOWSPEC', service: 'CL', tspec: { r, b: 1000, p: Infinity, m: 64, M: 1500 } });
const gs = (r: number, R: number): Flowspec => ({ kind: 'FLOWSPEC', service: 'GS', tspec: { r, b: 1000, p: r * 2, m: 64, M: 1500 }, R, S: 0 });
const nobody = { user: null, app: null };

test('a link admits up to its reservable share, counting CL by r and GS by R; refusal is code 1 value 2', () => {
  const a = new LinkAdmission({ links: { eth0: { rate: 1_000_000, share: 0.5 } } });
  assert.deepEqual(a.admit({ key: 'a', ifname: 'eth0', flowspec: cl(300_000), previous: null, identity: nobody }), { ok: true });
  const no = a.admit({ key: 'b', ifname: 'eth0', flowspec: gs(10_000, 250_000), previous: null, identity: nobody });
  assert.equal(no.ok, false);
  assert.ok(!no.ok && no.code === 1 && no.value === ADMISSION_BANDWIDTH_UNAVAILABLE && /eth0/.test(no.reason));
  assert.deepEqual(a.admit({ key: 'b', ifname: 'eth0', flowspec: gs(10_000, 200_000), previous: null, identity: nobody }), { ok: true });
  assert.deepEqual(a.usage().links, { eth0: 500_000 });
  const other = a.admit({ key: 'c', ifname: 'eth9', flowspec: cl(1), previous: null, identity: nobody });
  assert.ok(!other.ok && other.code === 1, 'an interface not configured has nothing reservable');
});

test('a change is judged by its difference; release gives the bandwidth back', () => {
  const a = new LinkAdmission({ links: { eth0: { rate: 100_000, share: 1 } } });
  assert.ok(a.admit({ key: 'a', ifname: 'eth0', flowspec: cl(60_000), previous: null, identity: nobody }).ok);
  assert.ok(a.admit({ key: 'a', ifname: 'eth0', flowspec: cl(90_000), previous: cl(60_000), identity: nobody }).ok, 'growing 60k to 90k of 100k fits');
  assert.ok(!a.admit({ key: 'b', ifname: 'eth0', flowspec: cl(20_000), previous: null, identity: nobody }).ok);
  a.release('a');
  assert.ok(a.admit({ key: 'b', ifname: 'eth0', flowspec: cl(20_000), previous: null, identity: nobody }).ok);
  a.release('nothing');
  assert.deepEqual(a.usage().links, { eth0: 20_000 });
});

test('user and application quotas hold across links; refusal is policy code 2 with RFC 2750 value 4', () => {
  const a = new LinkAdmission({
    links: { eth0: { rate: 1e9, share: 1 }, eth1: { rate: 1e9, share: 1 } },
    users: { alice: 50_000, bob: 1e9 }, apps: { '/usr/bin/ffmpeg': 30_000 }, default: { user: 10_000 },
  });
  const alice = { user: 'alice', app: null };
  assert.ok(a.admit({ key: 'a0', ifname: 'eth0', flowspec: cl(30_000), previous: null, identity: alice }).ok);
  const over = a.admit({ key: 'a1', ifname: 'eth1', flowspec: cl(30_000), previous: null, identity: alice });
  assert.ok(!over.ok && over.code === 2 && over.value === POLICY_QUOTA_VIOLATION && /alice/.test(over.reason));
  const ff = a.admit({ key: 'f', ifname: 'eth1', flowspec: cl(40_000), previous: null, identity: { user: 'bob', app: '/usr/bin/ffmpeg' } });
  assert.ok(!ff.ok && ff.code === 2 && /ffmpeg/.test(ff.reason));
  assert.ok(!a.admit({ key: 'bob', ifname: 'eth0', flowspec: cl(20_000), previous: null, identity: { user: 'carol', app: null } }).ok, 'the default user quota');
  assert.ok(!a.admit({ key: 'anon', ifname: 'eth0', flowspec: cl(20_000), previous: null, identity: nobody }).ok, 'no identity: the default quota too');
  assert.ok(a.admit({ key: 'anon', ifname: 'eth0', flowspec: cl(9_000), previous: null, identity: nobody }).ok);
  assert.deepEqual(a.usage().users, { alice: 30_000, '': 9_000 });
});
