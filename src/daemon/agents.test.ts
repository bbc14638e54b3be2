/* The agent socket's protocol duties that no hostile user is needed for. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson } from './admin-client.js';
import { DaemonChild } from './child.js';
import { LineClient } from './line-client.js';

test('notifications an agent sends just before closing its connection are handled: the flows they close are gone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-agents-'));
  const d = await new DaemonChild(dir, 'rules: []\n', ['--kernel', 'off', '--nice', 'keep']).start();
  try {
    const mine = async () => (await callJson<{ pid: number; fd: number }[]>(d.admin, 'GET', '/v1/flows')).filter((f) => f.pid === process.pid && f.fd < 100).map((f) => f.fd).sort((a, b) => a - b);
    for (let round = 0; round < 20; round++) {
      const c = new LineClient(d.socket);
      c.sock.write('Socket 1 0 x 2 1 0 3\nSocket 1 0 x 2 1 0 4\n');
      await c.next();
      await c.next();
      assert.deepEqual(await mine(), [3, 4]);
      // Another connection of the same user has 1,000 questions waiting, more than the user's
      // share of a turn: the Close below waits behind them for a background turn...
      const busy = new LineClient(d.socket);
      busy.sock.write(Array.from({ length: 1000 }, (_, i) => `Bind 1 0 x ${100 + i} {2 0.0.0.0 1}\n`).join(''));
      // ... and is sent with the connection's end, as an exiting agent sends its Cleanup
      c.sock.end('Close 1 0 x 3\n');
      await c.next(); // the daemon's end
      for (let i = 0; i < 1000; i++) await busy.next();
      busy.sock.destroy();
      assert.deepEqual(await mine(), [4], `round ${round}: the Close sent before the end was handled`);
      const c2 = new LineClient(d.socket);
      c2.sock.end('Close 1 0 x 4\n');
      await c2.next();
    }
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replies a client does not read for a while fill its socket and wait in the daemon: every one arrives, in order, once it reads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-agents-'));
  const policy = 'rules:\n  - { name: one, match: { event: connect, remote_port: 1 }, action: { dscp: EF } }\n'
    + '  - { name: two, match: { event: connect, remote_port: 2 }, action: { dscp: AF41 } }\n';
  const d = await new DaemonChild(dir, policy, ['--kernel', 'off', '--nice', 'keep']).start();
  try {
    const n = 20_000;
    const c = new LineClient(d.socket);
    c.sock.pause(); // replies pile up: the kernel's socket buffer first (~200 KB), then the daemon's queue
    c.sock.write(Array.from({ length: n }, (_, i) => `Connect 1 0 x ${10 + i} {2 192.0.2.1 ${1 + (i % 2)}} {} {}\n`).join(''));
    // the daemon has answered them all when its decision count says so
    for (let t = 0; ; t++) {
      const s = await callJson<{ decisions_total: number }>(d.admin, 'GET', '/v1/status');
      if (s.decisions_total >= n) break;
      assert.ok(t < 600, `the daemon answered ${s.decisions_total} of ${n} in 60 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    c.sock.resume();
    for (let i = 0; i < n; i++) {
      const line = await c.next();
      assert.match(line ?? 'closed', i % 2 ? /^DSCP 34 CACHE \d+$/ : /^DSCP 46 CACHE \d+$/, `reply ${i}`);
    }
    c.sock.destroy();
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
