import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlowSpec } from '../flowspec/parse.js';
import { DEFAULT_NONCONFORMING, emptyState, isExact, overlaps, parseFilter, policer, type TcFilter, type TcFlow, type TcInterface, type TcState } from './model.js';
import { filterKey, planChange, planText } from './plan.js';

const dev = (slot = 0, over: Partial<TcInterface> = {}): TcInterface => ({ dev: 'eth0', rate: 1_250_000, marks: {}, nonconforming: DEFAULT_NONCONFORMING, slot, vlan: false, dot1p: false, ...over });
const flow = (id: number, over: Partial<TcFlow> = {}): TcFlow => ({
  id, dev: 'eth0', name: null, spec: parseFlowSpec({ TokenRate: '1Mbit', TokenBucketSize: '10kB', ServiceType: 'ControlledLoad' }), mode: 'borrow',
  framing: { proto: 'udp', ipv6: false }, dscp: null, pcp: null, owner: { kind: 'admin' }, ...over,
});
const state = (devs: TcInterface[], flows: TcFlow[], filters: TcFilter[] = []): TcState => ({
  devs: new Map(devs.map((d) => [d.dev, d])), flows: new Map(flows.map((f) => [f.id, f])), filters: new Map(filters.map((f) => [f.id, f])),
});

test('a first flow installs the interface: HTB root and reserved classes, the table, maps, lookups, the flow', () => {
  const f1 = flow(1);
  const filt = parseFilter({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', proto: 'udp', sport: 4000, dport: 5000 }, 7);
  const p = planChange(emptyState(), state([dev()], [f1], [filt]));
  assert.equal(p.tc[0], 'qdisc add dev eth0 root handle d5c: htb default 2');
  assert.ok(p.tc.includes('class add dev eth0 parent d5c:1 classid d5c:11 htb rate 1000000bit ceil 1000000bit burst 10000 cburst 10000 prio 2 quantum 1514'));
  // best effort keeps what the flow and the demoted class leave: 10 Mb/s - 1 - 0.1
  assert.ok(p.tc.includes('class add dev eth0 parent d5c:1 classid d5c:2 htb rate 8900000bit ceil 10000000bit prio 4 quantum 1514'));
  assert.equal(p.nft[0], 'add table inet qosd_tc');
  assert.ok(p.nft.includes(`add rule inet qosd_tc flow_1 limit rate over ${policer(f1).pps}/second burst ${policer(f1).burst} packets goto demote_0`));
  assert.ok(p.nft.includes('add rule inet qosd_tc flow_1 ip dscp set 24'));
  assert.ok(p.nft.includes('add element inet qosd_tc x4_0 { 10.0.0.1 . 10.0.0.2 . 17 . 4000 . 5000 : goto flow_1 }'));
  // exact before wildcard in the base chain, which is added after the maps it names
  const post = p.nft.filter((l) => l.startsWith('add rule inet qosd_tc post'));
  assert.deepEqual(post.map((l) => l.split('@')[1]), ['x4_0', 'w4_0', 'x6_0', 'w6_0']);
  assert.ok(p.nft.indexOf(post[0]!) > p.nft.findIndex((l) => l.startsWith('add map')));
  assert.deepEqual(p.ip, []);
});

test('a change touches only what changed; identical states plan nothing', () => {
  const d = dev(), f1 = flow(1), f2 = flow(2);
  const a = state([d], [f1]);
  assert.equal(planText(planChange(a, a)), '# nothing to change\n');
  const b = state([d], [f1, f2]);
  const add = planChange(a, b);
  assert.ok(add.nft.every((l) => !l.includes('flow_1')), add.nft.join('\n'));
  assert.ok(add.nft.includes('add chain inet qosd_tc flow_2'));
  assert.ok(!add.tc.some((l) => l.startsWith('qdisc add dev eth0 root')));
  // the best-effort class gives up the new flow's rate
  assert.ok(add.tc.some((l) => l.includes('classid d5c:2 htb rate 7900000bit')));
  const del = planChange(b, a);
  assert.deepEqual(del.nft, ['delete chain inet qosd_tc flow_2']);
  assert.ok(del.tc.includes('class del dev eth0 classid d5c:12'));
  const shape = planChange(a, state([d], [{ ...f1, mode: 'shape' }]));
  assert.ok(shape.nft.includes('flush chain inet qosd_tc flow_1'));
  assert.ok(shape.tc.some((l) => /^class change .* classid d5c:11 /.test(l)));
  assert.ok(shape.tc.some((l) => /^qdisc replace dev eth0 parent d5c:11 bfifo limit \d+$/.test(l)));
  assert.ok(!shape.nft.some((l) => l.includes('limit rate over')), 'shape mode does not police: the shaper makes every packet conform');
  // with a peak rate, a TBF holds the flow to it: its bucket at the token rate, its peak bucket one frame
  const peak = planChange(a, state([d], [{ ...f1, mode: 'shape', spec: parseFlowSpec({ TokenRate: '1Mbit', TokenBucketSize: '10kB', PeakBandwidth: '2Mbit', Latency: '50ms' }) }]));
  assert.ok(peak.tc.includes('qdisc replace dev eth0 parent d5c:11 tbf rate 1000000bit burst 10000 peakrate 2000000bit minburst 1514 limit 16250'), peak.tc.join('\n'));
});

test('a flow goes with its filters first; the last flow\'s removal keeps the interface; removing all deletes table and root', () => {
  const d = dev(), f1 = flow(1);
  const filt = parseFilter({ flow: 1, dst: '192.0.2.0/24', proto: 'tcp', dport: '80-90' }, 3);
  const p = planChange(state([d], [f1], [filt]), state([d], []));
  assert.deepEqual(p.nft, ['delete element inet qosd_tc w4_0 { 0.0.0.0-255.255.255.255 . 192.0.2.0-192.0.2.255 . 6 . 0-65535 . 80-90 }', 'delete chain inet qosd_tc flow_1']);
  const gone = planChange(state([d], [f1], [filt]), emptyState());
  assert.deepEqual(gone, { tc: ['qdisc del dev eth0 root'], nft: ['delete table inet qosd_tc'], ip: [], dot1p: [] });
});

test('an interface added again under a new slot is reinstalled; a VLAN device gets 802.1p through egress-qos-map', () => {
  const v = dev(0, { dev: 'eth0.10', vlan: true });
  const f1 = flow(1, { dev: 'eth0.10', pcp: 6 });
  const p = planChange(emptyState(), state([v], [f1]));
  // skb->priority of d5c:3 and d5c:11 (0xd5c0003, 0xd5c0011) to their PCPs
  assert.deepEqual(p.ip, [['link', 'set', 'dev', 'eth0.10', 'type', 'vlan', 'egress-qos-map', `${0xd5c0003}:1`, `${0xd5c0011}:6`]]);
  const again = planChange(state([dev(0)], [flow(1)]), state([dev(1)], [flow(1)]));
  assert.ok(again.tc.includes('qdisc del dev eth0 root'));
  assert.ok(again.tc.includes('qdisc add dev eth0 root handle d5c: htb default 2'));
  assert.ok(again.nft.includes('flush chain inet qosd_tc post'));
  assert.ok(again.nft.includes('delete map inet qosd_tc x4_0') && again.nft.includes('add map inet qosd_tc x4_1 { type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service : verdict; }'));
});

test('filters: masks, prefixes, ranges and wildcards; exact ones; overlap; bad input names the field', () => {
  const a = parseFilter({ flow: 1, src: '10.1.0.0/255.255.0.0', dst: '*', proto: 'udp', dport: '5000-5010' }, 1);
  assert.equal(filterKey(a), '10.1.0.0-10.1.255.255 . 0.0.0.0-255.255.255.255 . 17 . 0-65535 . 5000-5010');
  const b = parseFilter({ flow: 1, src: '10.1.2.3', dst: '10.9.9.9', proto: 'udp', sport: 1, dport: 5005 }, 2);
  assert.ok(isExact(b) && !isExact(a) && overlaps(a, b));
  const c = parseFilter({ flow: 1, src: '10.2.0.0/16', proto: 'udp' }, 3);
  assert.ok(!overlaps(a, c));
  const v6 = parseFilter({ flow: 1, dst: '2001:db8::/32' }, 4);
  assert.equal(v6.family, 6);
  assert.equal(filterKey(v6), '0:0:0:0:0:0:0:0-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff . 2001:db8:0:0:0:0:0:0-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff . 0-255 . 0-65535 . 0-65535');
  assert.ok(!overlaps(v6, a), 'families never overlap');
  assert.throws(() => parseFilter({ flow: 1, src: '10.0.0.0/255.0.255.0' }, 5), /contiguous/);
  assert.throws(() => parseFilter({ flow: 1, dport: 80 }, 5), /ports need proto/);
  assert.throws(() => parseFilter({ flow: 1, dst: '10.0.0.1', family: 6 }, 5), /not an IPv6 address/);
  assert.throws(() => parseFilter({ flow: 1, sport: '70000', proto: 'tcp' }, 5), /sport/);
  assert.throws(() => parseFilter({ flow: 'x' }, 5), /flow: N/);
});

test('the policer counts packets of the flow\'s size: its bucket and rate in packets', () => {
  const f = flow(1, { spec: parseFlowSpec({ TokenRate: 125_000, TokenBucketSize: 20_000, MinimumPolicedSize: 1000 }) });
  // the actual token rate 125000 x 1028/1000 = 128500 B/s in 1028-byte packets: 125/s
  assert.deepEqual(policer(f), { size: 1028, pps: 125, burst: 19 });
  const g = flow(1, { spec: parseFlowSpec({ TokenRate: 8000, MaxSduSize: 160, MinimumPolicedSize: 160 }) });
  // 8000 B/s of 160-byte packets is 50/s; no bucket given: one full frame's, 1514 bytes, 8 of them
  assert.deepEqual(policer(g), { size: 188, pps: 50, burst: 8 });
});

test('an interface gone: only its nftables part is removed (the kernel took the rest with the device); back with a new slot, all of it is installed', () => {
  const d = dev(0, { ifindex: 5 }), e = dev(1, { dev: 'eth1', ifindex: 6, dot1p: true });
  const f1 = flow(1), f2 = flow(2, { dev: 'eth1' });
  const x = parseFilter({ flow: 1, src: '10.0.0.1', dst: '10.0.0.2', proto: 'udp', sport: 4000, dport: 5000 }, 7);
  const y = parseFilter({ flow: 1, dst: '2001:db8::/32', proto: 'udp' }, 8);
  const live = state([d, e], [f1, f2], [x, y]);
  const absent = { ...d, absent: { since: '2026-01-01T00:00:00.000Z', why: 'gone' } };
  const waiting = state([absent, e], [f1, f2], [x, y]);
  const gone = planChange(live, waiting);
  assert.deepEqual(gone.tc, [], 'nothing asked of a device that is not there');
  assert.deepEqual(gone.dot1p, []);
  assert.deepEqual(gone.nft, [
    'flush chain inet qosd_tc post',
    'delete map inet qosd_tc x4_0', 'delete map inet qosd_tc w4_0', 'delete map inet qosd_tc x6_0', 'delete map inet qosd_tc w6_0',
    'delete chain inet qosd_tc flow_1', 'delete chain inet qosd_tc demote_0',
    ...['x4_1', 'w4_1', 'x6_1', 'w6_1'].map((m) => `add rule inet qosd_tc post oifname "eth1" ${m.includes('4') ? 'ip saddr . ip daddr' : 'ip6 saddr . ip6 daddr'} . meta l4proto . th sport . th dport vmap @${m}`),
  ]);
  // waiting changes nothing in the kernel; stopping removes only what is there
  assert.equal(planText(planChange(waiting, waiting)), '# nothing to change\n');
  assert.deepEqual(planChange(waiting, emptyState()).tc, ['qdisc del dev eth1 root']);
  // the last interface gone takes the table; nothing is asked of its device
  assert.deepEqual(planChange(state([d], [f1]), state([absent], [f1])), { tc: [], nft: ['delete table inet qosd_tc'], ip: [], dot1p: [] });
  // back: a new device (index 9), a new slot; root, classes, chains, maps, elements again
  const back = state([{ ...d, slot: 2, ifindex: 9 }, e], [f1, f2], [x, y]);
  const again = planChange(waiting, back);
  assert.equal(again.tc[0], 'qdisc add dev eth0 root handle d5c: htb default 2');
  assert.ok(again.tc.some((l) => l.startsWith('class add dev eth0 parent d5c:1 classid d5c:11 ')));
  assert.ok(again.nft.includes('add chain inet qosd_tc flow_1'));
  assert.ok(again.nft.includes('add element inet qosd_tc x4_2 { 10.0.0.1 . 10.0.0.2 . 17 . 4000 . 5000 : goto flow_1 }'));
  assert.ok(again.nft.some((l) => l.startsWith('add element inet qosd_tc w6_2 { ')));
  assert.ok(!again.tc.some((l) => l.includes('eth1')) && !again.nft.some((l) => l.includes('flow_2')), 'eth1 untouched');
  // a device that replaced it before the removal was seen (another index): the same, without deleting on the new one
  const replaced = planChange(live, back);
  assert.ok(!replaced.tc.includes('qdisc del dev eth0 root'));
  assert.equal(replaced.tc[0], 'qdisc add dev eth0 root handle d5c: htb default 2');
  assert.ok(replaced.nft.includes('delete map inet qosd_tc x4_0') && replaced.nft.includes('delete chain inet qosd_tc flow_1') && replaced.nft.includes('add chain inet qosd_tc flow_1'));
});

test('a rename keeps the interface\'s slot, qdisc and classes: only the lookups, which name it, are written again', () => {
  const d = dev(0, { ifindex: 5 }), f1 = flow(1), f2 = flow(2, { mode: 'shape' });
  const x = parseFilter({ flow: 1, dst: '10.0.0.2', proto: 'udp' }, 7);
  const before = state([d], [f1, f2], [x]);
  const moved = state([{ ...d, dev: 'wan0' }], [{ ...f1, dev: 'wan0' }, { ...f2, dev: 'wan0' }], [x]);
  const p = planChange(before, moved);
  assert.deepEqual(p, {
    tc: [], ip: [], dot1p: [],
    nft: ['flush chain inet qosd_tc post', ...['x4_0', 'w4_0', 'x6_0', 'w6_0'].map((m) => `add rule inet qosd_tc post oifname "wan0" ${m.includes('4') ? 'ip saddr . ip daddr' : 'ip6 saddr . ip6 daddr'} . meta l4proto . th sport . th dport vmap @${m}`)],
  });
  // what changes after it is asked of the new name
  const later = planChange(moved, state([{ ...d, dev: 'wan0' }], [{ ...f1, dev: 'wan0' }], [x]));
  assert.ok(later.tc.includes('class del dev wan0 classid d5c:12'));
});
