import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DECISION_LOG, DecisionLog } from './decision-log.js';
import type { DecisionRecord } from './decide.js';

const record = (fd: number): DecisionRecord => ({
  at: 0, pid: 1, user: 'u', exe: '/x', event: 'connect', fd, family: 'inet', type: 'stream', local: null, remote: null,
  rule: null, decision: null, class: 'none', reply: '', cached: false,
});

test('the log keeps the last DECISION_LOG decisions, oldest first, across its wrap', () => {
  const log = new DecisionLog({ onDropped: () => undefined });
  assert.deepEqual(log.last(5), []);
  for (let i = 0; i < 3; i++) log.record(record(i));
  assert.deepEqual(log.last(100).map((r) => r.fd), [0, 1, 2]);
  for (let i = 3; i < DECISION_LOG * 2 + 7; i++) log.record(record(i));
  const all = log.last(10_000).map((r) => r.fd);
  assert.equal(all.length, DECISION_LOG);
  assert.equal(all[0], DECISION_LOG + 7);
  assert.equal(all.at(-1), DECISION_LOG * 2 + 6);
  assert.ok(all.every((fd, i) => i === 0 || fd === all[i - 1]! + 1), 'in the order they were made');
  assert.deepEqual(log.last(2).map((r) => r.fd), [DECISION_LOG * 2 + 5, DECISION_LOG * 2 + 6]);
  assert.deepEqual(log.last(0), []);
  assert.equal(log.status().decisions_total, DECISION_LOG * 2 + 7);
});
