import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InFlight, MAX_QUEUE } from './inflight.js';

interface P { sent: number; n: number }

test('InFlight: calls leave in order, around the ring many times, as a Map would give them', () => {
  const q = new InFlight<P>();
  const model = new Map<number, P>();
  let id = 1, seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  for (let step = 0; step < 20_000; step++) {
    if (!q.full && (model.size === 0 || rnd(3) > 0)) {
      const p = { sent: step, n: id };
      q.add(id, p);
      model.set(id, p);
      id++;
    } else {
      // mostly the head (hosts answer in order), sometimes another call
      const ids = [...model.keys()];
      const pick = rnd(10) === 0 ? ids[rnd(ids.length)]! : ids[0]!;
      const t = q.take(pick, step + 5);
      assert.equal(t?.p, model.get(pick));
      assert.equal(t?.ms, step + 5 - model.get(pick)!.sent);
      model.delete(pick);
    }
    assert.equal(q.size, model.size);
    if (step % 997 === 0) for (const [k, v] of model) assert.equal(q.get(k), v);
  }
  assert.equal(q.take(id + 1), undefined);
  assert.deepEqual(q.drain(), [...model.values()]);
  assert.equal(q.size, 0);
});

test('InFlight: full at MAX_QUEUE; the watchdog clock follows the head call', () => {
  const q = new InFlight<P>();
  for (let i = 1; i <= MAX_QUEUE; i++) q.add(i, { sent: 100, n: i });
  assert.equal(q.full, true);
  assert.throws(() => q.add(MAX_QUEUE + 1, { sent: 100, n: 0 }), /in-flight queue full/);
  assert.equal(q.overdue(50, 149), false);
  assert.equal(q.overdue(50, 151), true);
  q.take(1, 200);
  assert.equal(q.full, false);
  assert.equal(q.overdue(50, 249), false, 'the next call started when the last answer came');
  q.restarted(300);
  assert.equal(q.overdue(50, 349), false);
  assert.equal(q.drain().length, MAX_QUEUE - 1);
  assert.equal(q.overdue(0, 10_000), false, 'nothing in flight is never overdue');
});
