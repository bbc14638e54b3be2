/* `qos try` shows qosd at work with no internet: curl under the agent to a local server, the
 * decision, and the DS field of curl's packets as tcpdump saw them on lo. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { requireRoot, requireTools } from '../prerequisites.js';
import type { TryReport } from './try.js';

requireRoot('qos try captures on lo');
requireTools('tcpdump', 'curl');

const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, QOSD_SOCKET: '/nonexistent/agent.sock' } });
const tempDirs = () => readdirSync(tmpdir()).filter((f) => f.startsWith('qos-try-')).sort();

test('with no daemon running: a temporary one with the built-in policy; curl\'s packets carry AF31 on the wire; nothing is left behind', () => {
  const before = tempDirs();
  // a port of the built-in policy (RTSP control, AF31); the admin socket of no daemon
  const r = qos('try', '--json', '--admin', '/nonexistent/admin.sock', '--port', '554');
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const t = JSON.parse(r.stdout) as TryReport;
  assert.equal(t.daemon.running, false);
  assert.equal(t.program.http, '200');
  assert.deepEqual(t.decisions.filter((d) => d.event === 'connect').map((d) => [d.rule, d.class]), [['streaming-control', 'AF31']]);
  assert.ok(t.wire.packets >= 3, `packets ${t.wire.packets}`);
  assert.deepEqual(t.wire.dscp, { AF31: t.wire.packets }, 'every packet curl sent, the SYN first, is AF31');
  assert.equal(t.wire.syn_dscp, 26);
  assert.deepEqual(tempDirs(), before, 'the temporary daemon\'s directory is gone');
  const human = qos('try', '--admin', '/nonexistent/admin.sock');
  assert.equal(human.status, 0, human.stderr);
  assert.match(human.stdout, /rule streaming-control: AF31/);
  assert.match(human.stdout, /^ok: marked as the policy decided/m);
});

test('with a daemon running: its policy decides, and a port no rule takes is left unmarked, as decided', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-try-test-'));
  const d = await new DaemonChild(dir, 'rules:\n  - { name: try-ef, match: { remote_port: 8541 }, action: { dscp: EF } }\n', ['--kernel', 'off', '--nice', 'keep']).start();
  try {
    const r = qos('try', '--json', '--admin', d.admin, '--port', '8541');
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const t = JSON.parse(r.stdout) as TryReport;
    assert.equal(t.daemon.running, true);
    assert.equal(t.daemon.socket, d.socket);
    assert.deepEqual(t.wire.dscp, { EF: t.wire.packets });
    const other = JSON.parse(qos('try', '--json', '--admin', d.admin, '--port', '8542').stdout) as TryReport;
    assert.equal(other.ok, true);
    assert.deepEqual(other.wire.dscp, { CS0: other.wire.packets });
    assert.match(other.summary, /left unmarked/);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(existsSync(join(dir, 'agent.sock.gen')), false);
});

test('a port in use is a clear error, exit 69', async () => {
  const { createServer } = await import('node:net');
  const s = createServer().listen(8543, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  try {
    const r = qos('try', '--admin', '/nonexistent/admin.sock', '--port', '8543');
    assert.equal(r.status, 69);
    assert.match(r.stderr, /127\.0\.0\.1:8543 is in use: choose another port with --port/);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  } finally {
    s.close();
  }
});
