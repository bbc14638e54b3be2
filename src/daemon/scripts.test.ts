/* A hostile policy script inside a real daemon: while one agent keeps triggering an endless
 * loop and a worker-hanging built-in call, another agent's rules-only requests are answered
 * without waiting for the script, and the daemon reports what the script did. (How long they
 * take is a benchmark's question: src/bench/script-abuse.ts.) */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from './admin-client.js';
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

/** What a hostile request got, and how many of the rules-only agent's requests were sent
 * after it and answered before it. */
interface HostileCall { reply: string | null; passed: number }

/** Runs a rules-only agent (binds, one after another) beside a hostile one that sends
 * `lines` one after another, each as soon as the one before is answered; every rules-only
 * request must get the rule's answer. Returns what each hostile request got, and how many
 * rules-only requests were answered in all. */
async function besideHostile(socket: string, lines: string[]): Promise<{ hostile: HostileCall[]; others: number }> {
  const hostile = new LineClient(socket);
  const other = new LineClient(socket);
  let stop = false;
  let answered = 0;
  const others = (async () => {
    for (let fd = 3; !stop; fd++) {
      other.sock.write(`Bind 1 0 other ${fd} {2 0.0.0.0 ${1000 + (fd % 1000)}}\n`);
      assert.equal(await other.next(), 'DSCP 8', 'a rules-only request got the rule\'s answer');
      answered++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  const calls: HostileCall[] = [];
  try {
    for (const line of lines) {
      hostile.sock.write(`${line}\n`);
      const before = answered;
      const reply = await hostile.next();
      // the rules-only request in flight when this one was sent may be counted: hence -1
      calls.push({ reply, passed: Math.max(0, answered - before - 1) });
    }
  } finally {
    stop = true;
    await others;
    hostile.sock.destroy();
    other.sock.destroy();
  }
  return { hostile: calls, others: answered };
}

/** Runs body against a daemon (at the test's priority, and its script too) whose directory
 * holds files and the policy, then stops it and removes the directory. The daemon waits 5 s
 * for a script's answer (not the default 30 ms), and its script does not run at nice 19 (on
 * a busy machine that can mean no CPU for seconds): these tests are about what the script
 * does, not how fast this machine runs it. */
async function withDaemon(files: Record<string, string>, policy: string, body: (daemon: DaemonChild, dir: string) => Promise<void>, args: string[] = []): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-script-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const daemon = await new DaemonChild(dir, policy, ['--nice', 'keep', '--script-nice', 'keep', '--script-answer-ms', '5000', ...args]).start();
  try {
    await body(daemon, dir);
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Script calls of a handler, by how they ended, from the daemon's metrics. */
async function scriptCalls(daemon: DaemonChild, handler: string): Promise<(result: string) => number> {
  const metrics = (await call(daemon.admin, 'GET', '/metrics')).body;
  return (result) => Number(new RegExp(`qosd_script_calls_total\\{handler="${handler}",result="${result}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
}

test('a hostile script: its calls fall to the rules, other agents are answered meanwhile, metrics and log say what happened', { timeout: 120_000 }, async () => {
  await withDaemon({ 'hostile.js': SCRIPT }, POLICY, async (daemon) => {
    const connect = (fd: number, port: number) => `Connect 1 0 hostile ${fd} {2 192.0.2.1 ${port}} {} {}`;
    // spin, throw, spin, throw (an exception ends in time: no suspension), then a built-in
    // call that hangs the worker, then the same user again.
    const ports = [666, 668, 666, 668, 667, 666, 667];
    const { hostile, others } = await besideHostile(daemon.socket, ports.map((p, i) => connect(10 + i, p)));
    assert.deepEqual(hostile.map((h) => h.reply), ports.map(() => 'DSCP 18'), 'every hostile request got the rule\'s answer');
    // The hang held the worker until the watchdog replaced it; rules-only requests sent after
    // it were answered before it: they did not wait for the script.
    assert.ok(hostile[4]!.passed >= 1, `rules-only requests answered while the hang was outstanding: ${hostile[4]!.passed}`);
    assert.ok(others >= 1);
    const count = await scriptCalls(daemon, 'Connect');
    assert.deepEqual([count('timeout'), count('error'), count('killed'), count('suspended')], [2, 2, 1, 2],
      'two overruns, two exceptions, one hang; then that user is suspended: the script is not called for them');
    const metrics = (await call(daemon.admin, 'GET', '/metrics')).body;
    assert.match(metrics, /qosd_script_worker_restarts_total 1\b/);
    assert.match(daemon.log, /"script":"[^"]*hostile\.js:3:\d+".*overran its deadline/);
    assert.match(daemon.log, /"script":"[^"]*hostile\.js:5:\d+".*policy bug/);
    assert.match(daemon.log, /hung: worker replaced/);
    assert.match(daemon.log, /hung its host for uid 0; suspended/);
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

test('a hostile Safe Tcl script: while 1 {} and exec fall to the rules; other agents are answered meanwhile', { timeout: 120_000 }, async () => {
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
  // a deadline of 300 ms: each loop holds tclsh that long
  await withDaemon({ 'hostile.tcl': script }, POLICY.replace('hostile.js', 'hostile.tcl'), async (daemon) => {
    const n = 20;
    const { hostile } = await besideHostile(daemon.socket, Array.from({ length: n }, (_, i) => `Connect 1 0 hostile ${10 + i} {2 192.0.2.1 ${666 + (i % 4)}} {} {}`));
    assert.deepEqual(hostile.map((h) => h.reply), hostile.map(() => 'DSCP 18'), 'every hostile request got the rule\'s answer');
    const loops = hostile.filter((_, i) => i % 4 === 0);
    const count = await scriptCalls(daemon, 'Connect');
    assert.ok(loops.every((h) => h.passed >= 1), `rules-only requests answered while each loop ran: ${loops.map((h) => h.passed).join(' ')}; timeouts ${count('timeout')} errors ${count('error')} suspended ${count('suspended')} killed ${count('killed')}\n${daemon.log.split('\n').filter((l) => /Connect|tclsh/.test(l)).join('\n')}`);
    assert.deepEqual([count('timeout'), count('error')], [n / 4, (3 * n) / 4]); // 1 in 4 loops, 3 in 4 missing commands
    assert.ok(!existsSync('/tmp/qosd-pwned'), 'exec did not run');
  }, ['--script-deadline-ms', '300']);
});
