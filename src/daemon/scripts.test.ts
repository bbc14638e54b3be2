/* A hostile policy script inside a real daemon: while one agent keeps triggering an endless
 * loop and a worker-hanging built-in call, another agent's rules-only requests keep their
 * normal latency, and the daemon reports what the script did. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from '../cli/client.js';
import { DaemonChild } from './child.js';
import { LineClient } from './line-client.js';

const SCRIPT = `
export function Connect(ev) {
  if (ev.remote?.port === 666) while (true) {}
  if (ev.remote?.port === 667) JSON.parse('[' + '12345,'.repeat(3e6) + '1]');
  if (ev.remote?.port === 668) throw new Error('policy bug');
  return undefined;
}
`;
const POLICY = `script: hostile.js
rules:
  - { name: web, match: { event: connect, remote_port: [80, 666, 667, 668] }, action: { dscp: AF21 } }
  - { name: bound, match: { event: bind }, action: { dscp: CS1 } }
`;

test('a hostile script: its calls fall to the rules, other agents keep their latency, metrics and log say what happened', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-script-'));
  writeFileSync(join(dir, 'hostile.js'), SCRIPT);
  const daemon = await new DaemonChild(dir, POLICY, ['--nice', 'keep']).start();
  try {
    const hostile = new LineClient(daemon.socket);
    const other = new LineClient(daemon.socket);
    let stop = false;
    const worst: number[] = [];
    // The other agent: a rules-only request (bind) every 5 ms, timed.
    const others = (async () => {
      for (let fd = 3; !stop; fd++) {
        const t0 = performance.now();
        other.sock.write(`Bind 1 0 other ${fd} {2 0.0.0.0 ${1000 + (fd % 1000)}} \n`);
        assert.equal(await other.next(), 'DSCP 8');
        worst.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    // The hostile agent: every request goes to the script and falls back to the rule.
    for (let i = 0; i < 12; i++) {
      const port = [666, 667, 668][i % 3];
      hostile.sock.write(`Connect 1 0 hostile ${10 + i} {2 192.0.2.1 ${port}} {} {}\n`);
      assert.equal(await hostile.next(), 'DSCP 18', `request ${i} (port ${port}) got the rule's answer`);
    }
    stop = true;
    await others;
    hostile.sock.destroy();
    other.sock.destroy();
    worst.sort((a, b) => a - b);
    const p99 = worst[Math.floor(worst.length * 0.99)]!;
    assert.ok(worst.length > 50, `${worst.length} rules-only requests answered meanwhile`);
    // The agent waits 50 ms at most: rules-only requests must stay well inside that.
    assert.ok(p99 < 50, `rules-only p99 ${p99.toFixed(1)} ms while the script misbehaved`);
    const metrics = (await call(daemon.admin, 'GET', '/metrics')).body;
    assert.match(metrics, /qosd_script_calls_total\{handler="Connect",result="timeout"\} 4/);
    assert.match(metrics, /qosd_script_calls_total\{handler="Connect",result="killed"\} 4/);
    assert.match(metrics, /qosd_script_calls_total\{handler="Connect",result="error"\} 4/);
    assert.match(metrics, /qosd_script_worker_restarts_total 4/);
    assert.match(daemon.log, /"script":"[^"]*hostile\.js:3:\d+".*overran its deadline/);
    assert.match(daemon.log, /"script":"[^"]*hostile\.js:5:\d+".*policy bug/);
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
