/* The agent under stress: many threads, forking and daemonising programs, and a daemon that
 * is absent, hangs, or is killed mid-run. The program's results must equal a run without the
 * agent; the marks on the wire show the agent did its work while it could. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { AGENT_TEST_BIN, AGENT_TIMEOUT_MS, requireE2e, QOS, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e();
const PORT = 7100;
const SYN_ONLY = `tcp dst port ${PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn`;
let tb: Testbed;
let daemon: TestDaemon;

const POLICY = `
rules:
  - { name: loop, match: { exe: "*/connect_loop" }, action: { dscp: AF21 } }
  - { name: child1, match: { cmdline: "forkchild-1" }, action: { dscp: EF } }
  - { name: child2, match: { cmdline: "forkchild-2" }, action: { dscp: AF41 } }
  - { name: child3, match: { cmdline: "forkchild-3" }, action: { dscp: CS3 } }
  - { name: parent, match: { exe: "*/fork_children" }, action: { dscp: CS1 } }
  - { name: daemonize, match: { exe: "*/daemonize" }, action: { dscp: CS2 } }
`;

before(async () => {
  tb = new Testbed();
  daemon = await new TestDaemon(tb.dir, POLICY).start();
  // A sink that accepts and closes, with a deep backlog.
  tb.start([process.execPath, '-e', `require('net').createServer((s) => s.destroy()).listen({ port: ${PORT}, backlog: 8192 })`], tb.server);
  await tb.waitListening(PORT);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

const bin = (name: string) => join(AGENT_TEST_BIN, name);

// 64 threads that connect in a tight loop keep both cores busy 32 times over. Each thread's
// first connect asks the daemon (the rest reuse the answer from the agent's cache); under that
// load an answer can take longer than the default 50 ms (measured at 50 ms: 3 runs in 22 left
// 190 to 1,770 SYNs unmarked; at 250 ms a run on a machine loaded by other work left 562), so
// the agent waits AGENT_TIMEOUT_MS: the test is about correctness under concurrency, not
// latency (`qos bench agent` measures that).
test('64 threads x 200 connects: all succeed, every SYN marked', { timeout: 120_000 }, async () => {
  // 12,800 SYNs in about a second: a capture drops some on 2 cores, so the server's kernel counts.
  const syns = tb.synCounter(PORT, [0, 18]);
  const argv = [process.execPath, QOS, 'run', '--socket', daemon.socket, '--timeout-ms', String(AGENT_TIMEOUT_MS), '--', bin('connect_loop'), tb.serverIp, String(PORT), '200', '64'];
  const r = tb.inClient(argv, { timeout: 100_000 });
  assert.equal(r.stdout.trim(), 'ok=12800 fail=0', r.stderr);
  assert.equal(r.status, 0);
  const { total, byDscp } = syns.read();
  assert.ok(total >= 12800, `${total} SYNs arrived`);
  assert.equal(byDscp.get(18), total, 'every SYN carried AF21');
  assert.equal(byDscp.get(0), 0);
});

test('forked children are marked by their own (rewritten) command lines', async () => {
  const cap = await tb.capture(SYN_ONLY);
  const r = tb.inClient(daemon.run(bin('fork_children'), tb.serverIp, String(PORT), '3', 'x'.repeat(64)));
  assert.equal(r.status, 0, r.stderr);
  const portOf = new Map<string, number>();
  for (const line of r.stdout.trim().split('\n')) {
    const m = /^(parent|child \d) port (\d+)$/.exec(line);
    assert.ok(m, line);
    portOf.set(m[1]!, Number(m[2]));
  }
  const pkts = await cap.packets();
  const dscpOf = (who: string) => pkts.find((p) => p.srcPort === portOf.get(who))?.dscp;
  assert.equal(dscpOf('parent'), 8);
  assert.equal(dscpOf('child 1'), 46);
  assert.equal(dscpOf('child 2'), 34);
  assert.equal(dscpOf('child 3'), 24);
});

for (const mode of ['close', 'syscall', 'close_range']) {
  test(`a daemonising program that closes every descriptor (${mode}) keeps working and marked`, async () => {
    const out = join(tb.dir, `daemonize-${mode}.out`);
    const cap = await tb.capture(SYN_ONLY);
    const r = tb.inClient(daemon.run(bin('daemonize'), tb.serverIp, String(PORT), mode, out));
    assert.equal(r.status, 0, r.stderr);
    const [before, afterPort] = readFileSync(out, 'utf8').trim().split(' ').map(Number);
    assert.ok(before! > 0 && afterPort! > 0, 'both connects succeeded and no file of the program was written to');
    const pkts = await cap.packets();
    assert.equal(pkts.find((p) => p.srcPort === before)?.dscp, 16);
    assert.equal(pkts.find((p) => p.srcPort === afterPort)?.dscp, 16);
  });
}

test('fail-open: no daemon at all', async () => {
  const cap = await tb.capture(SYN_ONLY);
  const r = tb.inClient([process.execPath, QOS, 'run', '--socket', join(tb.dir, 'nobody.sock'), '--', bin('connect_loop'), tb.serverIp, String(PORT), '1000', '1']);
  assert.equal(r.stdout.trim(), 'ok=1000 fail=0');
  assert.equal(r.stderr, '', 'the agent prints nothing');
  const pkts = await cap.packets();
  assert.deepEqual([...new Set(pkts.map((p) => p.dscp))], [0]);
});

test('fail-open: a daemon that accepts but never answers costs at most a few timeouts', async () => {
  const sock = join(tb.dir, 'mute.sock');
  const held: unknown[] = [];
  let asked = 0; // requests the agent sent (one line each) and waited on
  const mute = createServer((s) => { held.push(s); s.on('data', (d: Buffer) => { for (const b of d) if (b === 10) asked++; }); }).listen(sock);
  await new Promise((r) => mute.once('listening', r));
  try {
    const THREADS = 4;
    const loop = [bin('connect_loop'), tb.serverIp, String(PORT), '1000', String(THREADS)];
    const t0 = performance.now();
    // run without blocking this process: the mute daemon is in it and must accept and read
    const p = spawn('ip', ['netns', 'exec', tb.client, process.execPath, QOS, 'run', '--socket', sock, '--timeout-ms', '50', '--', ...loop], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = { stdout: '', stderr: '' };
    p.stdout.on('data', (d: Buffer) => (r.stdout += d));
    p.stderr.on('data', (d: Buffer) => (r.stderr += d));
    await new Promise((res) => p.once('close', res));
    const elapsed = performance.now() - t0;
    assert.equal(r.stdout.trim(), 'ok=4000 fail=0', r.stderr);
    assert.equal(r.stderr, '');
    // 4,000 connects that each waited 50 ms would ask 4,000 times. With the back-off, each
    // thread asks at most once per round: a round ends when a question times out (50 ms) and
    // asking pauses (100 ms, doubling to 5 s), so however long a loaded machine makes the run
    // take, the questions are bounded by the rounds that fit in it: the run's own length
    // loosens the bound, it never makes the test fail.
    assert.ok(asked > 0, 'the agent did ask the mute daemon');
    // Startup, then per question Socket + Connect and the Ring of the new connection it goes on
    // (the last one timed out: the agent left it); all in the question's one send
    const limit = 1 + 3 * THREADS * backoffRounds(elapsed, 50);
    assert.ok(asked <= limit, `the agent sent ${asked} lines in ${Math.round(elapsed)} ms; its back-off allows ${limit}`);
    assert.ok(limit < 4000, 'the bound is far below one question per connect');
  } finally {
    for (const s of held) (s as { destroy(): void }).destroy();
    mute.close();
  }
});

test('the agents\' deadline is the daemon\'s --agent-timeout-ms unless a program is given its own: a script that answers in a second marks a program given none, and one given 50 ms goes on unmarked', { timeout: 120_000 }, async () => {
  const dir3 = join(tb.dir, 'd3');
  mkdirSync(dir3);
  // every connect waits a second for the script (busy, within its deadline and answer time):
  // twenty times the 50 ms of the program given its own deadline, and well inside the daemon's
  const SLOW_MS = 1000;
  writeFileSync(join(dir3, 'slow.js'), `export function Connect(ev) {\n  const t = Date.now();\n  while (Date.now() - t < ${SLOW_MS}) { /* a slow decision */ }\n  return { dscp: 'EF' };\n}\n`);
  const d3 = await new TestDaemon(dir3, 'script: slow.js\nrules: []\n', ['--kernel', 'off', '--script-nice', 'keep', '--script-deadline-ms', String(3 * SLOW_MS), '--script-answer-ms', String(4 * SLOW_MS), '--agent-timeout-ms', String(AGENT_TIMEOUT_MS)]).start();
  try {
    const connect = ['python3', '-c', `import socket\ns = socket.create_connection(("${tb.serverIp}", ${PORT}))\nprint(s.getsockname()[1])`];
    const cap = await tb.capture(SYN_ONLY);
    // qos run without --timeout-ms sets no QOSD_TIMEOUT_MS: the agent takes the daemon's
    const none = tb.inClient([process.execPath, QOS, 'run', '--socket', d3.socket, '--', ...connect], { env: { ...process.env, QOSD_TIMEOUT_MS: '' } });
    const own = tb.inClient([process.execPath, QOS, 'run', '--socket', d3.socket, '--timeout-ms', '50', '--', ...connect]);
    assert.equal(none.status, 0, none.stderr);
    assert.equal(own.status, 0, own.stderr);
    const pkts = await cap.packets();
    const dscpOf = (r: { stdout: string }) => pkts.filter((p) => p.srcPort === Number(r.stdout.trim())).map((p) => p.dscp);
    assert.deepEqual(dscpOf(none), [46], 'given no deadline, the agent waited the daemon\'s and the script\'s EF went on the SYN');
    assert.deepEqual(dscpOf(own), [0], 'given 50 ms, it went on unmarked before the script answered');
  } finally {
    await d3.stop();
  }
});

test('fail-open: the daemon killed with SIGKILL while connects are in progress', { timeout: 120_000 }, async () => {
  const dir2 = join(tb.dir, 'd2');
  mkdirSync(dir2);
  // no nftables (its DSCP counters' table would outlive a SIGKILL): the agent alone marks here
  const d2 = await new TestDaemon(dir2, `${POLICY}  - { name: steps, match: { exe: "*/connect_steps" }, action: { dscp: AF21 } }\n`, ['--kernel', 'off']).start();
  // counted in the server's kernel: a capture of thousands of SYNs may drop some
  const syns = tb.synCounter(PORT, [0, 18]);
  // connect_steps, driven a command at a time ("c K": K connects, then "done <failed so far>"),
  // so that the daemon dies while the program has connects to make, however fast it runs
  const argv = ['ip', 'netns', 'exec', tb.client, ...d2.run(bin('connect_steps'), tb.serverIp, String(PORT))];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const done = async (cmd: string): Promise<number> => {
    await waitFor(`connect_steps to carry out "${cmd}"`, () => /done \d+\n/.test(out) || child.exitCode !== null, 20);
    const m = /done (\d+)\n/.exec(out);
    assert.ok(m, `connect_steps ended before "${cmd}" was done: ${err}`);
    out = out.slice(m.index + m[0].length);
    return Number(m[1]);
  };
  const step = (cmd: string) => { child.stdin.write(`${cmd}\n`); return done(cmd); };
  try {
    assert.equal(await step('c 500'), 0);
    assert.ok((syns.read().byDscp.get(18) ?? 0) > 0, 'marked while the daemon lived');
    // killed while a thousand connects are under way
    child.stdin.write('c 1000\n');
    const dead = new Promise((r) => d2.proc.once('exit', r));
    d2.proc.kill('SIGKILL');
    await dead;
    assert.equal(await done('c 1000'), 0, 'every connect succeeded');
    // the agent finds its daemon gone once records wait unread (50 ms) and goes on without it:
    // connects until one leaves unmarked, every one succeeding
    await waitFor('a SYN unmarked after the daemon died', async () => {
      assert.equal(await step('c 100'), 0, 'every connect succeeded');
      return (syns.read().byDscp.get(0) ?? 0) > 0;
    });
    child.stdin.end();
    assert.equal(await exited, 0, err);
  } finally {
    // (end of input ends it; qos run hands a SIGTERM on to it)
    child.stdin.end();
    if (child.exitCode === null) child.kill('SIGTERM');
  }
});

/** How many rounds of questions the agent's back-off lets fit in ms: a round is a question
 * timing out (timeoutMs), then a pause of 100 ms doubling up to 5 s (agent/agent.h). */
function backoffRounds(ms: number, timeoutMs: number): number {
  let rounds = 1, t = 0, pause = 100;
  for (;;) {
    t += timeoutMs + pause;
    if (t > ms) return rounds;
    rounds++;
    pause = Math.min(pause * 2, 5000);
  }
}
