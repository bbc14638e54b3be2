/* The breaker alone, on a clock of its own: when a handler is suspended, for how long, and
 * what brings it back. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Breaker, FIRST_PAUSE_MS, MAX_PAUSE_MS, TRIP_AFTER } from './breaker.js';

test('a handler that overruns TRIP_AFTER times in a row is suspended, with a pause that doubles', () => {
  let now = 0;
  const b = new Breaker('t.js', undefined, () => now);
  for (let i = 0; i < TRIP_AFTER - 1; i++) b.record('Connect', 'timeout');
  assert.equal(b.refuse('Connect', false), null, 'not yet');
  b.record('Connect', 'killed');
  assert.equal(b.refuse('Connect', false), 'suspended');
  assert.equal(b.refuse('Socket', false), null, 'other handlers are not affected');
  assert.equal(b.refuse('Connect', true), 'overloaded', 'a full host says so first');
  now += FIRST_PAUSE_MS - 1;
  assert.ok(b.suspended('Connect'));
  now += 1;
  assert.ok(!b.suspended('Connect'), 'the pause is over: the next call decides');
  b.record('Connect', 'timeout'); // that call overran too: suspended again, twice as long
  assert.ok(b.suspended('Connect'));
  now += 2 * FIRST_PAUSE_MS - 1;
  assert.ok(b.suspended('Connect'));
  now += 1;
  for (let i = 0; i < 10; i++) { b.record('Connect', 'timeout'); now += MAX_PAUSE_MS; }
  b.record('Connect', 'timeout');
  now += MAX_PAUSE_MS - 1;
  assert.ok(b.suspended('Connect'), 'the pause grows to MAX_PAUSE_MS');
  now += 1;
  assert.ok(!b.suspended('Connect'), 'and no further');
});

test('a call that ends in time (even with an exception) closes it; overloaded and suspended calls do not count', () => {
  let now = 0;
  const b = new Breaker('t.js', undefined, () => now);
  for (const end of ['timeout', 'timeout', 'error', 'timeout', 'timeout', 'overloaded', 'suspended', 'fallthrough', 'timeout', 'timeout', 'decided'] as const) b.record('SendTo', end);
  assert.ok(!b.suspended('SendTo'), 'never TRIP_AFTER overruns in a row');
  for (let i = 0; i < TRIP_AFTER; i++) b.record('SendTo', 'timeout');
  assert.ok(b.suspended('SendTo'));
  now += FIRST_PAUSE_MS;
  b.record('SendTo', 'decided');
  for (let i = 0; i < TRIP_AFTER - 1; i++) b.record('SendTo', 'timeout');
  assert.ok(!b.suspended('SendTo'), 'after an answer in time it takes TRIP_AFTER overruns again');
  b.record('SendTo', 'timeout');
  now += FIRST_PAUSE_MS - 1;
  assert.ok(b.suspended('SendTo'), 'and the pause starts again from the first');
  now += 1;
  assert.ok(!b.suspended('SendTo'));
});
