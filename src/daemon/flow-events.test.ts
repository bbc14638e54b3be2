/* The flow-event hub: every entry made, decided and removed is published once, in order, with
 * why it left; a subscriber that throws is reported and stops nothing. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowEvents, type FlowEvent } from './flow-events.js';
import { FlowTable, type FlowInit } from './flows.js';

const init = (pid: number, fd: number, uid = 1000, start = 7): FlowInit & { start: number } =>
  ({ pid, fd, uid, start, family: 'inet', type: 'stream', proto: 'tcp', protocol: 6, exe: '/x', user: 'u' });

function recorded(max = 1000, perUser = 1000): { table: FlowTable; seen: string[]; errors: unknown[]; events: FlowEvents } {
  const errors: unknown[] = [];
  const events = new FlowEvents((err) => errors.push(err));
  const table = new FlowTable(() => 0, max, perUser, events);
  const seen: string[] = [];
  events.subscribe((e: FlowEvent) => seen.push(`${e.kind} ${e.flow.pid}/${e.flow.fd}${e.kind === 'decided' ? ` ${e.rule}` : e.kind === 'closed' ? ` ${e.why}` : ''}`));
  return { table, seen, errors, events };
}

test('open, decided and closed, with why: close, exit, a new socket on the descriptor, the sweep, a later process with the pid', () => {
  const { table, seen } = recorded();
  const f = table.open(init(10, 3));
  table.setVerdict(f, { dscp: 46 }, 'voice');
  table.close(10, 3);
  table.open(init(10, 4));
  table.open(init(10, 4)); // the descriptor reused
  table.open(init(11, 5));
  table.closePid(10);
  table.open(init(12, 6, 1000, 1));
  table.open(init(12, 6, 1000, 2)); // another process given pid 12
  table.sweep((pid) => pid !== 11);
  assert.deepEqual(seen, [
    'open 10/3', 'decided 10/3 voice', 'closed 10/3 close',
    'open 10/4', 'closed 10/4 replaced', 'open 10/4', 'open 11/5', 'closed 10/4 exit',
    'open 12/6', 'closed 12/6 gone', 'open 12/6', 'closed 11/5 gone',
  ]);
});

test('a user past their bound loses their oldest entry: published as evicted; entries of a full table are not published', () => {
  const { table, seen } = recorded(3, 2);
  table.open(init(1, 1));
  table.open(init(1, 2));
  table.open(init(1, 3)); // evicts 1/1
  table.open(init(2, 1, 2000));
  const unkept = table.open(init(3, 1, 3000)); // the table holds 3: not kept
  table.setVerdict(unkept, { dscp: 10 }, 'r');
  assert.deepEqual(seen, ['open 1/1', 'open 1/2', 'closed 1/1 evicted', 'open 1/3', 'open 2/1']);
});

test('a subscriber that throws is reported and the others, and the table, go on; unsubscribing stops delivery', () => {
  const { table, seen, errors, events } = recorded();
  const stop = events.subscribe(() => { throw new Error('boom'); });
  const f = table.open(init(5, 5));
  table.setVerdict(f, null, null);
  stop();
  table.close(5, 5);
  assert.deepEqual(seen, ['open 5/5', 'decided 5/5 null', 'closed 5/5 close']);
  assert.equal(errors.length, 2);
  assert.equal(table.size, 0);
});
