/* The part both script hosts share, with fake lanes on a clock of the test's own: which lane
 * a user's calls go to, and when the watchdog replaces a lane and whom it blames. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, NO_STATE } from './js-sandbox.js';
import { HANG_GRACE_MS, Lane, ScriptHostBase, STARVED_MS, type ScriptOutcome } from './host.js';

class FakeLane extends Lane {
  cpu = 0;
  replaced = 0;
  running(): number {
    return 0;
  }
  cpuMs(): number {
    return this.cpu;
  }
}

class FakeHost extends ScriptHostBase<FakeLane> {
  opened = 0;
  constructor(lanes: number) {
    super('fake.js', { limits: { ...DEFAULT_LIMITS, deadlineMs: 10, answerMs: 60_000 } }, 'replaced');
    for (let i = 0; i < lanes; i++) this.lanes.push(new FakeLane(i, false));
  }
  lane(i: number): FakeLane {
    return this.lanes[i]!;
  }
  /** A call of uid's that its lane never answers; resolves with its outcome. */
  call(uid: number, seen: FakeLane[] = []): Promise<ScriptOutcome> {
    return this.submit('Connect', uid, NO_STATE, (lane) => { seen.push(lane); return true; });
  }
  tick(now: number): void {
    this.watch(now);
  }
  /** Lane i's host runs its call on the CPU far past the deadline, the watchdog looking
   * before and after. */
  hang(i: number): void {
    const t0 = Date.now();
    this.tick(t0);
    this.lane(i).cpu += 10 + HANG_GRACE_MS;
    this.tick(t0 + 10 + HANG_GRACE_MS + 1);
  }
  protected openLane(index: number): FakeLane {
    this.opened++;
    return new FakeLane(index, true);
  }
  protected replaceLane(l: FakeLane): Promise<void> {
    l.replaced++;
    return Promise.resolve();
  }
  protected stopLane(): Promise<void> {
    return Promise.resolve();
  }
}

test('a lane that has not answered but has not run either is waiting for a CPU: left alone, and after STARVED_MS replaced blaming no one', async () => {
  const h = new FakeHost(1);
  try {
    const pending = h.call(7);
    const t0 = Date.now();
    h.tick(t0); // notes the lane's CPU time
    h.tick(t0 + 10 * (10 + HANG_GRACE_MS));
    assert.equal(h.lane(0).replaced, 0, 'no CPU used: not hung');
    h.tick(t0 + STARVED_MS + 1);
    assert.equal(h.lane(0).replaced, 1);
    assert.equal((await pending).status, 'killed');
    assert.ok(!h.suspended(7, 'Connect'), 'not the user\'s fault');
  } finally {
    await h.close();
  }
});

test('a lane that keeps the CPU past deadline and grace without answering is replaced, the call it ran blamed: that user alone is suspended', async () => {
  const h = new FakeHost(2);
  try {
    const hung = h.call(8); // uid 8: lane 0
    const others = [h.call(9), h.call(1)]; // lane 1
    h.hang(0);
    assert.deepEqual([h.lane(0).replaced, h.lane(1).replaced], [1, 0], 'lane 1 went unanswered as long, without the CPU: left alone');
    assert.equal((await hung).status, 'killed');
    assert.ok(h.suspended(8, 'Connect'));
    assert.ok(!h.suspended(9, 'Connect') && !h.suspended(1, 'Connect'));
    await h.close();
    assert.deepEqual((await Promise.all(others)).map((o) => o.status), ['fallthrough', 'fallthrough'], 'closing ends the rest');
  } finally {
    await h.close();
  }
});

test('a user moved out goes to a lane of their own, made once; the others stay on theirs', async () => {
  const h = new FakeHost(2);
  try {
    const hung = h.call(8);
    h.hang(0);
    await hung;
    // uid 8 is paused for a second; then its calls go to the lane for users moved out
    while (h.suspended(8, 'Connect')) await new Promise((r) => setTimeout(r, 50));
    const seen: FakeLane[] = [];
    void h.call(8, seen);
    void h.call(8, seen);
    void h.call(10, seen);
    assert.deepEqual(seen.map((l) => [l.index, l.movedOut]), [[2, true], [2, true], [0, false]]);
    assert.equal(h.opened, 1);
  } finally {
    await h.close();
  }
});
