/* Per-application limits' bookkeeping (limits.ts) with a fake host: the policy's limits become
 * ids that a reload keeps, HTB classes on the IFB device made, changed and removed by one batch
 * each, the filters on every interface but loopback and IFB devices, the kernel map written;
 * an agent's decision tags its socket; a policy without limits removes everything. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { PolicySchema } from '../policy/schema.js';
import type { DecisionLimit } from '../policy/engine.js';
import type { Flow } from '../daemon/flows.js';
import { AppLimits, classBatch, ifbName, limitClass, policyLimits, type LimitHost, type Link } from './limits.js';

function fakeHost(links: Link[]) {
  const log: string[] = [];
  const host: LimitHost & { log: string[]; links: () => Promise<Link[]> } = {
    log,
    links: async () => links,
    tc: async (lines) => { log.push(...lines.map((l) => `tc ${l}`)); },
    ip: async (argv) => {
      log.push(`ip ${argv.join(' ')}`);
      if (argv[1] === 'add') links.push({ ifindex: 99, name: argv[3]!, loopback: false, kind: 'ifb' });
      if (argv[1] === 'del') links.splice(links.findIndex((l) => l.name === argv[3]), 1);
    },
    attach: (i, egress, ifb) => { log.push(`attach ${i} ${egress ? 'egress' : 'ingress'} -> ${ifb}`); },
    detach: (i, egress) => { log.push(`detach ${i} ${egress ? 'egress' : 'ingress'}`); },
    tag: (pid, fd, id) => { log.push(`tag ${pid}/${fd} ${id}`); return true; },
  };
  return host;
}

const doc = (rules: { name: string; limit: Record<string, string> }[], dflt?: Record<string, string>) => PolicySchema.parse({
  rules: rules.map((r) => ({ name: r.name, match: { exe: `/bin/${r.name}` }, action: { limit: r.limit } })),
  ...(dflt ? { default: { limit: dflt } } : {}),
});

test('a policy\'s limits: each rule\'s (by name) and the default\'s, in bytes per second; bad ones are policy errors', () => {
  assert.deepEqual(policyLimits(doc([{ name: 'a', limit: { egress: '2Mbit' } }, { name: 'b', limit: { ingress: '10Mbit', egress: '1MB' } }], { ingress: '50Mbit' })),
    [{ key: 'a', egress: 250_000 }, { key: 'b', egress: 1_000_000, ingress: 1_250_000 }, { key: 'default', ingress: 6_250_000 }]);
  assert.throws(() => doc([{ name: 'a', limit: {} }]), /a limit needs egress, ingress or both/);
  assert.throws(() => doc([{ name: 'a', limit: { egress: '1kbit' } }]), /a limit is from 8kbit to 100Gbit/);
  assert.throws(() => doc([{ name: 'a', limit: { egress: 'fast' } }]), /a number of bytes per second/);
  assert.throws(() => PolicySchema.parse({ rules: [{ match: {}, action: { deny: 'EPERM', limit: { egress: '1Mbit' } } }] }), /deny cannot be combined with limit/);
});

test('classes: rate = ceil = the limit, a queue of about 100 ms; changed, kept or removed by what differs', () => {
  const a: DecisionLimit = { key: 'a', egress: 250_000 }, b: DecisionLimit = { key: 'b', ingress: 1_250_000 };
  assert.deepEqual(classBatch('x-lim', new Map(), new Map([[1, a]])), [
    'class replace dev x-lim parent 1: classid 1:1001 htb rate 2000000bit ceil 2000000bit quantum 25000',
    'qdisc replace dev x-lim parent 1:1001 pfifo limit 32',
  ]);
  assert.deepEqual(classBatch('x-lim', new Map([[1, a]]), new Map([[1, a]])), [], 'nothing changed');
  assert.deepEqual(classBatch('x-lim', new Map([[1, a]]), new Map([[2, b]])), [
    'class replace dev x-lim parent 1: classid 1:2002 htb rate 10000000bit ceil 10000000bit quantum 125000',
    'qdisc replace dev x-lim parent 1:2002 pfifo limit 83',
    'class del dev x-lim classid 1:1001',
  ]);
  assert.deepEqual(limitClass(3, 'ingress'), { text: '1:2003', id: 0x12003 });
  assert.equal(ifbName('qosd'), 'qosd-lim');
  assert.ok(ifbName('qosd_t12345_1').length <= 15 && ifbName('qosd_t12345_1') !== ifbName('qosd_t12345_2'));
});

test('the IFB device, its classes, the map and every interface\'s filters; a reload keeps ids; no limits removes it all', async () => {
  const host = fakeHost([{ ifindex: 1, name: 'lo', loopback: true, kind: null }, { ifindex: 2, name: 'eth0', loopback: false, kind: null }, { ifindex: 5, name: 'ifb0', loopback: false, kind: 'ifb' }]);
  const writes: [number[], number[]][] = [];
  const l = new AppLimits({ host, table: 'qosd', log: pino({ level: 'silent' }), writeClasses: (live, gone) => writes.push([[...live.keys()], [...gone]]) });
  l.setPolicy(doc([{ name: 'a', limit: { egress: '2Mbit' } }, { name: 'b', limit: { ingress: '10Mbit' } }]));
  await l.settled();
  assert.deepEqual(host.log.filter((x) => !x.startsWith('tc class') && !x.startsWith('tc qdisc replace dev qosd-lim parent')), [
    'ip link add name qosd-lim txqueuelen 1000 type ifb', 'ip link set dev qosd-lim up', 'tc qdisc replace dev qosd-lim root handle 1: htb default 0',
    'attach 2 ingress -> 99', 'attach 2 egress -> 99',
  ], 'loopback and IFB devices have no filters');
  assert.deepEqual(writes, [[[1, 2], []]]);
  host.log.length = 0;
  l.setPolicy(doc([{ name: 'b', limit: { ingress: '10Mbit' } }, { name: 'c', limit: { egress: '1Mbit' } }]));
  await l.settled();
  assert.equal(l.idOf('b'), 2, 'a limit the reload keeps keeps its id');
  assert.equal(l.idOf('c'), 3, 'a removed limit\'s id is not given to the next');
  assert.deepEqual(host.log, ['tc class replace dev qosd-lim parent 1: classid 1:1003 htb rate 1000000bit ceil 1000000bit quantum 12500', 'tc qdisc replace dev qosd-lim parent 1:1003 pfifo limit 32', 'tc class del dev qosd-lim classid 1:1001']);
  assert.deepEqual(writes.at(-1), [[2, 3], [1]]);
  host.log.length = 0;
  l.setPolicy(PolicySchema.parse({ rules: [] }));
  await l.settled();
  assert.deepEqual(host.log, ['detach 2 ingress', 'detach 2 egress', 'ip link del dev qosd-lim']);
  assert.deepEqual(writes.at(-1), [[], [2, 3]]);
});

test('an agent\'s decision with a limit tags the socket with its id; one the policy does not know is counted, not tagged', async () => {
  const host = fakeHost([{ ifindex: 2, name: 'eth0', loopback: false, kind: null }]);
  const l = new AppLimits({ host, table: 'qosd', log: pino({ level: 'silent' }), writeClasses: () => undefined });
  l.setPolicy(doc([{ name: 'a', limit: { egress: '2Mbit' } }]));
  await l.settled();
  host.log.length = 0;
  const flow = { pid: 4242, fd: 7 } as Flow;
  l.onEvent({ kind: 'decided', flow, decision: { limit: { key: 'a', egress: 250_000 } }, rule: 'a' });
  l.onEvent({ kind: 'decided', flow, decision: { dscp: 46 }, rule: 'x' });
  l.onEvent({ kind: 'decided', flow, decision: { limit: { key: 'gone', egress: 1 } }, rule: 'gone' });
  assert.deepEqual(host.log, ['tag 4242/7 1']);
  assert.deepEqual([l.counts.sockets_tagged, l.counts.sockets_not_tagged], [1, 1]);
});

test('leftovers of a daemon killed with SIGKILL: found by its IFB device, removed with the filters on every interface', async () => {
  const host = fakeHost([{ ifindex: 2, name: 'eth0', loopback: false, kind: null }, { ifindex: 9, name: 'qosd-lim', loopback: false, kind: 'ifb' }]);
  const l = new AppLimits({ host, table: 'qosd', log: pino({ level: 'silent' }), writeClasses: () => undefined });
  await l.cleanLeftovers();
  assert.deepEqual(host.log, ['detach 2 ingress', 'detach 2 egress', 'detach 9 ingress', 'detach 9 egress', 'ip link del dev qosd-lim']);
  host.log.length = 0;
  await l.cleanLeftovers();
  assert.deepEqual(host.log, [], 'nothing left: nothing done');
});
