/* The manual clock runs timers at their times, in order, as time is moved; the system clock's
 * timers fire and can be cancelled. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, systemClock } from './clock.js';

test('timers run at their own times, in order of time then of setting; repeating ones keep their period; cancelled ones never run', () => {
  const c = new ManualClock(1000);
  const log: string[] = [];
  c.after(30, () => log.push(`a@${c.now()}`));
  c.after(10, () => log.push(`b@${c.now()}`));
  c.after(10, () => log.push(`c@${c.now()}`));
  const tick = c.every(25, () => log.push(`tick@${c.now()}`));
  const never = c.after(5, () => log.push('never'));
  never.cancel();
  c.advance(60);
  assert.deepEqual(log, ['b@1010', 'c@1010', 'tick@1025', 'a@1030', 'tick@1050']);
  assert.equal(c.now(), 1060);
  tick.cancel();
  c.advance(100);
  assert.equal(log.length, 5);
  assert.equal(c.waiting, 0);
});

test('a timer set by a timer runs in the same advance when it falls due; hours pass in no time', () => {
  const c = new ManualClock();
  let refreshes = 0;
  const refresh = () => { refreshes++; c.after(30_000, refresh); };
  c.after(30_000, refresh);
  c.advance(3 * 3600_000);
  assert.equal(refreshes, 360);
  assert.throws(() => c.to(0), /time does not go back/);
  assert.throws(() => c.every(0, () => undefined), /period over 0/);
});

test('a stall: time moves and nothing runs; what fell due then runs late, once, and a repeating timer keeps its period from then', () => {
  const c = new ManualClock();
  const log: number[] = [];
  c.every(250, () => log.push(c.now()));
  c.advance(500);
  c.stall(2000);
  assert.deepEqual(log, [250, 500]);
  c.advance(0);
  assert.deepEqual(log, [250, 500, 2500]);
  c.advance(250);
  assert.deepEqual(log, [250, 500, 2500, 2750]);
});

test('the system clock: a timer fires, a cancelled one does not', async () => {
  let fired = 0, cancelled = 0;
  systemClock.after(1, () => fired++);
  systemClock.after(1, () => cancelled++).cancel();
  const t0 = systemClock.now();
  const alive = setTimeout(() => undefined, 60_000); // its timers do not keep the process up
  await new Promise<void>((r) => systemClock.after(20, r));
  clearTimeout(alive);
  assert.equal(fired, 1);
  assert.equal(cancelled, 0);
  assert.ok(systemClock.now() >= t0);
});
