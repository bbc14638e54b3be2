/* The per-application statistics' folding (apps.ts), from kernel dumps built byte for byte:
 * deltas of the kernel's counters add to each dimension's rows once; a counter that starts
 * again (its entry evicted and made anew) adds what it counted since; rows and Prometheus
 * labels stay within their bounds, and the sum over the labelled series is the total. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appsCount, appsDimension, AppStats, decodeExeNames, decodeStats, EXE_NAME_SIZE, mountedPath, registerAppMetrics, STAT_KEY_SIZE, STAT_VAL_SIZE, unitName, type ExeSeen, type Naming } from './apps.js';

interface E { ino: number; dev?: number; uid?: number; cgid?: number; dir: 0 | 1; dscp?: number; packets: number; bytes: number }

/** A dump of qosd_stats as qosbpf.node gives it: each key, then per CPU a value; the counts are
 * split over the CPUs. */
function dump(entries: E[], cpus = 2): Buffer {
  const rec = STAT_KEY_SIZE + STAT_VAL_SIZE * cpus;
  const b = Buffer.alloc(entries.length * rec);
  entries.forEach((e, i) => {
    const at = i * rec;
    b.writeBigUInt64LE(BigInt(e.ino), at);
    b.writeBigUInt64LE(BigInt(e.cgid ?? 7), at + 8);
    b.writeUInt32LE(e.dev ?? 2049, at + 16);
    b.writeUInt32LE(e.uid ?? 1000, at + 20);
    b.writeUInt8(e.dir, at + 24);
    b.writeUInt8(e.dscp ?? 0, at + 25);
    for (let c = 0; c < cpus; c++) {
      const share = (n: number) => BigInt(c === 0 ? n - Math.floor(n / cpus) * (cpus - 1) : Math.floor(n / cpus));
      b.writeBigUInt64LE(share(e.packets), at + STAT_KEY_SIZE + c * STAT_VAL_SIZE);
      b.writeBigUInt64LE(share(e.bytes), at + STAT_KEY_SIZE + c * STAT_VAL_SIZE + 8);
    }
  });
  return b;
}

const naming: Naming = { program: (_d, ino, _p, seen) => seen?.path ?? `prog${ino}`, user: (uid) => `u${uid}`, unit: (cg) => `unit${cg}.service` };
const names = new Map<string, ExeSeen>();
const fold = (s: AppStats, entries: E[], now: number) => s.fold(decodeStats(dump(entries), 2), names, now);

test('a dump decodes to its entries, the counts summed over the CPUs; exe names decode to name and pid', () => {
  const [e] = decodeStats(dump([{ ino: 42, dev: 9, uid: 5, cgid: 77, dir: 1, dscp: 46, packets: 11, bytes: 12345 }], 4), 4);
  assert.deepEqual({ ...e, key: undefined }, { key: undefined, ino: 42n, dev: 9, uid: 5, cgid: 77n, dir: 1, dscp: 46, packets: 11n, bytes: 12345n });
  // the kernel's record of /usr/bin/curl: its components from the file up, the process, depth 3
  const nb = Buffer.alloc(16 + EXE_NAME_SIZE);
  nb.writeUInt32LE(9, 0); nb.writeBigUInt64LE(42n, 8);
  ['curl', 'bin', 'usr'].forEach((p, i) => nb.write(p, 16 + i * 40));
  nb.writeUInt32LE(4242, 16 + 320); nb.writeUInt32LE(3, 16 + 324);
  assert.deepEqual([...decodeExeNames(nb)], [['9:42', { path: '/usr/bin/curl', complete: true, pid: 4242 }]]);
  nb.writeUInt32LE(9, 16 + 324);
  assert.equal(decodeExeNames(nb).get('9:42')!.complete, false, 'deeper than the programs read');
});

test('deltas add once to every dimension; the rates are over the interval between reads', () => {
  const s = new AppStats(naming);
  fold(s, [{ ino: 1, dir: 0, packets: 10, bytes: 1000 }, { ino: 1, dir: 1, packets: 5, bytes: 500 }, { ino: 2, uid: 2000, dir: 0, dscp: 46, packets: 1, bytes: 100 }], 1000);
  fold(s, [{ ino: 1, dir: 0, packets: 30, bytes: 3000 }, { ino: 1, dir: 1, packets: 5, bytes: 500 }, { ino: 2, uid: 2000, dir: 0, dscp: 46, packets: 1, bytes: 100 }], 3000);
  const p = s.rows('program');
  assert.deepEqual(p.rows.map((r) => [r.name, r.tx_bytes, r.rx_bytes, r.tx_packets, r.tx_bps, r.users]), [['prog1', 3000, 500, 30, 1000, ['u1000']], ['prog2', 100, 0, 1, 0, ['u2000']]]);
  assert.deepEqual(s.rows('user').rows.map((r) => [r.name, r.tx_bytes + r.rx_bytes]), [['u1000', 3500], ['u2000', 100]]);
  assert.deepEqual(s.rows('class').rows.map((r) => [r.name, r.tx_bytes]), [['CS0', 3000], ['EF', 100]]);
  assert.deepEqual(s.rows('unit').rows.map((r) => [r.name, r.tx_bytes + r.rx_bytes]), [['unit7.service', 3600]]);
  assert.deepEqual(s.total, { tx_bytes: 3100, rx_bytes: 500, tx_packets: 31, rx_packets: 5 });
});

test('a counter that starts again (evicted, made anew) adds what it counted since; an evicted entry is forgotten', () => {
  const s = new AppStats(naming);
  fold(s, [{ ino: 1, dir: 0, packets: 10, bytes: 1000 }], 1000);
  fold(s, [{ ino: 1, dir: 0, packets: 2, bytes: 200 }], 2000);
  assert.equal(s.rows('program').rows[0]!.tx_bytes, 1200);
  assert.equal(s.restarts, 1);
  fold(s, [], 3000);
  fold(s, [{ ino: 1, dir: 0, packets: 1, bytes: 50 }], 4000);
  assert.equal(s.rows('program').rows[0]!.tx_bytes, 1250, 'gone, then back from zero');
});

test('rows past the bound fold into other, the least recently active first; totals stay whole', () => {
  const s = new AppStats(naming, 20, 3);
  for (let i = 1; i <= 5; i++) fold(s, [...Array(i).keys()].map((k) => ({ ino: k + 1, dir: 0 as const, packets: 1, bytes: 100 * (k + 1) })), i * 1000);
  const p = s.rows('program');
  assert.equal(p.tracked, 3);
  assert.equal(p.rows.length, 3);
  const sum = p.rows.reduce((a, r) => a + r.tx_bytes, 0) + (p.other?.tx_bytes ?? 0);
  assert.equal(sum, s.total.tx_bytes);
  assert.ok(p.other && p.other.tx_bytes > 0);
  assert.deepEqual(s.rows('program', 1).rows.length, 1);
});

test('Prometheus: at most `labels` programs have a series of their own, the rest are "other", and the series sum to the total; an idle label is given up', async () => {
  const s = new AppStats(naming, 3);
  const reg = new Registry();
  let reads = 0;
  registerAppMetrics(reg, () => s, () => { reads++; });
  const entries: E[] = [];
  for (let i = 1; i <= 1000; i++) { entries.push({ ino: i, dir: 0, packets: 1, bytes: 10 }); fold(s, entries, i); }
  const text = await reg.metrics();
  const series = text.split('\n').filter((l) => l.startsWith('qosd_app_bytes_total{') && l.includes('direction="tx"'));
  assert.equal(series.length, 4, series.join('\n'));
  assert.ok(series.some((l) => l.includes('program="other"')));
  assert.equal(series.reduce((a, l) => a + Number(l.split(' ').pop()), 0), s.total.tx_bytes);
  assert.equal(reads, 1, 'one read per scrape');
  await reg.metrics();
  assert.equal(reads, 2, 'the next scrape reads again, with no other read in between');
  // the labelled programs go idle: after IDLE_MS others take their labels
  fold(s, [{ ino: 999, dir: 0, packets: 5, bytes: 5000 }], 1000 + 6 * 60_000);
  const after = (await reg.metrics()).split('\n').filter((l) => l.startsWith('qosd_app_bytes_total{') && l.includes('direction="tx"'));
  assert.ok(after.some((l) => l.includes('program="prog999"')), after.join('\n'));
  assert.ok(after.length <= 4);
});

test('by and n of GET /v1/apps are checked; a unit is the cgroup path\'s last systemd unit', () => {
  assert.equal(appsDimension(null), 'program');
  assert.equal(appsDimension('unit'), 'unit');
  assert.throws(() => appsDimension('pid'), /by "pid": one of program, user, unit, class/);
  assert.throws(() => appsCount('-1'), /n "-1"/);
  assert.equal(appsCount('5'), 5);
  assert.equal(unitName('system.slice/ssh.service'), 'ssh.service');
  assert.equal(unitName('user.slice/user-1000.slice/session-3.scope'), 'session-3.scope');
  assert.equal(unitName('qosd-test-1'), '/qosd-test-1');
  assert.equal(unitName(''), '/');
});

test('a path within its filesystem is named under the mount of that filesystem that holds it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-mi-'));
  const mi = join(dir, 'mountinfo');
  writeFileSync(mi, [
    '22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw',
    '40 22 0:45 / /tmp rw shared:2 - tmpfs tmpfs rw',
    '41 22 254:1 /srv/data /mnt/my\\040data rw shared:1 - ext4 /dev/vda1 rw',
  ].join('\n'));
  try {
    const dev = (maj: number, min: number) => ((maj << 20) | min) >>> 0;
    assert.equal(mountedPath(dev(0, 45), '/qosd-x/sender', mi), '/tmp/qosd-x/sender');
    assert.equal(mountedPath(dev(254, 1), '/usr/bin/curl', mi), '/usr/bin/curl');
    assert.equal(mountedPath(dev(9, 9), '/x', mi), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
