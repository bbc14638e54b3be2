import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoundRobin } from './round-robin.js';

test('users take turns, one item each; a user who comes while another has a backlog is next', () => {
  const q = new RoundRobin<string>();
  for (let i = 1; i <= 4; i++) q.push(1, `a${i}`);
  assert.equal(q.shift(), 'a1');
  // b and c come while a1 runs: both go before a's backlog
  q.push(2, 'b1');
  q.push(2, 'b2');
  q.push(3, 'c1');
  const order = [];
  for (let x = q.shift(); x !== undefined; x = q.shift()) {
    order.push(x);
    if (x === 'b1') q.push(3, 'c2'); // c again, while b1 runs: c is already waiting its turn
  }
  assert.deepEqual(order, ['b1', 'c1', 'a2', 'b2', 'c2', 'a3', 'a4']);
  assert.equal(q.size, 0);
});

test('one user alone keeps first-in first-out order, across emptying and refilling', () => {
  const q = new RoundRobin<number>();
  const out: number[] = [];
  for (let i = 0; i < 100; i++) {
    q.push(7, i);
    if (i % 3 === 0) for (let x = q.shift(); x !== undefined; x = q.shift()) out.push(x);
  }
  for (let x = q.shift(); x !== undefined; x = q.shift()) out.push(x);
  assert.deepEqual(out, Array.from({ length: 100 }, (_, i) => i));
});
