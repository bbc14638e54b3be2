/* The deadline heap: runs deadlines at their times in order, moves and cancels them, and
 * holds one clock timer however many deadlines are set. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../clock.js';
import { Deadline, Deadlines } from './timers.js';

test('deadlines run at their times, in order of time then of setting; moved and cancelled ones too', () => {
  const c = new ManualClock(0);
  const h = new Deadlines(c);
  const log: string[] = [];
  const d = (name: string) => new Deadline(() => log.push(`${name}@${c.now()}`));
  const a = d('a'), b = d('b'), x = d('x'), y = d('y');
  h.after(a, 30); h.after(b, 10); h.after(x, 10); h.after(y, 5);
  h.cancel(y); h.after(a, 20); // moved earlier
  c.advance(100);
  assert.deepEqual(log, ['b@10', 'x@10', 'a@20']);
  assert.equal(h.size, 0);
  const again = new Deadline(() => { log.push(`again@${c.now()}`); if (c.now() < 400) h.after(again, 100); });
  h.after(again, 100);
  c.advance(1000);
  assert.deepEqual(log.slice(3), ['again@200', 'again@300', 'again@400']);
});

test('10,000 deadlines hold one clock timer; stop cancels it', () => {
  const c = new ManualClock(0);
  const h = new Deadlines(c);
  let ran = 0;
  const ds = Array.from({ length: 10_000 }, () => new Deadline(() => { ran++; }));
  ds.forEach((d, i) => h.after(d, 1000 + ((i * 7919) % 10_000)));
  assert.equal(c.waiting, 1);
  for (const d of ds.slice(0, 5000)) h.cancel(d);
  c.advance(20_000);
  assert.equal(ran, 5000);
  h.after(ds[0]!, 10);
  h.stop();
  assert.equal(c.waiting, 0);
  c.advance(100);
  assert.equal(ran, 5000);
});

test('with a slack, deadlines due within it of the one that fires run with it, never more than the slack early', () => {
  const c = new ManualClock(0);
  const h = new Deadlines(c, 20);
  const log: string[] = [];
  for (const at of [100, 110, 120, 121, 200]) h.set(new Deadline(() => log.push(`${at}@${c.now()}`)), at);
  c.advance(1000);
  assert.deepEqual(log, ['100@100', '110@100', '120@100', '121@121', '200@200']);
});
