/* The notification ring (docs/protocol.md, "Notification ring"), end to end: a program whose
 * connects are decided from the agent's cache makes no call to the daemon for them, yet the
 * daemon's flow table follows every connection; a full ring sheds and says how much; the
 * lines are still there without a ring; a client that writes garbage, or writes about
 * descriptors that are not its own, changes nothing for anyone else. */

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { callJson, metricOf } from '../daemon/admin-client.js';
import { start, type Child } from '../exec.js';
import { AGENT_LIBRARY } from '../paths.js';
import { RING_SLOTS } from '../protocol/note-ring.js';
import { requireTools } from '../prerequisites.js';
import { AGENT_TEST_BIN, AGENT_TIMEOUT_MS, requireE2e, sh, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e();
requireTools('strace');
const PORT = 7300;
let tb: Testbed;
let daemon: TestDaemon;

const POLICY = `
rules:
  - { name: steps, match: { event: connect, exe: "*/connect_steps" }, action: { dscp: AF31 } }
`;

before(async () => {
  tb = new Testbed();
  daemon = await new TestDaemon(tb.dir, POLICY).start();
  tb.start([process.execPath, '-e', `require('net').createServer((s) => s.resume()).listen({ port: ${PORT}, backlog: 8192 })`], tb.server);
  await tb.waitListening(PORT);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

/** connect_steps processes started; a failed test's are ended before the next test counts flows. */
const running = new Set<Steps>();
afterEach(async () => {
  // end of input ends it (qos run forwards SIGTERM too, should it hang)
  for (const p of running) {
    p.child.proc.stdin!.end();
    const t = setTimeout(() => p.child.proc.kill('SIGTERM'), 5000);
    await p.child.exited;
    clearTimeout(t);
  }
  running.clear();
});

const bin = (name: string) => join(AGENT_TEST_BIN, name);

/** connect_steps under the agent (not through `qos run`: strace follows the program alone),
 * traced: the calls of each name it made, of those given. The agent waits AGENT_TIMEOUT_MS for
 * an answer, as under `qos run` in these tests: with its default 50 ms, a daemon slowed by a
 * loaded machine is given up on, and a connect left undecided adds calls of its own. */
function traced(input: string, names: string[], env: Record<string, string> = {}): { calls: Map<string, number>; lines: string[] } {
  const out = join(tb.dir, `strace${Math.random().toString(36).slice(2)}.txt`);
  const vars = Object.entries({ LD_PRELOAD: AGENT_LIBRARY, QOSD_SOCKET: daemon.socket, QOSD_TIMEOUT_MS: String(AGENT_TIMEOUT_MS), ...env }).flatMap(([k, v]) => ['-E', `${k}=${v}`]);
  const r = tb.inClient(['strace', '-f', '-qq', '-e', `trace=${names.join(',')}`, '-o', out, ...vars, bin('connect_steps'), tb.serverIp, String(PORT)], { input });
  assert.equal(r.status, 0, r.stderr);
  const calls = new Map<string, number>();
  const lines = readFileSync(out, 'utf8').split('\n').filter((l) => /^\d+\s+\w+\(/.test(l) && !l.includes('resumed>'));
  for (const l of lines) {
    const name = /^\d+\s+(\w+)\(/.exec(l)![1]!;
    calls.set(name, (calls.get(name) ?? 0) + 1);
  }
  return { calls, lines };
}

/** connect_steps under the agent in the client namespace, driven a command at a time. */
class Steps {
  readonly child: Child;
  private out = '';
  constructor(env: NodeJS.ProcessEnv = {}, wrap: string[] = []) {
    this.child = start([...wrap, ...daemon.run(bin('connect_steps'), tb.serverIp, String(PORT))], {
      netns: tb.client, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.proc.stdout!.setEncoding('utf8').on('data', (d: string) => { this.out += d; });
    running.add(this);
  }

  /** Sends one command and waits for its "done"; returns the connects failed so far. */
  async step(cmd: string): Promise<number> {
    this.child.proc.stdin!.write(`${cmd}\n`);
    await waitFor(`connect_steps to carry out "${cmd}" (stderr: ${this.child.stderr})`, () => /done \d+\n/.test(this.out), 20);
    const m = /done (\d+)\n/.exec(this.out)!;
    this.out = this.out.slice(m.index + m[0].length);
    return Number(m[1]);
  }

  async end(): Promise<number | null> {
    this.child.proc.stdin!.end();
    const code = (await this.child.exited).code;
    running.delete(this);
    return code;
  }

}

type FlowRow = { pid: number; fd: number; exe: string; remote: { address: string; port: number } | null; rule: string | null; class: string };
/** The flows of the program named exe (one connect_steps runs at a time: `qos run` starts it,
 * so its pid is not the one started here). */
const flowsOf = async (exe: string) => (await callJson<FlowRow[]>(daemon.admin, 'GET', '/v1/flows')).filter((f) => f.exe.endsWith(exe));

test('cached connects: no call to the daemon per connect, and the flow table follows every connection', { timeout: 120_000 }, async () => {
  // strace counts what the program calls: every connect after the first is decided from the
  // cache, so ten more connections cost no more calls of any of these than the first did
  const names = ['sendto', 'sendmsg', 'write', 'getpid', 'getuid', 'newfstatat', 'fstat', 'setsockopt'];
  const one = traced('c 1\n', names).calls, many = traced('c 1\nc 10\n', names).calls;
  assert.ok((one.get('sendmsg') ?? 0) >= 1, `the first connect asks the daemon: ${[...one]}`);
  assert.equal(many.get('setsockopt'), (one.get('setsockopt') ?? 0) + 10, 'each cached connect sets its mark');
  many.delete('setsockopt');
  one.delete('setsockopt');
  // (write: connect_steps's own "done" line per command)
  many.set('write', (many.get('write') ?? 0) - 1);
  assert.deepEqual([...many].sort(), [...one].sort(), 'ten cached connects added no call to the daemon, no getpid, getuid or fstat');

  // the flow table: each open connection with its rule and class, then none once closed
  const p = new Steps();
  assert.equal(await p.step('o 1'), 0); // asks: the answer is cached
  assert.equal(await p.step('o 40'), 0); // from the cache, told through the ring
  await waitFor('the 41 connections in the flow table', async () => (await flowsOf('connect_steps')).length === 41);
  const rows = (await flowsOf('connect_steps'));
  for (const f of rows) {
    assert.deepEqual(f.remote, { address: tb.serverIp, port: PORT });
    assert.equal(f.rule, 'steps');
    assert.equal(f.class, 'AF31');
  }
  assert.equal(await p.step('x'), 0);
  await waitFor('the closed connections to leave the flow table', async () => (await flowsOf('connect_steps')).length === 0);
  assert.equal(await p.end(), 0);
});

test('without a ring (QOSD_RING=0) the same notifications go as lines, one send each', { timeout: 60_000 }, async () => {
  const sends = traced('c 1\nc 10\n', ['sendto', 'sendmsg'], { QOSD_RING: '0' }).lines;
  // the first connect's question, its Close, then a Cached and a Close line per cached
  // connect, and the Cleanup at exit
  assert.equal(sends.length, 2 + 2 * 10 + 1, sends.join('\n'));
  assert.ok(!sends[0]!.includes('Ring '), 'no Ring is asked for');
  const p = new Steps({ QOSD_RING: '0' });
  assert.equal(await p.step('o 1'), 0);
  assert.equal(await p.step('o 20'), 0);
  await waitFor('the 21 connections in the flow table', async () => (await flowsOf('connect_steps')).filter((f) => f.class === 'AF31').length === 21);
  assert.equal(await p.step('x'), 0);
  await waitFor('none left', async () => (await flowsOf('connect_steps')).length === 0);
  assert.equal(await p.end(), 0);
});

test('a full ring sheds what does not fit, never blocks the program, and the daemon counts exactly what was shed', { timeout: 120_000 }, async () => {
  const p = new Steps();
  const mine = async () => (await flowsOf('connect_steps')).length;
  assert.equal(await p.step('o 1'), 0); // asks; the ring is the connection's from now on
  assert.equal(await p.step('o 1'), 0); // from the cache: a record in the ring
  await waitFor('both connections in the flow table', async () => (await mine()) === 2);
  assert.equal(await p.step('x'), 0);
  await waitFor('the ring read to its end', async () => (await mine()) === 0);
  const shed0 = await metricOf(daemon.admin, 'qosd_agent_notifications_shed_total');
  const closes = () => metricOf(daemon.admin, 'qosd_agent_messages_total', 'type="Close"');
  const closes0 = await closes();
  const pid = daemon.proc.pid!;
  const state = () => readFileSync(`/proc/${pid}/stat`, 'latin1').replace(/^.*\) /s, '')[0];
  process.kill(pid, 'SIGSTOP');
  try {
    await waitFor('the daemon to stop', () => state() === 'T');
    // 3,000 cached connects, two records each (the Connect with its Socket, the Close), while
    // nobody reads the ring: all connect, and what does not fit is dropped
    assert.equal(await p.step('c 3000'), 0);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  // the ring holds RING_SLOTS records: half the connects that fit, Connect and Close each
  await waitFor('the ring read', async () => (await closes()) - closes0 === RING_SLOTS / 2);
  // the next record carries the count of those dropped before it
  assert.equal(await p.step('c 1'), 0);
  await waitFor('the shed records counted', async () => (await metricOf(daemon.admin, 'qosd_agent_notifications_shed_total')) > shed0);
  // the first RING_SLOTS / 2 connects fit (Connect and Close); each later one drops its
  // Connect, and then has no Close to tell (the daemon never heard of that socket)
  assert.equal(await metricOf(daemon.admin, 'qosd_agent_notifications_shed_total') - shed0, 3000 - RING_SLOTS / 2);
  assert.equal(await p.end(), 0);
});

test('a client that writes garbage into its ring is cut off after eight records; one that writes about descriptors not its own changes only its own flows', { timeout: 60_000 }, async () => {
  const other = new Steps();
  assert.equal(await other.step('o 1'), 0);
  assert.equal(await other.step('o 9'), 0);
  await waitFor('the other program\'s 10 flows', async () => (await flowsOf('connect_steps')).length === 10);
  const hangups0 = await metricOf(daemon.admin, 'qosd_agent_hangups_total', 'reason="malformed ring records"');

  const g = sh([bin('ring_client'), daemon.socket, 'garbage', '20']);
  assert.match(g.stdout, /^ring \d+\nwritten 20\nclosed\n$/, g.stderr);
  assert.equal(await metricOf(daemon.admin, 'qosd_agent_hangups_total', 'reason="malformed ring records"') - hangups0, 1);

  // Close records for every descriptor number the other program could hold; read when the
  // client exits, if not before
  const closes = () => metricOf(daemon.admin, 'qosd_agent_messages_total', 'type="Close"');
  const closes0 = await closes();
  const c = sh([bin('ring_client'), daemon.socket, 'close', '0', '1000']);
  assert.match(c.stdout, /^ring \d+\nwritten 1001\n$/, c.stderr);
  await waitFor('the 1,001 Close records read', async () => (await closes()) - closes0 >= 1001);
  assert.equal((await flowsOf('connect_steps')).length, 10, 'the other program\'s flows are all there');
  assert.equal(await other.step('x'), 0);
  await waitFor('its own closes to count', async () => (await flowsOf('connect_steps')).length === 0);
  assert.equal(await other.end(), 0);
});

test('marks: every SYN of a cached burst carries the rule\'s mark', { timeout: 60_000 }, async () => {
  const syns = tb.synCounter(PORT, [0, 26]);
  const before = syns.read();
  const p = new Steps();
  assert.equal(await p.step('c 500'), 0);
  assert.equal(await p.end(), 0);
  const now = syns.read();
  assert.equal(now.total - before.total, 500);
  assert.equal((now.byDscp.get(26) ?? 0) - (before.byDscp.get(26) ?? 0), 500, 'AF31 on every SYN');
});
