/* Hostile local users against a real daemon: each test is an attack found in review (issue
 * 15), run by an unprivileged user created for it, beside another user whose programs must
 * keep being served with the answers their policy gives them. Identity comes from the kernel:
 * the two users are two uids, and nothing a client writes can make it the other. Asserted are
 * answers, counts and states, never times (`qos bench hostile` measures those). */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { runClientAs } from '../bench/hostile.js';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, callJson, metricOf } from '../daemon/admin-client.js';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { LineClient } from '../daemon/line-client.js';
import { MAX_ERRORS } from '../daemon/agents.js';
import { requireE2e, sh, waitFor } from './harness.js';
import { asUser, testUser, type TestUser } from './users.js';

requireE2e();
/** Debian's python3 (package python3): other users cannot reach root's own (e.g. pyenv's). */
const PYTHON = '/usr/bin/python3';
let evil: TestUser, good: TestUser;
const dirs: string[] = [];

before(() => {
  evil = testUser('ds-evil');
  good = testUser('ds-good');
});

after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** A daemon whose sockets other users can reach (its directory is 0755, root's). */
async function daemon(policy: string, args: string[] = []): Promise<DaemonChild> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-hostile-'));
  chmodSync(dir, 0o755);
  dirs.push(dir);
  return new DaemonChild(dir, policy, ['--kernel', 'off', ...args]).start();
}

/** hostile-client.js MODE SOCKET ARGS as user u. */
const runAs = (u: TestUser, args: string[]) => runClientAs(u.uid, u.gid, args);
const metric = (d: DaemonChild, name: string, labels?: string) => metricOf(d.admin, name, labels);

/** n requests from the good user (lines: see hostile-client.ts ask); the answers, without
 * CACHE, must be `replies` and nothing else. */
async function goodUserAsks(d: DaemonChild, n: number, replies: string[], lines?: string): Promise<void> {
  const p = runAs(good, ['ask', d.socket, String(n), ...(lines ? [lines] : [])]);
  const r = await p.next();
  await p.stop();
  assert.equal(r.answered, n, `the good user got ${r.answered} of ${n} answers`);
  assert.deepEqual((r.replies as string[]).sort(), [...replies].sort(), 'every answer is the policy\'s');
}

const POLICY = `rules:
  - { name: bound, match: { event: bind }, action: { dscp: CS1 } }
`;

test('descriptor exhaustion: a user holding 21,000 connections gets its share; another user, root and the admin API are served', { timeout: 180_000 }, async () => {
  const d = await daemon(POLICY);
  const status = await callJson<{ agent_limits: { connections: number; perUser: number } }>(d.admin, 'GET', '/v1/status');
  const holders = [runAs(evil, ['hold', d.socket, '10500']), runAs(evil, ['hold', d.socket, '10500'])];
  try {
    for (const h of holders) assert.deepEqual(await h.next(), { attempted: 10500 });
    // every attempt was either kept (within the share) or refused by the daemon
    await waitFor('the daemon to account for 21,000 attempts', async () => {
      const s = await callJson<{ agents_by_uid: Record<string, number> }>(d.admin, 'GET', '/v1/status');
      return (s.agents_by_uid[evil.uid] ?? 0) + (await metric(d, 'qosd_agent_connections_refused_total')) >= 21_000;
    }, 250);
    const s = await callJson<{ agents_by_uid: Record<string, number> }>(d.admin, 'GET', '/v1/status');
    assert.equal(s.agents_by_uid[evil.uid], status.agent_limits.perUser, 'the user holds exactly its share');
    assert.equal(await metric(d, 'qosd_agent_connections_refused_total', 'per-user'), 21_000 - status.agent_limits.perUser);
    await goodUserAsks(d, 100, ['DSCP 8']);
    const root = new LineClient(d.socket);
    root.sock.write('Bind 1 0 x 3 {2 0.0.0.0 1}\n');
    assert.equal(await root.next(), 'DSCP 8', 'root is served');
    root.sock.destroy();
  } finally {
    for (const h of holders) await h.stop();
    await d.stop();
  }
});

test(`garbage: a connection is closed at its ${MAX_ERRORS}th malformed line; another user is answered throughout the flood; SIGTERM stops the daemon during it`, { timeout: 180_000 }, async () => {
  const d = await daemon(POLICY);
  const flood = runAs(evil, ['garbage', d.socket, '8']);
  try {
    assert.deepEqual(await flood.next(), { started: true });
    await waitFor('the flood to reach the daemon', async () => (await metric(d, 'qosd_errors_total', 'QOS_ERR_PROTOCOL')) > 100);
    await goodUserAsks(d, 300, ['DSCP 8']);
    const errorsSoFar = await metric(d, 'qosd_errors_total', 'QOS_ERR_PROTOCOL');
    // the daemon is asked to stop while the flood goes on: it does
    const exited = new Promise((r) => d.proc.once('exit', r));
    d.proc.kill('SIGTERM');
    await exited;
    await flood.stop();
    const { connections } = (await flood.next()) as { connections: number };
    assert.ok(errorsSoFar <= MAX_ERRORS * connections, `${errorsSoFar} malformed lines handled on ${connections} connections: at most ${MAX_ERRORS} each`);
    // (its last lines may still be on their way through the pipe at its exit)
    await waitFor('the daemon to say it stopped', () => /qosd stopped|stopping took too long/.test(d.log), 20, 10_000).catch(() => undefined);
    assert.match(d.log, /qosd stopped|stopping took too long/);
  } finally {
    await flood.stop();
    await d.stop();
  }
});

test('a Startup flood makes the daemon read a process from /proc once per connection, not once per line', { timeout: 120_000 }, async () => {
  const d = await daemon(POLICY);
  const before = await metric(d, 'qosd_identity_reads');
  const p = runAs(evil, ['startups', d.socket, '10', '4096']);
  assert.deepEqual(await p.next(), { done: 40960 });
  await p.stop();
  const reads = (await metric(d, 'qosd_identity_reads')) - before;
  assert.ok(reads >= 1 && reads <= 2 * 10, `${reads} identity reads for 10 connections of one process`);
  await goodUserAsks(d, 20, ['DSCP 8']);
  await d.stop();
});

test("one user's flood of Socket lines fills only its own share of the flow table; another user's decisions stay the same", { timeout: 120_000 }, async () => {
  // A socket rule decides the datagram socket; the default would only fill in for sockets
  // nothing decided, so the sendto after it gets nothing new, if the table still remembers it.
  const policy = 'default: { dscp: CS1 }\nrules:\n  - { name: dgram, match: { event: socket, type: dgram }, action: { dscp: CS2 } }\n';
  const d = await daemon(policy, ['--max-flows', '20000', '--max-flows-per-user', '5000']);
  const p = runAs(evil, ['sockets', d.socket, '25000']);
  assert.deepEqual(await p.next(), { answered: 25000 });
  await p.stop();
  const s = await callJson<{ flows: number }>(d.admin, 'GET', '/v1/status');
  assert.equal(s.flows, 5000, 'the flooding user kept its newest 5,000');
  assert.equal(await metric(d, 'qosd_flows_evicted'), 20000);
  // each round a datagram socket (the socket rule) and a datagram on it (nothing new)
  await goodUserAsks(d, 200, ['DSCP 16', ''], 'Socket 1 0 x 2 2 0 %d | SendTo 1 0 x %d {2 192.0.2.1 53}');
  await d.stop();
});

test('pid reuse: a connection kept by an heir of a dead process neither speaks for the new owner of the pid nor closes its flows', { timeout: 120_000 }, async () => {
  const d = await daemon(POLICY);
  // The attacker connects and announces itself, forks, and exits; its child keeps the
  // connection and waits for "go" on stdin.
  const attacker = spawn(asUser(evil, [PYTHON, '-c', HEIR, d.socket])[0]!, asUser(evil, [PYTHON, '-c', HEIR, d.socket]).slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  attacker.stdout!.setEncoding('utf8').on('data', (x: string) => (out += x));
  attacker.stderr!.setEncoding('utf8').on('data', (x: string) => (out += x));
  await waitFor("the attacker to fork and exit", () => /ready (\d+)/.test(out));
  const pid = Number(/ready (\d+)/.exec(out)![1]);
  await waitFor(`pid ${pid} to be free`, () => sh(['test', '-e', `/proc/${pid}`]).status !== 0);
  // The victim, a program of the good user, is given that pid.
  let victim: ChildProcess | null = null;
  for (let i = 0; i < 200 && !victim; i++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const v = spawn(asUser(good, [PYTHON, '-c', VICTIM, d.socket])[0]!, asUser(good, [PYTHON, '-c', VICTIM, d.socket]).slice(1), { stdio: ['pipe', 'pipe', 'ignore'] });
    if (v.pid === pid) victim = v;
    else { v.kill('SIGKILL'); await new Promise((r) => v.once('exit', r)); }
  }
  assert.ok(victim, `could not give pid ${pid} to the victim`);
  try {
    let vout = '';
    victim.stdout!.setEncoding('utf8').on('data', (x: string) => (vout += x));
    await waitFor('the victim to open its socket', () => vout.includes('ready'));
    const victimFlows = async () => (await callJson<{ pid: number; uid: number }[]>(d.admin, 'GET', '/v1/flows')).filter((f) => f.pid === pid && f.uid === good.uid).length;
    assert.equal(await victimFlows(), 1);
    // The heir speaks on the dead process's connection: Cleanup, a request, a Startup.
    attacker.stdin!.write('go\n');
    await waitFor('the heir to finish', () => out.includes('done'));
    assert.equal(await victimFlows(), 1, "the victim's flow is still there");
    const decisions = (await call(d.admin, 'GET', '/v1/decisions?limit=1000')).body.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pid: number; user: string; fd: number });
    assert.deepEqual(decisions.filter((r) => r.pid === pid && r.fd === 9), [], "the heir's request was not decided, as nobody");
    assert.match(out, /closed {2}done/, "the heir's connection was closed without an answer");
  } finally {
    victim.kill('SIGKILL');
    attacker.kill('SIGKILL');
    await d.stop();
  }
});

// The attacker: connect, announce, fork; the parent exits; the child waits, then speaks.
const HEIR = `
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
s.sendall(b'Startup %d 0 heir 1\\n' % os.getpid()); s.recv(100)
me = os.getpid()
if os.fork():
    os._exit(0)
os.setsid()
print('ready', me, flush=True)
sys.stdin.readline()
time.sleep(1.5)  # past the daemon's recheck of the connection's process (1 s): longer is fine
s.sendall(b'Startup %d 0 heir 1\\nBind %d 0 heir 9 {2 0.0.0.0 9}\\nCleanup %d 0 heir\\n' % (me, me, me))
data = b''
while True:
    d = s.recv(4096)
    if not d: break
    data += d
print('closed', data.decode(), 'done', flush=True)
`;
// The victim: announce, open a socket (a flow in the daemon), bind it, wait.
const VICTIM = `
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
s.sendall(b'Startup %d 0 victim 1\\nSocket %d 0 victim 2 1 0 5\\n' % (os.getpid(), os.getpid()))
got = b''
while got.count(b'\\n') < 2: got += s.recv(100)
print('ready', flush=True)
time.sleep(600)
`;

test('a process that changes its uid after connecting is decided by its new uid', { timeout: 60_000 }, async () => {
  const d = await daemon(`rules:\n  - { name: root-bind, match: { uid: 0, event: bind }, action: { dscp: EF } }\n  - { name: bind, match: { event: bind }, action: { dscp: CS1 } }\n`);
  // as root: ask, drop to the good user (all ids), wait past the daemon's recheck, ask again
  const py = `
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
def ask(fd):
    s.sendall(b'Bind %d 0 x %d {2 0.0.0.0 1}\\n' % (os.getpid(), fd)); r = b''
    while not r.endswith(b'\\n'): r += s.recv(100)
    return r.decode().split(' CACHE')[0].strip()
a = ask(3)
os.setgroups([]); os.setresgid(${good.gid}, ${good.gid}, ${good.gid}); os.setresuid(${good.uid}, ${good.uid}, ${good.uid})
time.sleep(1.5)
print(a, '|', ask(4))
`;
  const r = sh(['python3', '-c', py, d.socket]);
  assert.equal(r.stdout.trim(), 'DSCP 46 | DSCP 8', r.stderr);
  await d.stop();
});

test('the admin API answers root only: another user who reaches the socket gets 403 and exit 77; an admin group can be allowed', { timeout: 60_000 }, async () => {
  const d = await daemon(POLICY);
  // As if the user had connected while the mode was wrong: the socket opened to everyone.
  chmodSync(d.admin, 0o666);
  const r = sh(asUser(evil, [process.execPath, QOS_CLI, 'status', '--admin', d.admin]));
  assert.equal(r.status, 77, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`uid ${evil.uid} may not use the admin API`));
  const add = sh(asUser(evil, [process.execPath, QOS_CLI, 'rules', 'add', '--admin', d.admin, '--remote-port', '9', '--dscp', 'EF']));
  assert.equal(add.status, 77, 'nor change kernel rules');
  await d.stop();
  const g = await daemon(POLICY, ['--admin-group', String(good.gid)]);
  assert.equal(sh(['stat', '-c', '%a %g', g.admin]).stdout.trim(), `660 ${good.gid}`);
  assert.equal(sh(asUser(good, [process.execPath, QOS_CLI, 'status', '--admin', g.admin, '--json'])).status, 0, 'a member of the admin group is served');
  chmodSync(g.admin, 0o666);
  assert.equal(sh(asUser(evil, [process.execPath, QOS_CLI, 'status', '--admin', g.admin])).status, 77, 'a non-member is not');
  await g.stop();
});

test('a follower that stops reading costs the daemon at most its buffer: decisions are dropped, counted and announced', { timeout: 180_000 }, async () => {
  const d = await daemon(POLICY);
  const rss = async () => (await callJson<{ memory: { rss: number } }>(d.admin, 'GET', '/v1/status')).memory.rss;
  // A follower that reads nothing (its socket paused from the start).
  let received = '';
  let follower: IncomingMessage | null = null;
  const req = request({ socketPath: d.admin, path: '/v1/decisions?follow=1&limit=1' }, (res) => { res.pause(); follower = res; });
  req.end();
  await waitFor('the follower to be connected', () => follower !== null);
  const before = await rss();
  const c = new LineClient(d.socket);
  const N = 300_000;
  for (let sent = 0; sent < N; sent += 10_000) {
    c.sock.write(Array.from({ length: 10_000 }, (_, i) => `Bind 1 0 x ${3 + ((sent + i) % 50000)} {2 0.0.0.0 1}\n`).join(''));
    for (let i = 0; i < 10_000; i++) await c.next();
  }
  c.sock.destroy();
  const grew = (await rss()) - before;
  const dropped = await metric(d, 'qosd_follower_decisions_dropped_total');
  assert.ok(dropped > N / 2, `${dropped} decisions dropped for the stalled follower`);
  assert.ok(grew < 64 * 2 ** 20, `the daemon grew by ${(grew / 2 ** 20).toFixed(0)} MiB while ${N} decisions went unread`);
  // The follower reads again: it is told how many it missed.
  follower!.setEncoding('utf8');
  follower!.on('data', (x: string) => (received += x));
  follower!.resume();
  await waitFor('the notice of dropped decisions', () => /"dropped":\d+/.test(received));
  req.destroy();
  await d.stop();
});

test('a large policy is read, checked and compiled off the event loop: agents are answered while it loads', { timeout: 180_000 }, async () => {
  const d = await daemon(POLICY);
  // 25,000 rules (JSON: a YAML document that size is refused, docs/policy.md): a second or
  // more of parsing, checking and compiling on this machine
  const rules = [{ name: 'bound', match: { event: 'bind' }, action: { dscp: 'CS1' } },
    ...Array.from({ length: 25_000 }, (_, i) => ({ name: `r${i}`, match: { event: 'connect', remote_port: 1000 + (i % 60_000) }, action: { dscp: 'AF41' } }))];
  writeFileSync(d.policyFile, JSON.stringify({ rules }));
  const c = new LineClient(d.socket);
  let reloaded = false, answeredDuring = 0;
  const reload = callJson<{ ok: boolean; rules: number }>(d.admin, 'POST', '/v1/reload', undefined, 120_000).then((r) => { reloaded = true; return r; });
  for (let fd = 3; !reloaded; fd++) {
    c.sock.write(`Bind 1 0 x ${fd} {2 0.0.0.0 1}\n`);
    assert.equal(await c.next(), 'DSCP 8');
    if (!reloaded) answeredDuring++;
  }
  c.sock.destroy();
  const r = await reload;
  assert.deepEqual(r, { ok: true, rules: 25_001 });
  // parsing took seconds here; an event loop busy with it would have answered a handful at most
  assert.ok(answeredDuring >= 50, `${answeredDuring} answers while the policy loaded`);
  await d.stop();
});
