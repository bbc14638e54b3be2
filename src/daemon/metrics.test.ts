import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram, Metrics } from './metrics.js';

test('FastHistogram renders what prom-client\'s own Histogram renders for the same observations', async () => {
  const bounds = [2e-6, 5e-6, 1e-5, 1e-3, 0.25, 1];
  const a = new Registry(), b = new Registry();
  const ours = new FastHistogram('t_seconds', 'test', bounds, a);
  const theirs = new Histogram({ name: 't_seconds', help: 'test', buckets: bounds, registers: [b] });
  let seed = 3;
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    // edges exactly, values between, and beyond the last bound
    const v = i % 7 === 0 ? bounds[i % bounds.length]! : ((seed >>> 8) / 2 ** 24) * 10 ** -((seed >>> 4) % 7);
    ours.observe(v);
    theirs.observe(v);
  }
  ours.observe(3);
  theirs.observe(3);
  assert.equal(await a.metrics(), await b.metrics());
});

test('Metrics: script calls are counted by handler and result', async () => {
  const m = new Metrics();
  m.scriptCall('Connect', 'decided');
  m.scriptCall('Connect', 'decided');
  m.scriptCall('Socket', 'timeout');
  const text = await m.registry.metrics();
  assert.match(text, /^qosd_script_calls_total\{handler="Connect",result="decided"\} 2$/m);
  assert.match(text, /^qosd_script_calls_total\{handler="Socket",result="timeout"\} 1$/m);
});

test('Metrics: decisions are counted by rule, class and whether cached, and messages by type', async () => {
  const m = new Metrics();
  // one rule deciding two classes in turn, another rule, cached and not
  for (let i = 0; i < 5; i++) {
    m.decision('r1', 'EF', true);
    m.decision('r1', i % 2 ? 'AF21' : 'EF', true);
  }
  m.decision('r1', 'EF', false);
  m.decision('none', 'none', true);
  for (const t of ['Cached', 'Close', 'Cached']) m.message(t);
  const text = await m.registry.metrics();
  assert.match(text, /^qosd_decisions_total\{rule="r1",class="EF",cached="true"\} 8$/m);
  assert.match(text, /^qosd_decisions_total\{rule="r1",class="AF21",cached="true"\} 2$/m);
  assert.match(text, /^qosd_decisions_total\{rule="r1",class="EF",cached="false"\} 1$/m);
  assert.match(text, /^qosd_decisions_total\{rule="none",class="none",cached="true"\} 1$/m);
  assert.equal(text.match(/^qosd_decisions_total\{/gm)?.length, 4);
  assert.match(text, /^qosd_agent_messages_total\{type="Cached"\} 2$/m);
  assert.match(text, /^qosd_agent_messages_total\{type="Close"\} 1$/m);
});

test('Metrics: script totals count every call, and as faults those that neither decided nor fell through', () => {
  const m = new Metrics();
  for (const r of ['decided', 'decided', 'fallthrough', 'error', 'timeout', 'killed', 'overloaded', 'suspended', 'late']) m.scriptCall('Connect', r);
  m.scriptCall('Socket', 'error');
  assert.deepEqual(m.scriptTotals(), { calls: 10, faults: 7 });
});
