/* Users' budgets alone, on a clock of their own: when a user's handler is suspended, for how
 * long, what brings it back, when a user is moved out, and how many calls a user may have in
 * flight. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIRST_PAUSE_MS, MAX_PAUSE_MS, MAX_USER_CALLS, TRIP_AFTER, UserBudget } from './budget.js';

const ALICE = 1000, BOB = 1001;

test('a handler that overruns TRIP_AFTER times in a row for one user is suspended for that user, with a pause that doubles', () => {
  let now = 0;
  const b = new UserBudget('t.js', undefined, () => now);
  b.admit(ALICE, 'Connect');
  for (let i = 0; i < TRIP_AFTER - 1; i++) b.record(ALICE, 'Connect', 'timeout');
  assert.equal(b.admit(ALICE, 'Connect'), null, 'not yet');
  b.record(ALICE, 'Connect', 'timeout');
  assert.equal(b.admit(ALICE, 'Connect'), 'suspended');
  assert.equal(b.admit(ALICE, 'Socket'), null, 'her other handlers are not affected');
  assert.equal(b.admit(BOB, 'Connect'), null, 'nor are other users');
  now += FIRST_PAUSE_MS - 1;
  assert.ok(b.isSuspended(ALICE, 'Connect'));
  now += 1;
  assert.ok(!b.isSuspended(ALICE, 'Connect'), 'the pause is over: the next call decides');
  b.record(ALICE, 'Connect', 'timeout'); // that call overran too: suspended again, twice as long
  assert.ok(b.isSuspended(ALICE, 'Connect'));
  now += 2 * FIRST_PAUSE_MS - 1;
  assert.ok(b.isSuspended(ALICE, 'Connect'));
  now += 1;
  for (let i = 0; i < 10; i++) { b.record(ALICE, 'Connect', 'timeout'); now += MAX_PAUSE_MS; }
  b.record(ALICE, 'Connect', 'timeout');
  now += MAX_PAUSE_MS - 1;
  assert.ok(b.isSuspended(ALICE, 'Connect'), 'the pause grows to MAX_PAUSE_MS');
  now += 1;
  assert.ok(!b.isSuspended(ALICE, 'Connect'), 'and no further');
});

test('a call that ends in time (even with an exception) closes it; overloaded, suspended and late calls do not count', () => {
  let now = 0;
  const b = new UserBudget('t.js', undefined, () => now);
  b.admit(ALICE, 'SendTo');
  for (const end of ['timeout', 'timeout', 'error', 'timeout', 'timeout', 'overloaded', 'suspended', 'late', 'fallthrough', 'timeout', 'timeout', 'decided'] as const) b.record(ALICE, 'SendTo', end);
  assert.ok(!b.isSuspended(ALICE, 'SendTo'), 'never TRIP_AFTER overruns in a row');
  for (let i = 0; i < TRIP_AFTER; i++) b.record(ALICE, 'SendTo', 'timeout');
  assert.ok(b.isSuspended(ALICE, 'SendTo'));
  now += FIRST_PAUSE_MS;
  b.record(ALICE, 'SendTo', 'decided');
  for (let i = 0; i < TRIP_AFTER - 1; i++) b.record(ALICE, 'SendTo', 'timeout');
  assert.ok(!b.isSuspended(ALICE, 'SendTo'), 'after an answer in time it takes TRIP_AFTER overruns again');
  b.record(ALICE, 'SendTo', 'timeout');
  now += FIRST_PAUSE_MS - 1;
  assert.ok(b.isSuspended(ALICE, 'SendTo'), 'and the pause starts again from the first');
  now += 1;
  assert.ok(!b.isSuspended(ALICE, 'SendTo'));
});

test('a user whose call hung the host is suspended at once and moved out; one who trips twice is moved out too', () => {
  let now = 0;
  const b = new UserBudget('t.js', undefined, () => now);
  b.admit(ALICE, 'Connect');
  b.admit(BOB, 'Connect');
  b.record(ALICE, 'Connect', 'killed');
  assert.ok(b.isSuspended(ALICE, 'Connect'), 'one hang is enough');
  assert.ok(b.movedOut(ALICE));
  assert.ok(!b.movedOut(BOB));
  for (let i = 0; i < TRIP_AFTER; i++) b.record(BOB, 'Connect', 'timeout');
  assert.ok(b.isSuspended(BOB, 'Connect'));
  assert.ok(!b.movedOut(BOB), 'one trip: suspended, still in the shared path');
  now += FIRST_PAUSE_MS;
  b.record(BOB, 'Connect', 'timeout');
  assert.ok(b.movedOut(BOB), 'he kept hitting the deadline after his pause');
});

test('a user has at most MAX_USER_CALLS calls in flight; the next are overloaded, others are not', () => {
  const b = new UserBudget('t.js');
  for (let i = 0; i < MAX_USER_CALLS; i++) assert.equal(b.admit(ALICE, 'Close'), null);
  assert.equal(b.admit(ALICE, 'Close'), 'overloaded');
  assert.equal(b.admit(BOB, 'Close'), null);
  b.release(ALICE);
  assert.equal(b.admit(ALICE, 'Close'), null, 'one ended: room for one');
  assert.equal(b.admit(ALICE, 'Close'), 'overloaded');
});
