/* Which rules the eBPF path checks, their slots, and one executable's entry (pure). */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Names } from '../kernel/rules.js';
import { PolicySchema, type PolicyDoc } from '../policy/schema.js';
import { decodeSockets, encodeEntry, encodeKey, ENTRY_SIZE, kernelDev, SOCKREC_SIZE } from './encode.js';
import { ebpfEnforcement, ebpfPlacements, entrySlots, F_DENY, F_GID, F_LIMIT, F_NET, F_OVERRIDE, F_PRIO, F_TOS, F_UID, MAX_SLOTS, policyRuleInEbpf, type EbpfRule } from './rules.js';

const names: Names = { users: new Map([['alice', 1000]]), groups: new Map([['media', 2000]]) };
const doc = (rules: unknown[]): PolicyDoc => PolicySchema.parse({ rules });

test('a rule with exe and what the programs see is theirs; cmdline, unit, the local end, other events, raw sockets and flows are not', () => {
  const d = doc([
    { name: 'a', match: { exe: '/usr/bin/a', user: 'alice', proto: 'tcp', remote_port: '1000-2000' }, action: { dscp: 'EF', priority: 5 } },
    { name: 'b', match: { exe: '/usr/bin/b', cmdline: '*x*' }, action: { dscp: 'EF' } },
    { name: 'c', match: { exe: '/usr/bin/c', unit: 'x.service' }, action: { dscp: 'EF' } },
    { name: 'd', match: { exe: '/usr/bin/d', local_port: 80 }, action: { dscp: 'EF' } },
    { name: 'e', match: { exe: '/usr/bin/e', event: 'bind' }, action: { dscp: 'EF' } },
    { name: 'f', match: { exe: '/usr/bin/f', type: 'raw' }, action: { dscp: 'EF' } },
    { name: 'g', match: { exe: '/usr/bin/g' }, action: { service: 'guaranteed', flowspec: { token_rate: '1Mbit', bucket: '10KiB' } } },
    { name: 'h', match: { exe: '/usr/bin/h', user: 'nobody-here' }, action: { dscp: 'EF' } },
    { name: 'i', match: { remote_port: 53 }, action: { none: true } },
    { name: 'j', match: { exe: '/usr/bin/j', event: ['socket', 'sendto'] }, action: { deny: 'EACCES' } },
  ]);
  const p = ebpfPlacements(d, names);
  assert.deepEqual(p.map((x) => (x.rule ? 'ebpf' : x.reason!.split(' (')[0])), [
    'ebpf', 'the eBPF programs do not see the command line', 'the eBPF programs do not see the unit', 'the eBPF programs do not see the local port',
    'the eBPF programs see connect and sendto, not bind', 'the eBPF programs see stream and datagram sockets, not raw ones',
    'host traffic control and reservations need the agent\'s flow', 'no user nobody-here on this host', 'it names no executable', 'ebpf',
  ]);
  const a = p[0]!.rule!;
  assert.equal(a.slots.length, 1);
  assert.deepEqual({ ...a.slots[0], net: undefined, mask: undefined }, {
    rule: 0, events: 3, families: 0, types: 0, protos: 1, flags: F_TOS | F_PRIO | F_UID, uid: 1000, gid: 0, portLo: 1000, portHi: 2000, tos: 46 << 2, prio: 5, errno: 0, limit: 0, net: undefined, mask: undefined,
  });
  const j = p[9]!.rule!;
  assert.equal(j.slots[0]!.events, 2, 'sendto only');
  assert.equal(j.slots[0]!.flags, F_DENY);
  assert.equal(j.slots[0]!.errno, 13);
});

test('lists make one slot per combination; an IPv4 prefix checks connect4 and the v4-mapped form at connect6; too many combinations is the agent\'s', () => {
  const r = policyRuleInEbpf(doc([{ match: { exe: '/x', group: 'media', remote: ['192.0.2.0/24', '2001:db8::/32'], remote_port: [80, 443] }, action: { tos: 0x20, override: true } }]).rules[0]!, 0, names);
  const s = r.rule!.slots;
  assert.equal(s.length, 6, '2 ports x (v4, v4-mapped, v6)');
  assert.ok(s.every((x) => x.flags === (F_TOS | F_OVERRIDE | F_GID | F_NET) && x.gid === 2000 && x.tos === 0x20));
  const v4 = s.find((x) => x.families === 1)!;
  // network order in memory: 192.0.2.0/24 written little-endian as its bytes c0 00 02 00
  const b = Buffer.alloc(8);
  b.writeUInt32LE(v4.net[0]!, 0);
  b.writeUInt32LE(v4.mask[0]!, 4);
  assert.deepEqual([...b], [192, 0, 2, 0, 255, 255, 255, 0]);
  const mapped = s.filter((x) => x.families === 2).map((x) => { const m = Buffer.alloc(16); x.net.forEach((w, i) => m.writeUInt32LE(w, 4 * i)); return m.toString('hex'); });
  assert.ok(mapped.includes('00000000000000000000ffffc0000200'));
  assert.ok(mapped.includes('20010db8000000000000000000000000'));
  const many = policyRuleInEbpf(doc([{ match: { exe: '/x', remote_port: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, action: { dscp: 'EF' } }]).rules[0]!, 0, names);
  assert.match(many.reason!, /9 combinations; an eBPF entry holds 8/);
});

test('an entry holds the rules that can match its file in policy order, exe-less ones before the last exe rule; past the first that does not fit, none', () => {
  const mk = (index: number, exe: string[] | null, n = 1): EbpfRule => ({ index, name: `r${index}`, exe, slots: Array.from({ length: n }, () => ({ rule: index } as never)) });
  const rules = [mk(0, null), mk(1, ['/a']), mk(2, ['/b']), mk(3, null), mk(4, ['/a']), mk(5, null)];
  assert.deepEqual(entrySlots(rules, new Set([1, 4])).slots.map((s) => s.rule), [0, 1, 3, 4], 'not /b\'s rule, not the exe-less rule after the last');
  assert.deepEqual(entrySlots(rules, new Set([2])).slots.map((s) => s.rule), [0, 2]);
  const big = [mk(0, ['/a'], 3), mk(1, ['/a'], MAX_SLOTS - 2), mk(2, ['/a'], 1)];
  const e = entrySlots(big, new Set([0, 1, 2]));
  assert.deepEqual(e.slots.map((s) => s.rule), [0, 0, 0]);
  assert.deepEqual(e.cut, ['r1', 'r2'], 'r2 would fit, but r1 comes before it');
});

test('the bytes: a key, an entry and a decided socket as bpf/exe-mark.bpf.c lays them out; stat\'s device number as the kernel encodes it', () => {
  assert.equal(kernelDev(0xfe00n), 254 << 20, 'major 254, minor 0');
  assert.equal(kernelDev(0x10300n), (259 << 20) | 0, 'st_dev 0x10300: major 259');
  assert.equal(kernelDev(0x801n), (8 << 20) | 1);
  const key = encodeKey(7, { dev: 254 << 20, ino: 0x1122334455n });
  assert.equal(key.toString('hex'), '07000000' + '0000e00f' + '5544332211000000');
  const r = policyRuleInEbpf(doc([{ match: { exe: '/x', uid: 5, remote_port: 443 }, action: { dscp: 'AF41', priority: 3 } }]).rules[0]!, 4, names).rule!;
  const e = encodeEntry(r.slots);
  assert.equal(e.length, ENTRY_SIZE);
  assert.equal(e.readUInt32LE(0), 1, 'n');
  const s = e.subarray(16, 80);
  assert.deepEqual([...s.subarray(0, 8)], [3, 0, 0, 0, F_TOS | F_PRIO | F_UID, 34 << 2, 3, 0]);
  assert.deepEqual([s.readUInt16LE(8), s.readUInt16LE(10), s.readUInt16LE(12), s.readUInt32LE(16)], [443, 443, 4, 5]);
  assert.throws(() => encodeEntry(Array(MAX_SLOTS + 1).fill(r.slots[0])), /holds 8 slots/);
  // a decided socket: a TCP connect to [2001:db8::1]:443, as a dump() of qosd_sockets gives it
  const rec = Buffer.alloc(8 + SOCKREC_SIZE);
  const o = 8;
  rec.writeBigUInt64LE(99n, 0); rec.writeBigUInt64LE(1234n, o); rec.writeUInt32LE(4242, o + 8);
  rec.writeUInt32LE(1000, o + 12); rec.writeUInt32LE(1000, o + 16); rec.writeUInt32LE(254 << 20, o + 20); rec.writeUInt16LE(4, o + 24);
  rec[o + 26] = 10; rec[o + 27] = 1; rec[o + 28] = 6; rec[o + 29] = 1; rec[o + 30] = 34 << 2; rec[o + 31] = 3; rec.writeUInt16LE(443, o + 32); rec.writeUInt16LE(3, o + 34);
  Buffer.from('20010db8000000000000000000000001', 'hex').copy(rec, o + 36);
  assert.deepEqual(decodeSockets(Buffer.concat([rec, Buffer.alloc(10)])), [{
    cookie: 99n, pid: 4242, uid: 1000, gid: 1000, file: { dev: 254 << 20, ino: 1234n }, rule: 4, family: 'inet6', type: 1, protocol: 6, hook: 1,
    tos: 136, prio: 3, result: 3, remote: { address: '2001:db8::1', port: 443 },
  }], 'a partial record at the end is not read');
});

test('qos policy check\'s eBPF column: the files each exe rule names now, and why a symbolic link or a missing file names none', () => {
  const d = doc([{ name: 'x', match: { exe: ['/usr/bin/x', '/opt/*/y'] }, action: { dscp: 'EF' } }, { name: 'n', match: { cmdline: 'x' }, action: { dscp: 'EF' } }, { name: 'z', match: { exe: '/opt/*/y' }, action: { dscp: 'CS1' } }]);
  const seen: string[][] = [];
  const out = ebpfEnforcement(d, names, (patterns) => {
    seen.push(patterns);
    return new Map([['/usr/bin/x', { files: [], notes: ['/usr/bin/x is a symbolic link'] }], ['/opt/*/y', { files: [{ path: '/opt/a/y' }, { path: '/opt/b/y' }], notes: [] }]]);
  });
  assert.deepEqual(seen, [['/usr/bin/x', '/opt/*/y']], 'every rule\'s patterns resolved in one call');
  assert.deepEqual(out[0], { ebpf: true, ebpf_files: ['/opt/a/y', '/opt/b/y'], ebpf_notes: ['/usr/bin/x is a symbolic link'] });
  assert.equal(out[1]!.ebpf, false);
  assert.deepEqual(out[2], { ebpf: true, ebpf_files: ['/opt/a/y', '/opt/b/y'], ebpf_notes: [] });
});

test('a limit is the eBPF path\'s too: its slot carries the limit\'s id (F_LIMIT), at bytes 14-15 of the slot', () => {
  const d = doc([{ name: 'slow', match: { exe: '/x' }, action: { limit: { egress: '2Mbit' } } }, { match: { exe: '/y' }, action: { dscp: 'EF', limit: { ingress: '1Mbit' } } }]);
  const ids: string[] = [];
  const id = (k: string) => { ids.push(k); return 7; };
  const a = policyRuleInEbpf(d.rules[0]!, 0, names, id).rule!.slots[0]!;
  assert.equal(a.flags, F_LIMIT);
  assert.equal(a.limit, 7);
  const b = policyRuleInEbpf(d.rules[1]!, 1, names, id).rule!.slots[0]!;
  assert.equal(b.flags, F_LIMIT | F_TOS);
  assert.deepEqual(ids, ['slow', 'rule-2'], 'keyed by the rule\'s name');
  assert.equal(policyRuleInEbpf(d.rules[0]!, 0, names).rule!.slots[0]!.flags, 0, 'no id yet: the slot does not limit');
  assert.equal(encodeEntry([a]).readUInt16LE(16 + 14), 7);
});
