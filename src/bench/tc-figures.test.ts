import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GONE_MSG, RESTORED_MSG } from '../tc/links.js';
import { errorPct, exactFilter, loggedAt, spread, steadyRate } from './tc-figures.js';

test('a spread is the median with the smallest and largest round', () => {
  assert.deepEqual(spread([0.9, 1.02, 0.95]), { median: 0.95, min: 0.9, max: 1.02 });
  assert.deepEqual(spread([1, 2, 3, 4], 1), { median: 2.5, min: 1, max: 4 });
  assert.throws(() => spread([]));
});

test('the steady rate counts only the middle 60 % of the arrivals, so a burst at the start does not count', () => {
  // 1000-byte datagrams every 8 ms (1 Mb/s) for 10 s, after a burst of 20 at once
  const times = [...Array.from({ length: 20 }, () => 0), ...Array.from({ length: 1250 }, (_, k) => 0.008 * (k + 1))];
  assert.ok(Math.abs(steadyRate(times, 1000) / 1e6 - 1) < 1e-9);
  assert.throws(() => steadyRate([1], 1000));
});

test('the error of a rate is signed, in percent', () => {
  assert.ok(Math.abs(errorPct(0.98, 1) - -2) < 1e-9);
  assert.ok(Math.abs(errorPct(1.05e6, 1e6) - 5) < 1e-9);
});

test('each flow gets its own exact UDP 5-tuple', () => {
  const keys = new Set(Array.from({ length: 70_000 }, (_, n) => { const f = exactFilter(n, 'a', 'b'); return `${f.sport}.${f.dport}`; }));
  assert.equal(keys.size, 70_000);
  const f = exactFilter(64512, '10.0.0.1', '10.0.0.2');
  assert.deepEqual(f, { src: '10.0.0.1', dst: '10.0.0.2', proto: 'udp', sport: 1024, dport: 2 });
  for (const n of [0, 69_999]) { const g = exactFilter(n, 'a', 'b'); assert.ok(g.sport >= 1024 && g.sport <= 65535 && g.dport >= 1 && g.dport <= 65535); }
});

test('the time the daemon logged an interface back, from its JSON log', () => {
  const log = [
    '{"level":30,"time":1000,"svc":"qosd","msg":"qosd listening"}',
    `{"level":40,"time":2000,"dev":"rl0","msg":"${GONE_MSG}"}`,
    `{"level":30,"time":2500,"dev":"other0","msg":"${RESTORED_MSG}"}`,
    `{"level":30,"time":3000,"dev":"rl0","ifindex":9,"flows":1,"msg":"${RESTORED_MSG}"}`,
    `{"level":30,"time":4000,"dev":"rl0","msg":"${RESTORED_MSG}`, // still being written
  ].join('\n');
  assert.equal(loggedAt(log, RESTORED_MSG, 'rl0'), 3000);
  assert.equal(loggedAt(log, GONE_MSG, 'rl0'), 2000);
  assert.equal(loggedAt(log.split('\n').slice(0, 3).join('\n'), RESTORED_MSG, 'rl0'), null);
  assert.equal(loggedAt('', RESTORED_MSG, 'rl0'), null);
});
