/* JavaScript policy scripts under a real agent: the shipped example (at most two EF flows per
 * user) decides for real programs, checked on the wire. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { e2eUnavailable, ROOT, TestDaemon, Testbed } from './harness.js';

const skip: string | false = e2eUnavailable() ?? false;
let tb: Testbed;
let daemon: TestDaemon;
const PORT = 7400;

before(async () => {
  if (skip) return;
  tb = new Testbed();
  const dir = join(tb.dir, 'ef');
  mkdirSync(dir);
  copyFileSync(join(ROOT, 'examples/ef-per-user/policy.js'), join(dir, 'policy.js'));
  daemon = await new TestDaemon(dir, readFileSync(join(ROOT, 'examples/ef-per-user/policy.yaml'), 'utf8')).start();
  tb.start([process.execPath, '-e', `require('net').createServer((s) => s.resume()).listen(${PORT})`], tb.server);
  await tb.waitListening(PORT);
});

after(async () => {
  if (skip) return;
  await daemon.stop();
  tb.cleanup();
});

// Opens n connections one after another and holds them all open, then closes them.
const holder = (n: number, tag: string) => ['python3', '-c', `
import socket, sys
held = [socket.create_connection(("${tb.serverIp}", ${PORT})) for _ in range(${n})]
print(" ".join(str(s.getsockname()[1]) for s in held))
`, tag];

test('examples/ef-per-user: two EF flows per user at a time, the third gets AF41; others fall to the rules', { skip }, async () => {
  const cap = await tb.capture(`tcp dst port ${PORT} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn`);
  const media = tb.inClient(daemon.run(...holder(3, 'media')));
  assert.equal(media.status, 0, media.stderr);
  const ports = media.stdout.trim().split(' ').map(Number);
  // Those three are closed now: the next media program gets EF again.
  const again = tb.inClient(daemon.run(...holder(1, 'media')));
  const other = tb.inClient(daemon.run(...holder(1, 'plain')));
  const pkts = await cap.packets();
  const dscpOf = (port: number) => pkts.find((p) => p.srcPort === port)?.dscp;
  assert.deepEqual(ports.map(dscpOf), [46, 46, 34]);
  assert.equal(dscpOf(Number(again.stdout.trim())), 46, 'flows closed: EF again');
  assert.equal(dscpOf(Number(other.stdout.trim())), 0, 'not a media program: no rule matches, unmarked');
});
