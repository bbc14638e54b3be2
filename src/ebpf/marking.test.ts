/* The ebpf component's map writes, with a fake loader that records them: a policy goes in as a
 * new generation (every entry, then the live generation, then the old entries deleted), so no
 * call reads half of one; a refused write leaves the live generation as it was. */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { ManualClock } from '../clock.js';
import { PolicySchema } from '../policy/schema.js';
import { EVENT_SIZE, KEY_SIZE } from './encode.js';
import { EbpfMarking, MAX_EBPF_FLOWS_PER_USER, type Native } from './marking.js';

const cg = mkdtempSync(join(tmpdir(), 'qosd-cg-'));
after(() => rmSync(cg, { recursive: true, force: true }));

type Op = [string, ...unknown[]];
function fakeNative(fail?: (op: string, fd: number) => boolean): Native & { ops: Op[]; map: Map<string, Buffer>; gen: number } {
  const map = new Map<string, Buffer>();
  const n = {
    ops: [] as Op[], map, gen: 0,
    open: () => 0,
    describe: () => ({ programs: [{ name: 'p', section: 'cgroup/connect4', id: 1 }], maps: ['qosd_exe', 'qosd_gen', 'qosd_agent', 'qosd_events'].map((name, i) => ({ name, fd: 10 + i, key_size: 0, value_size: 0, max_entries: 0 })), links: [1] }),
    update(fd: number, keys: Buffer, values: Buffer) {
      if (fail?.('update', fd)) throw new Error('E2BIG');
      if (fd === 11) { n.gen = values.readUInt32LE(0); n.ops.push(['gen', n.gen]); return; }
      const gens = new Set<number>();
      for (let at = 0; at < keys.length; at += KEY_SIZE) { map.set(keys.subarray(at, at + KEY_SIZE).toString('hex'), values); gens.add(keys.readUInt32LE(at)); }
      n.ops.push(['put', fd, [...gens], keys.length / KEY_SIZE]);
    },
    delete(fd: number, keys: Buffer) {
      const gens = new Set<number>();
      for (let at = 0; at < keys.length; at += KEY_SIZE) { map.delete(keys.subarray(at, at + KEY_SIZE).toString('hex')); gens.add(keys.readUInt32LE(at)); }
      n.ops.push(['del', fd, [...gens], keys.length / KEY_SIZE]);
    },
    keys: () => Buffer.alloc(0), lookup: () => null, events: () => Buffer.alloc(0), close: () => { n.ops.push(['close']); },
  };
  return n;
}

const files = (patterns: readonly string[]) => new Map(patterns.map((p, i) => [p, { files: [{ path: p, dev: 1, ino: BigInt(100 + i) }], notes: [] }]));
const policy = (n: number, dscp = 'EF') => PolicySchema.parse({ rules: Array.from({ length: n }, (_, i) => ({ name: `r${i}`, match: { exe: `/bin/p${i}` }, action: { dscp } })) });

test('each policy is a new generation: its entries, then the generation, then the old entries deleted', async () => {
  const n = fakeNative();
  const m = new EbpfMarking({ mode: 'on', cgroup: cg, log: pino({ level: 'silent' }), clock: new ManualClock(), native: n, resolve: files });
  await m.start(policy(3));
  m.setPolicy(policy(2, 'CS5'));
  assert.deepEqual(n.ops, [
    ['put', 10, [1], 3], ['gen', 1], ['del', 10, [], 0],
    ['put', 10, [2], 2], ['gen', 2], ['del', 10, [1], 3],
  ]);
  assert.equal(n.map.size, 2, 'only the live generation\'s entries remain');
  await m.stop();
  assert.deepEqual(n.ops.at(-1), ['close']);
});

test('a rescan writes a generation only when the files changed; a refused write keeps the live one and says so', async () => {
  let version = 0;
  const n = fakeNative((op, fd) => op === 'update' && fd === 10 && version === 2);
  const clock = new ManualClock();
  const m = new EbpfMarking({ mode: 'on', cgroup: cg, log: pino({ level: 'silent' }), clock, native: n, rescanMs: 1000, resolve: (p) => new Map(p.map((x) => [x, { files: [{ path: x, dev: 1, ino: BigInt(100 + version) }], notes: [] }])) });
  await m.start(policy(1));
  clock.advance(1000);
  assert.equal(n.ops.filter((o) => o[0] === 'gen').length, 1, 'same files: no new generation');
  version = 1; // the program was upgraded: a new inode
  clock.advance(1000);
  assert.deepEqual(n.ops.filter((o) => o[0] === 'gen'), [['gen', 1], ['gen', 2]]);
  version = 2;
  assert.throws(() => m.setPolicy(policy(1, 'CS1')), /the eBPF map refused the policy's 1 executables: E2BIG/);
  assert.equal(n.gen, 2, 'the live generation stays');
  assert.equal((m.status().ebpf as { generation: number }).generation, 2);
  await m.stop();
});

test('--ebpf auto on a machine without the cgroup: not attached, with the reason; --ebpf on: the start fails with it', async () => {
  const auto = new EbpfMarking({ mode: 'auto', cgroup: join(cg, 'missing'), log: pino({ level: 'silent' }), clock: new ManualClock(), native: fakeNative() });
  await auto.start(policy(1));
  const s = auto.status().ebpf as { attached: boolean; problem: string };
  assert.equal(s.attached, false);
  assert.match(s.problem, /the cgroup .*missing does not exist/);
  const on = new EbpfMarking({ mode: 'on', cgroup: join(cg, 'missing'), log: pino({ level: 'silent' }), clock: new ManualClock(), native: fakeNative() });
  await assert.rejects(on.start(policy(1)), (e: Error & { code?: string }) => e.code === 'QOS_ERR_ENVIRONMENT');
});

/** A ring-buffer read of open (or close) records, as qosbpf.node's events() gives them. */
function records(evs: { kind: number; cookie: number; uid: number; pid?: number }[]): Buffer {
  const b = Buffer.alloc(evs.length * (4 + EVENT_SIZE));
  evs.forEach((e, i) => {
    const o = i * (4 + EVENT_SIZE);
    b.writeUInt32LE(EVENT_SIZE, o);
    b.writeBigUInt64LE(BigInt(e.cookie), o + 4);
    b.writeUInt32LE(e.kind, o + 4 + 16);
    b.writeUInt32LE(e.pid ?? process.pid, o + 4 + 20);
    b.writeUInt32LE(e.uid, o + 4 + 24);
    b[o + 4 + 38] = 2; b[o + 4 + 39] = 1; b[o + 4 + 40] = 6; b[o + 4 + 41] = 1; b[o + 4 + 42] = 46 << 2;
    b.writeUInt16LE(1, o + 4 + 46);
  });
  return b;
}

test('the sockets the programs report: open and close, one user\'s flood evicts only that user\'s oldest, a process gone is swept', async () => {
  const n = fakeNative();
  let pending: Buffer[] = [];
  n.events = () => Buffer.concat(pending.splice(0));
  const clock = new ManualClock();
  const m = new EbpfMarking({ mode: 'on', cgroup: cg, log: pino({ level: 'silent' }), clock, native: n, resolve: files, rescanMs: 1000 });
  await m.start(policy(1));
  pending.push(records([{ kind: 1, cookie: 1, uid: 1001 }, { kind: 1, cookie: 2, uid: 1001 }, { kind: 2, cookie: 1, uid: 0 }]));
  assert.deepEqual(m.flows().map((f) => [f.cookie, f.uid, f.class, f.rule, f.path]), [['2', 1001, 'EF', 'r0', 'ebpf']]);
  const flood = Array.from({ length: MAX_EBPF_FLOWS_PER_USER + 10 }, (_, i) => ({ kind: 1, cookie: 1000 + i, uid: 666 }));
  pending.push(records(flood));
  const all = m.flows();
  assert.equal(all.filter((f) => f.uid === 666).length, MAX_EBPF_FLOWS_PER_USER);
  assert.deepEqual(all.filter((f) => f.uid === 1001).map((f) => f.cookie), ['2'], 'the other user\'s socket stays');
  assert.equal(all.find((f) => f.uid === 666)!.cookie, String(1000 + 10), 'the flooder\'s oldest went');
  // a process that is gone (its releases lost): swept at the next rescan
  pending.push(records([{ kind: 1, cookie: 5, uid: 1001, pid: 2 ** 22 + 7 }]));
  assert.equal(m.flows().filter((f) => f.uid === 1001).length, 2);
  clock.advance(1000);
  assert.deepEqual(m.flows().filter((f) => f.uid === 1001).map((f) => f.cookie), ['2']);
  await m.stop();
});
