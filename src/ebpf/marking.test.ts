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
import { KEY_SIZE, SOCKREC_SIZE } from './encode.js';
import { COUNTING_PROGRAMS, EbpfMarking, type Native } from './marking.js';
import type { LimitHost } from './limits.js';

const cg = mkdtempSync(join(tmpdir(), 'qosd-cg-'));
after(() => rmSync(cg, { recursive: true, force: true }));

type Op = [string, ...unknown[]];
function fakeNative(fail?: (op: string, fd: number) => boolean): Native & { ops: Op[]; map: Map<string, Buffer>; gen: number } {
  const map = new Map<string, Buffer>();
  const n = {
    ops: [] as Op[], map, gen: 0,
    open: () => 0,
    describe: () => ({ programs: [{ name: 'p', section: 'cgroup/connect4', id: 1 }], maps: ['qosd_exe', 'qosd_gen', 'qosd_agent', 'qosd_sockets', 'qosd_counts'].map((name, i) => ({ name, fd: 10 + i, key_size: 0, value_size: 0, max_entries: 0 })), links: [1] }),
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
    keys: () => Buffer.alloc(0), lookup: (): Buffer | null => null, dump: () => Buffer.alloc(0), close: () => { n.ops.push(['close']); },
    tcAttach: () => undefined, tcDetach: () => undefined, tagSocket: () => false, socketStorage: () => null,
  };
  return n;
}

/** limits.ts's host with no interfaces and nothing to run (a policy without limits asks nothing of it) */
const limitHost: LimitHost = { links: async () => [], tc: async () => undefined, ip: async () => undefined, attach: () => undefined, detach: () => undefined, tag: () => false };

const files = (patterns: readonly string[]) => new Map(patterns.map((p, i) => [p, { files: [{ path: p, dev: 1, ino: BigInt(100 + i) }], notes: [] }]));
const policy = (n: number, dscp = 'EF') => PolicySchema.parse({ rules: Array.from({ length: n }, (_, i) => ({ name: `r${i}`, match: { exe: `/bin/p${i}` }, action: { dscp } })) });

test('each policy is a new generation: its entries, then the generation, then the entries of the generation before the last deleted', async () => {
  const n = fakeNative();
  const m = new EbpfMarking({ mode: 'on', limitHost, cgroup: cg, log: pino({ level: 'silent' }), clock: new ManualClock(), native: n, resolve: files });
  await m.start(policy(3));
  m.setPolicy(policy(2, 'CS5'));
  m.setPolicy(policy(1, 'CS1'));
  assert.deepEqual(n.ops, [
    ['put', 10, [1], 3], ['gen', 1], ['del', 10, [], 0],
    ['put', 10, [2], 2], ['gen', 2], ['del', 10, [], 0],
    // a call that read generation 2 just before the switch to 3 still finds its entries
    ['put', 10, [3], 1], ['gen', 3], ['del', 10, [1], 3],
  ]);
  assert.equal(n.map.size, 3, 'the live generation\'s entries and the last one\'s remain');
  await m.stop();
  assert.deepEqual(n.ops.at(-1), ['close']);
});

test('a rescan writes a generation only when the files changed; a refused write keeps the live one and says so', async () => {
  let version = 0;
  const n = fakeNative((op, fd) => op === 'update' && fd === 10 && version === 2);
  const clock = new ManualClock();
  const m = new EbpfMarking({ mode: 'on', limitHost, cgroup: cg, log: pino({ level: 'silent' }), clock, native: n, rescanMs: 1000, resolve: (p) => new Map(p.map((x) => [x, { files: [{ path: x, dev: 1, ino: BigInt(100 + version) }], notes: [] }])) });
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
  const auto = new EbpfMarking({ mode: 'auto', limitHost, cgroup: join(cg, 'missing'), log: pino({ level: 'silent' }), clock: new ManualClock(), native: fakeNative() });
  await auto.start(policy(1));
  const s = auto.status().ebpf as { attached: boolean; problem: string };
  assert.equal(s.attached, false);
  assert.match(s.problem, /the cgroup .*missing does not exist/);
  const on = new EbpfMarking({ mode: 'on', limitHost, cgroup: join(cg, 'missing'), log: pino({ level: 'silent' }), clock: new ManualClock(), native: fakeNative() });
  await assert.rejects(on.start(policy(1)), (e: Error & { code?: string }) => e.code === 'QOS_ERR_ENVIRONMENT');
});

/** A dump() of the decided sockets: each a cookie, then its record (struct sockrec). */
function sockets(recs: { cookie: number; uid: number; pid?: number; rule?: number }[]): Buffer {
  const b = Buffer.alloc(recs.length * (8 + SOCKREC_SIZE));
  recs.forEach((r, i) => {
    const at = i * (8 + SOCKREC_SIZE), o = at + 8;
    b.writeBigUInt64LE(BigInt(r.cookie), at);
    b.writeBigUInt64LE(100n, o);            // ino: /bin/p0 in files()
    b.writeUInt32LE(r.pid ?? 4242, o + 8);
    b.writeUInt32LE(r.uid, o + 12);
    b.writeUInt32LE(1, o + 20);             // dev
    b.writeUInt16LE(r.rule ?? 0, o + 24);
    b[o + 26] = 2; b[o + 27] = 1; b[o + 28] = 6; b[o + 29] = 1; b[o + 30] = 46 << 2;
    b.writeUInt16LE(443, o + 32);
    b.writeUInt16LE(1, o + 34);             // R_TOS
    Buffer.from([192, 0, 2, 7]).copy(b, o + 36);
  });
  return b;
}

test('qos flows: the decided sockets read from the kernel map when asked, with the program, the rule and the mark; the counters summed over CPUs', async () => {
  const n = fakeNative();
  n.dump = () => sockets([{ cookie: 7, uid: 0 }, { cookie: 9, uid: 65534, rule: 1 }]);
  n.lookup = (fd: number, key: Buffer) => {
    if (fd !== 14) return null;
    const v = Buffer.alloc(16); // two CPUs
    v.writeBigUInt64LE(BigInt(3 + key.readUInt32LE()), 0);
    v.writeBigUInt64LE(2n, 8);
    return v;
  };
  const m = new EbpfMarking({ mode: 'on', limitHost, cgroup: cg, log: pino({ level: 'silent' }), clock: new ManualClock(), native: n, resolve: files });
  await m.start(policy(2));
  assert.deepEqual(m.flows().map((f) => [f.path, f.cookie, f.pid, f.exe, f.rule, f.class, f.proto, f.event, `${f.remote.address}:${f.remote.port}`]), [
    ['ebpf', '7', 4242, '/bin/p0', 'r0', 'EF', 'tcp', 'connect', '192.0.2.7:443'],
    ['ebpf', '9', 4242, '/bin/p0', 'r1', 'EF', 'tcp', 'connect', '192.0.2.7:443'],
  ]);
  const s = m.status().ebpf as { sockets_decided: number; calls_refused: number };
  assert.deepEqual([s.sockets_decided, s.calls_refused], [5, 6]);
  await m.stop();
});

test('--stats off: the counting programs are loaded but not attached, and GET /v1/apps says statistics are off', async () => {
  const n = fakeNative();
  let skip: string | undefined;
  n.open = (_o: string, _c: string, s?: string) => { skip = s; return 0; };
  const m = new EbpfMarking({ mode: 'on', limitHost, cgroup: cg, log: pino({ level: 'silent' }), clock: new ManualClock(), native: n, resolve: files, stats: false });
  await m.start(policy(1));
  assert.deepEqual(skip?.split(','), COUNTING_PROGRAMS);
  assert.throws(() => m.apps('program'), /per-application statistics are off \(qos daemon --stats off\)/);
  assert.equal((m.status().ebpf as { stats: unknown }).stats, null);
  await m.stop();
  const on = fakeNative();
  on.open = (_o: string, _c: string, s?: string) => { skip = s; return 0; };
  const m2 = new EbpfMarking({ mode: 'on', limitHost, cgroup: cg, log: pino({ level: 'silent' }), clock: new ManualClock(), native: on, resolve: files });
  await m2.start(policy(1));
  assert.equal(skip, '', 'by default every cgroup program is attached');
  await m2.stop();
});
