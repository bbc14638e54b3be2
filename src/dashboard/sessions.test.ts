/* Dashboard sessions: bounded in number (the least recently used goes) and in idle time. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../clock.js';
import { Sessions } from './sessions.js';

test('a session is found by its id, has a CSRF token of its own, and is gone once dropped', () => {
  const s = new Sessions(new ManualClock());
  const a = s.create();
  const b = s.create();
  assert.notEqual(a.id, b.id);
  assert.notEqual(a.csrf, b.csrf);
  assert.match(a.id, /^[\w-]{43}$/);
  assert.equal(s.use(a.id), a);
  assert.equal(s.use('nope'), undefined);
  assert.equal(s.use(undefined), undefined);
  s.drop(a.id);
  assert.equal(s.use(a.id), undefined);
  assert.equal(s.size, 1);
});

test('past the bound a new login drops the least recently used session, not the one in use', () => {
  const s = new Sessions(new ManualClock(), 3);
  const [a, b, c] = [s.create(), s.create(), s.create()];
  s.use(a.id); // b is now the least recently used
  const d = s.create();
  assert.equal(s.size, 3);
  assert.equal(s.use(b.id), undefined);
  for (const x of [a, c, d]) assert.equal(s.use(x.id), x);
});

test('a session unused for the idle time expires; one used keeps living', () => {
  const clock = new ManualClock();
  const s = new Sessions(clock, 64, 1000);
  const idle = s.create();
  const busy = s.create();
  for (let i = 0; i < 5; i++) { clock.advance(600); assert.ok(s.use(busy.id)); }
  assert.equal(s.use(idle.id), undefined);
  clock.advance(1001);
  assert.equal(s.use(busy.id), undefined);
  assert.equal(s.size, 0);
});
