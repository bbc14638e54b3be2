/* The metrics history of a real daemon (sampling every 200 ms for the test): an agent's
 * requests show as a decision rate with its latency, a script's calls and the ones that threw
 * as script calls and faults; GET /v1/metrics/history answers the same on the admin socket. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, callJson } from './admin-client.js';
import { DaemonChild } from './child.js';
import { LineClient } from './line-client.js';
import type { HistorySample } from './metrics-history.js';

const SCRIPT = `export function Connect(ev) { if (ev.remote?.port === 668) throw new Error('policy bug'); return undefined; }\n`;
const POLICY = `script: faulty.js
rules:
  - { name: web, match: { event: connect }, action: { dscp: AF21 } }
  - { name: bound, match: { event: bind }, action: { dscp: CS1 } }
`;

test('decisions, their latency and script faults show in the history; since and a bad since over the admin socket', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-history-'));
  writeFileSync(join(dir, 'faulty.js'), SCRIPT);
  const d = await new DaemonChild(dir, POLICY, ['--kernel', 'off', '--metrics-interval', '200ms', '--nice', 'keep', '--script-nice', 'keep', '--script-answer-ms', '5000']).start();
  const agent = new LineClient(d.socket);
  try {
    const first = await callJson<{ interval_s: number; samples: HistorySample[] }>(d.admin, 'GET', '/v1/metrics/history');
    assert.equal(first.interval_s, 0.2);
    for (let fd = 3; fd < 203; fd++) {
      agent.sock.write(`Bind 1 0 agent ${fd} {2 0.0.0.0 ${1000 + fd}}\n`);
      assert.equal(await agent.next(), 'DSCP 8');
    }
    for (let fd = 300; fd < 305; fd++) {
      agent.sock.write(`Connect 1 0 agent ${fd} {2 192.0.2.1 668} {} {}\n`);
      assert.equal(await agent.next(), 'DSCP 18', 'the script threw: the rules answered');
    }
    let samples: HistorySample[] = [];
    const seen = () => samples.some((s) => s.decisions_per_s > 0 && s.latency_p50_us !== null) && samples.some((s) => s.script_faults_per_s > 0);
    for (let i = 0; i < 600 && !seen(); i++) {
      samples = (await callJson<{ samples: HistorySample[] }>(d.admin, 'GET', '/v1/metrics/history')).samples;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(seen(), `no sample with decisions and script faults: ${JSON.stringify(samples)}`);
    for (const s of samples) {
      assert.ok(s.script_faults_per_s <= s.script_calls_per_s, 'faults are among the calls');
      assert.equal(s.dscp, null, 'kernel rules off: no DSCP counters');
      if (s.latency_p50_us !== null) assert.ok(s.latency_p99_us! >= s.latency_p50_us, 'p99 >= p50');
    }
    const busy = samples.find((s) => s.decisions_per_s > 0)!;
    const later = (await callJson<{ samples: HistorySample[] }>(d.admin, 'GET', `/v1/metrics/history?since=${encodeURIComponent(busy.t)}`)).samples;
    assert.ok(later.every((s) => Date.parse(s.t) > Date.parse(busy.t)), 'since: only later samples');
    const bad = await call(d.admin, 'GET', '/v1/metrics/history?since=yesterday');
    assert.equal(bad.status, 400);
    assert.equal((JSON.parse(bad.body) as { error: { code: string } }).error.code, 'QOS_ERR_USAGE');
  } finally {
    agent.sock.destroy();
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
