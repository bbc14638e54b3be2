import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exitCodeFor, QosError } from '../errors.js';
import { assuredRates, classCounters, DEFAULT_WEIGHTS, schedulerPlan } from './htb.js';

const wfq = { kind: 'wfq' as const, linkBps: 10e6, weights: DEFAULT_WEIGHTS, queuePackets: 100 };

test('wfq: assured rates follow the weights and add up to the link', () => {
  const r = assuredRates(wfq);
  assert.equal(r[0], Math.floor(10e6 / 36));
  assert.equal(r[7], Math.floor((10e6 * 8) / 36));
  assert.ok(r.reduce((a, b) => a + b, 0) <= 10e6);
});

test('wfq plan: eight classes at one HTB priority, ceil = link, quanta in proportion to the weights, u32 on the precedence bits of IPv4 and IPv6', () => {
  const plan = schedulerPlan('snk0', wfq);
  const classes = plan.filter((a) => a[0] === 'class' && a.includes('1:1'));
  const leaves = classes.filter((a) => /^1:1[0-7]$/.test(a[a.indexOf('classid') + 1]!));
  assert.equal(leaves.length, 8);
  for (const [p, a] of leaves.entries()) {
    assert.equal(a[a.indexOf('ceil') + 1], '10000000bit');
    assert.equal(a[a.indexOf('prio') + 1], '0');
    assert.equal(a[a.indexOf('quantum') + 1], String(1514 * (p + 1)));
  }
  const filters = plan.filter((a) => a[0] === 'filter').map((a) => a.join(' '));
  assert.equal(filters.length, 16, 'one filter per precedence and family');
  assert.ok(filters.includes('filter add dev snk0 parent 1: protocol ip prio 1 u32 match ip tos 0xa0 0xe0 flowid 1:15'));
  assert.ok(filters.includes('filter add dev snk0 parent 1: protocol ipv6 prio 2 u32 match ip6 priority 0xa0 0xe0 flowid 1:15'), 'IPv6 traffic class classified as IPv4 TOS');
  assert.ok(plan.some((a) => a.join(' ') === 'qdisc add dev snk0 parent 1:10 handle 10: pfifo limit 100'));
});

test('priority plan: precedence 7 is served first, every class at a token rate', () => {
  const plan = schedulerPlan('d', { ...wfq, kind: 'priority' });
  const prio = (cls: string) => { const a = plan.find((x) => x.includes(cls) && x[0] === 'class')!; return a[a.indexOf('prio') + 1]; };
  assert.equal(prio('1:17'), '0');
  assert.equal(prio('1:10'), '7');
  assert.deepEqual(new Set(assuredRates({ ...wfq, kind: 'priority' })), new Set([8000]));
});

test('bad scheduler options are refused as usage errors (exit 64) with the option named', () => {
  assert.throws(() => schedulerPlan('d', { ...wfq, weights: [1, 2, 3] }), (e) => e instanceof QosError && e.code === 'QOS_ERR_USAGE' && exitCodeFor(e) === 64);
  assert.throws(() => schedulerPlan('d', { ...wfq, weights: [1, 2, 3] }), /eight whole numbers/);
  assert.throws(() => schedulerPlan('d', { ...wfq, weights: [0, 1, 1, 1, 1, 1, 1, 1] }), /1\.\.1000/);
  assert.throws(() => schedulerPlan('d', { ...wfq, queuePackets: 1 }), /queue length/);
  assert.throws(() => schedulerPlan('d', { ...wfq, linkBps: 10 }), /at least 64 kbit/);
});

test('class counters come from the class queues of tc -s -j qdisc show', () => {
  const json = JSON.stringify([
    { kind: 'htb', handle: '1:', root: true, bytes: 999, drops: 0 },
    { kind: 'pfifo', handle: '15:', parent: '1:15', bytes: 1500, drops: 2 },
    { kind: 'pfifo', handle: '10:', parent: '1:10', bytes: 7000, drops: 40 },
  ]);
  assert.deepEqual(classCounters(json), { bytes: [7000, 0, 0, 0, 0, 1500, 0, 0], drops: [40, 0, 0, 0, 0, 2, 0, 0] });
  assert.throws(() => classCounters('{}'), /not a JSON array/);
});
