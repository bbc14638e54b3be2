/* `qos rsvp connections` as a user runs it (the real dist/cli/main.js) against a child process
 * holding a TCP connection and a connected UDP socket: the table, --json, usage errors (exit
 * 64) and no match (a message, exit 0). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { QOS_CLI } from '../daemon/child.js';
import type { Connection } from '../rsvp/connections.js';
import { formatConnections } from './commands/rsvp-connections.js';

const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, 'rsvp', 'connections', ...args], { encoding: 'utf8', timeout: 60_000 });

// a TCP listener and a connection to it on ::1, and UDP connected to 127.0.0.1:5004; prints
// the ports once all are up, then waits to be killed
const CHILD = `
const net = require('node:net'), dgram = require('node:dgram');
const s = net.createServer().listen(0, '::1', () => {
  const c = net.connect(s.address().port, '::1', () => {
    c.write('x'.repeat(65536));
    const u = dgram.createSocket('udp4');
    u.connect(5004, '127.0.0.1', () => setTimeout(() => console.log(JSON.stringify({ tcp: s.address().port, client: c.localPort, udp: u.address().port })), 50));
  });
});
setInterval(() => {}, 1000);`;

test('qos rsvp connections --pid: a table with the program, both ends and the RTT; --json the same sockets; --peer and --proto narrow it', async (t) => {
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const ports = JSON.parse(line.toString()) as { tcp: number; client: number; udp: number };
  const pid = String(child.pid);

  const r = qos('--pid', pid);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^PROGRAM +PID +PROTO +LOCAL +REMOTE +STATE +RTT$/);
  assert.ok(lines.some((l) => new RegExp(`^node +${pid} +tcp +\\[::1\\]:${ports.tcp} +\\* +LISTEN +-$`).test(l)), r.stdout);
  assert.ok(lines.some((l) => new RegExp(`^node +${pid} +tcp +\\[::1\\]:${ports.client} +\\[::1\\]:${ports.tcp} +ESTAB +[\\d.]+ms$`).test(l)), r.stdout);
  assert.ok(lines.some((l) => new RegExp(`^node +${pid} +udp +127\\.0\\.0\\.1:${ports.udp} +127\\.0\\.0\\.1:5004 +ESTAB +-$`).test(l)), r.stdout);
  assert.equal(lines.length, 1 + 4, 'the header, the listener, both ends of the connection, the UDP socket');

  const j = qos('--pid', pid, '--json');
  assert.equal(j.status, 0, j.stderr);
  const list = JSON.parse(j.stdout) as Connection[];
  assert.equal(list.length, 4);
  const udp = list.find((c) => c.proto === 'udp')!;
  assert.deepEqual({ ...udp, inode: 0 }, { proto: 'udp', local: '127.0.0.1', lport: ports.udp, remote: '127.0.0.1', rport: 5004, state: 'ESTAB', inode: 0, pid: child.pid, program: 'node', rttS: null });

  const peer = JSON.parse(qos('--peer', '127.0.0.1', '--pid', pid, '--json').stdout) as Connection[];
  assert.deepEqual(peer.map((c) => c.lport), [ports.udp], 'with the peer 127.0.0.1: the UDP socket only');
  const tcp = JSON.parse(qos('--program', 'node', '--proto', 'tcp', '--peer', '::1', '--json').stdout) as Connection[];
  assert.deepEqual(tcp.filter((c) => c.pid === child.pid).map((c) => c.lport).sort(), [ports.client, ports.tcp].sort(), 'by program, peer and protocol: both ends');
});

test('qos rsvp connections: none of --pid, --program, --peer, or a bad option, is a usage error (64); no match is a message and exit 0', () => {
  const none = qos();
  assert.equal(none.status, 64);
  assert.match(none.stderr, /needs --pid, --program or --peer/);
  assert.equal(qos('--pid', 'x').status, 64);
  assert.match(qos('--peer', 'a.b').stderr, /IPv4 or IPv6 address, not "a.b"/);
  assert.match(qos('--pid', '1', '--proto', 'icmp').stderr, /tcp or udp, not "icmp"/);
  const empty = qos('--program', 'no-such-program-here');
  assert.equal(empty.status, 0, empty.stderr);
  assert.match(empty.stdout, /^no TCP or UDP connections for program no-such-program-here/);
  const json = qos('--program', 'no-such-program-here', '--proto', 'udp', '--json');
  assert.equal(json.status, 0);
  assert.equal(json.stdout, '[]\n');
  assert.match(json.stderr, /no udp connections for program no-such-program-here/);
});

test('the table: IPv6 in brackets, * for no peer, RTT in milliseconds', () => {
  const c: Connection = { proto: 'tcp', local: 'fd00::1', lport: 50000, remote: 'fd00::2', rport: 22, state: 'ESTAB', inode: 1, pid: 7, program: 'ssh', rttS: 0.0125 };
  assert.equal(formatConnections([c, { ...c, proto: 'udp', local: '0.0.0.0', lport: 5353, remote: null, rport: null, state: 'UNCONN', rttS: null }]), [
    'PROGRAM  PID  PROTO  LOCAL            REMOTE        STATE   RTT',
    'ssh      7    tcp    [fd00::1]:50000  [fd00::2]:22  ESTAB   12.5ms',
    'ssh      7    udp    0.0.0.0:5353     *             UNCONN  -',
  ].join('\n'));
});
