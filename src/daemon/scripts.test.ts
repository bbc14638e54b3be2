/* A hostile policy script inside a real daemon: while one agent keeps triggering an endless
 * loop and a worker-hanging built-in call, another agent's rules-only requests keep their
 * normal latency, and the daemon reports what the script did. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  - { name: web, match: { event: connect, remote_port: [80, 666, 667, 668, 669] }, action: { dscp: AF21 } }
  - { name: bound, match: { event: bind }, action: { dscp: CS1 } }
`;

/** Runs a rules-only agent (a bind every 5 ms, timed) beside a hostile one until the hostile
 * one has made `min` requests, each of which must get the rule's answer, and the other one
 * 100; returns the rules-only latencies in ms. */
async function besideHostile(socket: string, min: number, hostileLine: (i: number) => string): Promise<number[]> {
  const hostile = new LineClient(socket);
  const other = new LineClient(socket);
  let stop = false;
  const latencies: number[] = [];
  const others = (async () => {
    for (let fd = 3; !stop; fd++) {
      const t0 = performance.now();
      other.sock.write(`Bind 1 0 other ${fd} {2 0.0.0.0 ${1000 + (fd % 1000)}}\n`);
      assert.equal(await other.next(), 'DSCP 8');
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    for (let i = 0; i < min || latencies.length < 100; i++) {
      hostile.sock.write(`${hostileLine(i)}\n`);
      assert.match((await hostile.next()) ?? 'closed', /^DSCP 18/, `hostile request ${i} got the rule's answer`);
    }
  } finally {
    stop = true;
    await others;
    hostile.sock.destroy();
    other.sock.destroy();
  }
  return latencies;
}

/** Runs body against a daemon (at the test's priority) whose directory holds files and the
 * policy, then stops it and removes the directory. */
async function withDaemon(files: Record<string, string>, policy: string, body: (daemon: DaemonChild, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-script-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const daemon = await new DaemonChild(dir, policy, ['--nice', 'keep']).start();
  try {
    await body(daemon, dir);
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The q-th quantile of some latencies (nearest rank). */
function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
}

test('a hostile script: its calls fall to the rules, other agents keep their latency, metrics and log say what happened', { timeout: 120_000 }, async () => {
  await withDaemon({ 'hostile.js': SCRIPT }, POLICY, async (daemon) => {
    // Every hostile request goes to the script and falls back to the rule.
    const worst = await besideHostile(daemon.socket, 12, (i) => `Connect 1 0 hostile ${10 + i} {2 192.0.2.1 ${[666, 667, 668][i % 3]}} {} {}`);
    // The agent waits 50 ms at most: rules-only requests must stay well inside that.
    const p95 = percentile(worst, 0.95);
    assert.ok(p95 < 50, `rules-only p95 ${p95.toFixed(1)} ms over ${worst.length} requests while the script misbehaved`);
    const metrics = (await call(daemon.admin, 'GET', '/metrics')).body;
    const count = (result: string) => Number(new RegExp(`qosd_script_calls_total\\{handler="Connect",result="${result}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    const [timeouts, killed, errors] = [count('timeout'), count('killed'), count('error')];
    assert.ok(timeouts >= 4 && killed >= 4 && errors >= 4, `timeouts ${timeouts}, killed ${killed}, errors ${errors}`);
    assert.match(metrics, new RegExp(`qosd_script_worker_restarts_total ${killed}`));
    assert.match(daemon.log, /"script":"[^"]*hostile\.js:3:\d+".*overran its deadline/);
    assert.match(daemon.log, /"script":"[^"]*hostile\.js:5:\d+".*policy bug/);
  });
});

test('reload replaces a script atomically; a broken one leaves the old one deciding', { timeout: 60_000 }, async () => {
  await withDaemon({ 'policy.js': "export function Connect(ev) { return { dscp: 'EF' }; }\n" }, 'script: policy.js\n', async (daemon, dir) => {
    const script = join(dir, 'policy.js');
    const c = new LineClient(daemon.socket);
    const ask = async (fd: number) => {
      c.sock.write(`Connect 1 0 x ${fd} {2 192.0.2.1 80} {} {}\n`);
      return c.next();
    };
    try {
      assert.equal(await ask(3), 'DSCP 46');
      writeFileSync(script, "export function Connect(ev) { return { dscp: 'CS1' } \n}}\n");
      const bad = JSON.parse((await call(daemon.admin, 'POST', '/v1/reload')).body) as { ok: boolean; error: { problems: { line?: number }[] } };
      assert.equal(bad.ok, false);
      assert.equal(bad.error.problems[0]?.line, 2, 'the syntax error is located');
      assert.equal(await ask(4), 'DSCP 46', 'the old script still decides');
      const status = JSON.parse((await call(daemon.admin, 'GET', '/v1/status')).body) as { policy: { last_error: { message: string } | null } };
      assert.match(status.policy.last_error?.message ?? '', /SyntaxError/);
      writeFileSync(script, "export function Connect(ev) { return { dscp: 'CS1' }; }\n");
      const good = JSON.parse((await call(daemon.admin, 'POST', '/v1/reload')).body) as { ok: boolean };
      assert.equal(good.ok, true);
      assert.equal(await ask(5), 'DSCP 8', 'the new script decides');
    } finally {
      c.sock.destroy();
    }
  });
});

test('requests sent together and decided by the script are answered in order, each with its own event', { timeout: 60_000 }, async () => {
  // Each handler answers with a TOS made of what it was told: the event's fd, and for
  // Connect and SendTo the remote port; Shutdown counts into module state.
  const script = `
let shut = 0;
export function Socket(ev) { return ev.event === 'socket' && ev.type === 'stream' && ev.user === 'root' ? { tos: ev.fd * 4 } : undefined; }
export function Connect(ev) { return { tos: (ev.fd + ev.remote.port) * 4 }; }
export function SendTo(ev) { return { tos: (ev.remote.port + shut) * 4 }; }
export function Shutdown(ev) { shut += ev.how; }
`;
  await withDaemon({ 'policy.js': script }, 'script: policy.js\n', async (daemon) => {
    const c = new LineClient(daemon.socket);
    try {
      for (let round = 0; round < 20; round++) {
        const fd = 10 + round;
        // One write: Socket + Connect (as the agent pipelines them), a notification the script
        // counts, and another scripted request that must see the count.
        c.sock.write(`Socket 1 0 x 2 1 6 ${fd}\nConnect 1 0 x ${fd} {2 192.0.2.1 ${round}} {} {}\n`
          + `Shutdown 1 0 x ${fd} 1\nSendTo 1 0 x ${fd + 1} {2 192.0.2.2 ${round + 1}}\n`);
        assert.equal(await c.next(), `TOS ${fd * 4}`, 'Socket');
        assert.equal(await c.next(), `TOS ${(fd + round) * 4}`, 'Connect');
        assert.equal(await c.next(), `TOS ${(round + 1 + round + 1) * 4}`, 'SendTo after Shutdown');
      }
    } finally {
      c.sock.destroy();
    }
  });
});

test('a hostile Safe Tcl script: while 1 {} and exec fall to the rules; other agents keep their latency', { timeout: 60_000 }, async () => {
  const script = `
proc Connect { pid uid cmd fd address sqos gqos } {
  switch [lindex $address 2] {
    666 { while 1 {} }
    667 { exec /bin/sh -c "touch /tmp/qosd-pwned" }
    668 { open /etc/shadow }
    669 { socket 127.0.0.1 22 }
  }
}
`;
  await withDaemon({ 'hostile.tcl': script }, POLICY.replace('hostile.js', 'hostile.tcl'), async (daemon) => {
    const worst = await besideHostile(daemon.socket, 40, (i) => `Connect 1 0 hostile ${10 + i} {2 192.0.2.1 ${666 + (i % 4)}} {} {}`);
    const p95 = percentile(worst, 0.95);
    assert.ok(p95 < 50, `rules-only p95 ${p95.toFixed(1)} ms over ${worst.length} requests`);
    const metrics = (await call(daemon.admin, 'GET', '/metrics')).body;
    const timeouts = Number(/qosd_script_calls_total\{handler="Connect",result="timeout"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const errors = Number(/qosd_script_calls_total\{handler="Connect",result="error"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    assert.ok(timeouts >= 10 && errors >= 30, `timeouts ${timeouts}, errors ${errors}`); // 1 in 4 loops, 3 in 4 missing commands
    assert.ok(!existsSync('/tmp/qosd-pwned'), 'exec did not run');
  });
});
