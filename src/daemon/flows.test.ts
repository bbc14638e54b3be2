import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowTable, type FlowInit } from './flows.js';

const init = (pid: number, fd: number, uid: number, start?: number): FlowInit => ({ pid, fd, uid, start, family: 'inet', type: 'stream', proto: 'tcp', protocol: 6, exe: '/x', user: `u${uid}` });

test('one user past their bound loses their own oldest flows, never another user\'s', () => {
  const t = new FlowTable(Date.now, 1000, 10);
  for (let fd = 0; fd < 5; fd++) t.open(init(1, fd, 1000));
  for (let fd = 0; fd < 500; fd++) t.open(init(2, fd, 666));
  assert.equal(t.userCounts(666).flows, 10);
  assert.deepEqual(t.ofUser(666).map((f) => f.fd), [490, 491, 492, 493, 494, 495, 496, 497, 498, 499], 'the newest ten are kept');
  assert.equal(t.userCounts(1000).flows, 5, 'the other user keeps every flow');
  assert.equal(t.evicted, 490);
  assert.equal(t.size, 15);
});

test('a process is its pid and start time: a later process with the same pid is not closed by the first one\'s Cleanup', () => {
  const t = new FlowTable();
  t.open(init(42, 3, 1000, 100));
  t.open(init(42, 4, 1000, 100));
  // pid 42 is reused by another process (start 200): the old entries go, the new one stays
  t.open(init(42, 5, 2000, 200));
  assert.equal(t.get(42, 3), undefined);
  assert.equal(t.get(42, 5)?.uid, 2000);
  assert.equal(t.userCounts(1000).flows, 0);
  assert.equal(t.closePid(42, 100), 0, 'the dead process (start 100) closes nothing of the living one');
  assert.equal(t.get(42, 5)?.uid, 2000);
  assert.equal(t.closePid(42, 200), 1);
  assert.equal(t.size, 0);
});

test('the sweep removes a pid whose process is gone or was replaced', () => {
  const t = new FlowTable();
  t.open(init(1, 3, 0, 10));
  t.open(init(2, 3, 0, 20));
  t.open(init(3, 3, 0, 30));
  const running = new Map([[1, 10], [2, 21]]); // 2 was reused, 3 is gone
  assert.equal(t.sweep((pid, start) => running.get(pid) === start), 2);
  assert.deepEqual(t.pids(), [1]);
});

test('per-user class counts follow every open, verdict, replace, close and eviction (random steps against a model)', () => {
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const t = new FlowTable(Date.now, 60, 8);
  const classes = [null, { dscp: 46 }, { dscp: 34 }, { deny: 'EACCES' }, { tos: 184 }] as const;
  for (let step = 0; step < 20_000; step++) {
    const pid = 1 + rnd(6), fd = rnd(5), uid = pid % 3;
    const op = rnd(10);
    if (op < 4) t.open(init(pid, fd, uid, rnd(20) === 0 ? step : undefined));
    else if (op < 8) { const f = t.get(pid, fd); if (f) t.setVerdict(f, classes[rnd(classes.length)] ?? null, 'r'); }
    else if (op < 9) t.close(pid, fd);
    else t.closePid(pid);
    for (let u = 0; u < 3; u++) {
      const model = new Map<string, number>();
      for (const f of t.ofUser(u)) model.set(f.class, (model.get(f.class) ?? 0) + 1);
      const c = t.userCounts(u);
      assert.equal(c.flows, t.ofUser(u).length);
      assert.deepEqual(new Map([...c.classes].sort()), new Map([...model].sort()), `step ${step} user ${u}`);
      assert.ok(c.flows <= 8);
    }
    assert.equal(t.size, t.list().length);
  }
});

test('a full table decides without remembering, and such a flow counts nowhere', () => {
  const t = new FlowTable(Date.now, 2, 10);
  t.open(init(1, 1, 0));
  t.open(init(1, 2, 0));
  const f = t.open(init(1, 3, 0));
  t.setVerdict(f, { dscp: 46 }, 'r');
  assert.equal(t.get(1, 3), undefined);
  assert.equal(t.userCounts(0).classes.get('EF'), undefined);
  assert.equal(t.size, 2);
});

test('a process whose descriptors come and go, the same one or ever new ones: the table holds exactly its open flows', () => {
  const t = new FlowTable();
  for (let i = 0; i < 1000; i++) {
    const f = t.open(init(7, 3, 1000));
    assert.equal(t.get(7, 3), f);
    t.close(7, 3);
  }
  assert.equal(t.size, 0);
  assert.equal(t.get(7, 3), undefined);
  // ever new descriptors, a few kept open: the removed ones leave nothing behind
  for (let fd = 10; fd < 10_010; fd++) {
    t.open(init(7, fd, 1000));
    if (fd % 1000 !== 0) t.close(7, fd);
  }
  assert.deepEqual(t.list().map((f) => f.fd).sort((a, b) => a - b), [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000]);
  assert.deepEqual(t.ofUser(1000).map((f) => f.fd), [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000]);
  assert.equal(t.userCounts(1000).flows, 10);
  assert.equal(t.get(7, 11), undefined);
  const again = t.open(init(7, 11, 1000));
  assert.equal(t.get(7, 11), again);
  assert.equal(t.closePid(7), 11, 'closePid counts the open flows, not the descriptors once used');
  assert.equal(t.size, 0);
  assert.deepEqual(t.pids(), []);
});
