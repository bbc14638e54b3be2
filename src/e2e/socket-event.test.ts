/* A policy that decides at the socket event reaches sockets whose other calls the agent never
 * sees: a socket made with libc's socket() and connected through io_uring or a raw
 * syscall(SYS_connect) (agent/test/uring_connect.c) is marked from its SYN when a rule names
 * `event: socket`, and the daemon hears of it; the agent asks at socket() only then (the
 * daemon publishes it beside the generation), so a policy without such a rule costs socket()
 * nothing and leaves those sockets alone. The program sees the same with and without the agent. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, callJson } from '../daemon/admin-client.js';
import { AGENT_TEST_BIN, requireE2e, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e();
let tb: Testbed;
let daemon: TestDaemon;
const uring = join(AGENT_TEST_BIN, 'uring_connect');
const loop = join(AGENT_TEST_BIN, 'connect_loop');
const ownMark = join(AGENT_TEST_BIN, 'own_mark');
const PORT = 7601, UDP_A = 7602, UDP_B = 7603;

// No rule names the socket event: the exe rule is decided with a socket's first libc call.
const WITHOUT = `
rules:
  - { name: uring-any, match: { exe: "*/uring_connect" }, action: { dscp: AF11 } }
`;
const WITH = `
rules:
  - { name: uring-socket, match: { event: socket, exe: "*/uring_connect" }, action: { dscp: EF } }
  - { name: loop-socket, match: { event: socket, exe: "*/connect_loop" }, action: { dscp: AF41 } }
  - { name: no-inet6, match: { event: socket, exe: "*/own_mark", family: inet6 }, action: { deny: EACCES } }
  - { name: own-socket, match: { event: socket, exe: "*/own_mark" }, action: { dscp: CS3 } }
`;

interface Decision { event: string; exe: string; rule: string | null; cached: boolean; pid: number }

async function decisions(exe: string): Promise<Decision[]> {
  const r = await call(daemon.admin, 'GET', '/v1/decisions?limit=1000');
  return r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Decision).filter((d) => d.exe.endsWith(`/${exe}`));
}

async function usePolicy(text: string): Promise<void> {
  writeFileSync(daemon.policyFile, text);
  const r = await callJson<{ ok: boolean }>(daemon.admin, 'POST', '/v1/reload');
  assert.equal(r.ok, true);
}

before(async () => {
  tb = new Testbed();
  daemon = await new TestDaemon(tb.dir, WITHOUT).start();
  await tb.sink(PORT);
  await tb.udpSink([UDP_A, UDP_B]);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

const SYN = `tcp and dst port ${PORT} and tcp[tcpflags] & tcp-syn != 0`;

test('without a rule naming the socket event, a socket connected through io_uring is left alone and the daemon is not asked', async () => {
  await usePolicy(WITHOUT);
  const cap = await tb.capture(SYN);
  const r = tb.inClient(daemon.run(uring, 'uring', tb.serverIp, String(PORT)));
  assert.equal(r.stdout, 'connect = 0\n', r.stderr);
  assert.deepEqual((await cap.packets()).map((p) => p.dscp), [0]);
  assert.deepEqual(await decisions('uring_connect'), [], 'socket() was not asked about; connect went past libc');
});

for (const how of ['uring', 'syscall'] as const) {
  test(`a rule on the socket event marks a socket connected through ${how === 'uring' ? 'io_uring' : 'syscall(SYS_connect)'} from its SYN; the program sees the same`, async () => {
    await usePolicy(WITH);
    const runs = await daemon.threeWays(tb, [uring, how, tb.serverIp, String(PORT)], `tcp and dst port ${PORT}`);
    for (const r of Object.values(runs)) assert.equal(r.stdout, 'connect = 0\n', r.stderr);
    const agent = runs.agent.packets;
    assert.equal(agent.filter((p) => p.syn).length, 1);
    assert.deepEqual([...new Set(agent.map((p) => p.dscp))], [46], 'SYN, data and FIN: EF');
    assert.deepEqual([...new Set(runs.noDaemon.packets.map((p) => p.dscp))], [0]);
    assert.deepEqual([...new Set(runs.plain.packets.map((p) => p.dscp))], [0]);
    const seen = await decisions('uring_connect');
    const last = seen.filter((d) => d.pid === seen.at(-1)!.pid);
    assert.deepEqual(last.map((d) => `${d.event}:${d.rule}`), ['socket:uring-socket'], 'the daemon heard of the socket, at socket()');
  });
}

test('with a rule on the socket event, later sockets of a thread are decided from its cache: one question for the first socket, one for the first connect', async () => {
  await usePolicy(WITH);
  const N = 20;
  const cap = await tb.capture(SYN);
  const r = tb.inClient(daemon.run(loop, tb.serverIp, String(PORT), String(N), '1'));
  assert.equal(r.stdout.trim(), `ok=${N} fail=0`, r.stderr);
  assert.deepEqual((await cap.packets()).map((p) => p.dscp), new Array(N).fill(34), 'every SYN AF41');
  // a cached socket or connect is a record in the connection's ring, read within 50 ms (or
  // later on a loaded machine), not before the program exits: count once all 2N are heard of
  let seen: Decision[] = [];
  await waitFor(`the daemon to hear of ${N} sockets and ${N} connects`, async () => (seen = await decisions('connect_loop')).length >= 2 * N);
  const count = (event: string, cached: boolean) => seen.filter((d) => d.event === event && d.cached === cached).length;
  assert.deepEqual([count('socket', false), count('socket', true)], [1, N - 1]);
  assert.deepEqual([count('connect', false), count('connect', true)], [1, N - 1]);
});

test('a socket decision marks every destination of a datagram socket; a DENY on the socket event fails socket() itself', async () => {
  await usePolicy(WITH);
  const cap = await tb.capture(`udp and (dst port ${UDP_A} or dst port ${UDP_B})`);
  const r = tb.inClient(daemon.run(ownMark, tb.serverIp, tb.serverIp6, 'udp4', `sendto=4:${UDP_A}`, `sendto=4:${UDP_B}`, `sendto=4:${UDP_A}`, 'udp6'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^udp6 = -1 errno 13$/m, 'EACCES from socket()');
  assert.deepEqual((await cap.packets()).map((p) => [p.dstPort, p.dscp]), [[UDP_A, 24], [UDP_B, 24], [UDP_A, 24]]);
});

test('a daemon that stops removes its generation file; a program that outlives it gets its decisions cached by the next daemon', async () => {
  // The agent maps <socket>.gen; a stop writes zeros into it and removes it. The next daemon
  // makes a new file, which the agent maps after that daemon's first answer.
  const dir = join(tb.dir, 'restart');
  mkdirSync(dir);
  const first = new TestDaemon(dir, WITHOUT);
  const step = (n: number) => join(dir, `go${n}`), done = (n: number) => join(dir, `done${n}`);
  const N = 10;
  // the second phase connects until told to stop: the agent waits out its back-off (the
  // daemon was gone) before it asks again
  const py = `import os, socket, time
while not os.path.exists('${dir}/go1'): time.sleep(0.02)
for i in range(${N}): socket.create_connection(('${tb.serverIp}', ${PORT})).close()
open('${dir}/done1', 'w').close()
while not os.path.exists('${dir}/go2'): time.sleep(0.02)
while not os.path.exists('${dir}/done2'):
    socket.create_connection(('${tb.serverIp}', ${PORT})).close()
    time.sleep(0.005)`;
  await first.start();
  const p = tb.start(first.run('python3', '-c', py), tb.client);
  const connects = async (d: TestDaemon): Promise<[number, number]> => {
    const r = await call(d.admin, 'GET', '/v1/decisions?limit=1000');
    const c = r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Decision).filter((x) => x.event === 'connect');
    return [c.filter((x) => !x.cached).length, c.filter((x) => x.cached).length];
  };
  let second: TestDaemon | null = null;
  try {
    writeFileSync(step(1), '');
    await waitFor('the first connects', () => existsSync(done(1)) || p.exitCode !== null);
    // a cached connect is a record in the connection's ring, read within 50 ms (or later on a
    // loaded machine): the count is asserted once every connect has been heard of
    const d1 = first;
    await waitFor('the first daemon to hear of every connect', async () => (await connects(d1)).reduce((a, b) => a + b) >= N || p.exitCode !== null);
    assert.deepEqual(await connects(first), [1, N - 1]);
    await first.stop();
    assert.equal(existsSync(`${first.socket}.gen`), false, 'no generation file left behind');
    second = new TestDaemon(dir, WITHOUT);
    await second.start();
    writeFileSync(step(2), '');
    const d2 = second;
    await waitFor('the second daemon to hear of connects', async () => (await connects(d2)).reduce((a, b) => a + b) >= N || p.exitCode !== null);
    writeFileSync(done(2), '');
    assert.equal(p.exitCode, null, 'the program is still running');
    const [asked, cached] = await connects(second);
    assert.equal(asked, 1, 'asked once, then cached again under the new daemon\'s generation');
    assert.ok(cached >= N - 1, `cached ${cached}`);
  } finally {
    p.kill();
    await first.stop();
    await second?.stop();
  }
});

test('a program whose first socket came before the daemon started still gets its decisions cached once the daemon is up', async () => {
  // The generation file is looked at on a process's first inet socket; when there is none yet,
  // it is looked at again after the daemon's first answer.
  const dir = join(tb.dir, 'late');
  mkdirSync(dir);
  const late = new TestDaemon(dir, WITHOUT);
  const go = join(dir, 'go'), done = join(dir, 'done');
  const N = 10;
  const py = `import os, socket, time
socket.socket().close()
while not os.path.exists('${go}'): time.sleep(0.02)
for i in range(${N}): socket.create_connection(('${tb.serverIp}', ${PORT})).close()
open('${done}', 'w').close()`;
  const p = tb.start(late.run('python3', '-c', py), tb.client);
  try {
    await late.start();
    writeFileSync(go, '');
    await waitFor('the program\'s connects', () => existsSync(done) || p.exitCode !== null);
    // the cached connects are records in the connection's ring, read after the program wrote
    // done (within 50 ms, or later on a loaded machine): count once all N are heard of
    let connects: Decision[] = [];
    await waitFor(`the daemon to hear of ${N} connects`, async () => {
      const r = await call(late.admin, 'GET', '/v1/decisions?limit=1000');
      connects = r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Decision).filter((d) => d.event === 'connect');
      return connects.length >= N || p.exitCode !== null && p.exitCode !== 0;
    });
    assert.deepEqual([connects.filter((d) => !d.cached).length, connects.filter((d) => d.cached).length], [1, N - 1]);
  } finally {
    await late.stop();
  }
});
