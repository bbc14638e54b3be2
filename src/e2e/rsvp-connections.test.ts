/* `qos rsvp connections` across network namespaces and users: a program in its own network
 * namespace is found by pid with its sockets read from that namespace's tables (not this
 * one's) and the RTT of its TCP connection from ss run there; a user who may not read another
 * user's processes gets the processes skipped, not an error. Run it under
 * `flock /tmp/qosd-e2e.lock`: other end-to-end tests use this machine too. */

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { removeNamespace, removeStale, must } from '../demo/net.js';
import { start, type Child } from '../exec.js';
import { requireTools } from '../prerequisites.js';
import { connections, parseProcNet, type Connection } from '../rsvp/connections.js';
import { QOS, requireE2e, sh } from './harness.js';

requireE2e();
requireTools('ss', 'nsenter', 'setpriv');

const PREFIX = 'qconn';
const NS = `${PREFIX}${process.pid}-a`;
const children: Child[] = [];

// a TCP listener and a connection to it, and UDP connected to 127.0.0.1:5004; prints the
// ports once all are up, then waits to be killed
const CHILD = `
const net = require('node:net'), dgram = require('node:dgram');
const s = net.createServer().listen(0, '127.0.0.1', () => {
  const c = net.connect(s.address().port, '127.0.0.1', () => {
    c.write('x'.repeat(65536));
    const u = dgram.createSocket('udp4');
    u.connect(5004, '127.0.0.1', () => setTimeout(() => console.log(JSON.stringify({ tcp: s.address().port, client: c.localPort, udp: u.address().port })), 100));
  });
});
setInterval(() => {}, 1000);`;

after(async () => {
  for (const c of children) await c.stop().catch(() => undefined);
  removeNamespace(NS);
});

async function program(netns?: string): Promise<{ pid: number; ports: { tcp: number; client: number; udp: number } }> {
  const c = start([process.execPath, '-e', CHILD], { ...(netns ? { netns } : {}), keepStdout: true, name: 'socket holder' });
  children.push(c);
  await c.until('}', 10_000, 'stdout');
  return { pid: c.proc.pid!, ports: JSON.parse(c.stdout) as { tcp: number; client: number; udp: number } };
}

test('a program in another network namespace: its sockets from its own tables, its TCP RTT from ss run there', async () => {
  removeStale(PREFIX);
  must(['ip', 'netns', 'add', NS]);
  must(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
  const { pid, ports } = await program(NS);
  const list = await connections({ pid });
  const row = (proto: string, lport: number) => list.find((c) => c.proto === proto && c.lport === lport);
  assert.equal(row('tcp', ports.tcp)?.state, 'LISTEN', JSON.stringify(list));
  const client = row('tcp', ports.client);
  assert.ok(client && client.remote === '127.0.0.1' && client.rport === ports.tcp && client.state === 'ESTAB', JSON.stringify(client));
  assert.ok(typeof client.rttS === 'number' && client.rttS > 0 && client.rttS < 1, `the RTT from ss in its namespace: ${client.rttS}`);
  assert.deepEqual(row('udp', ports.udp) && { ...row('udp', ports.udp)!, inode: 0 }, { proto: 'udp', local: '127.0.0.1', lport: ports.udp, remote: '127.0.0.1', rport: 5004, state: 'ESTAB', inode: 0, pid, program: 'node', rttS: null });
  // not in this namespace's tables: they were read from the program's
  const here = new Set([...parseProcNet(readFileSync('/proc/self/net/tcp', 'utf8'), 'tcp'), ...parseProcNet(readFileSync('/proc/self/net/udp', 'utf8'), 'udp')].map((s) => s.inode));
  assert.ok(list.every((c) => !here.has(c.inode)), 'its sockets are not in this namespace');

  const r = sh([process.execPath, QOS, 'rsvp', 'connections', '--pid', String(pid), '--proto', 'tcp', '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as Connection[]).map((c) => c.lport).sort(), [ports.tcp, ports.client, ports.tcp].sort(), 'the listener and both ends');
});

test('a user who may not read root\'s processes: they are skipped, the command exits 0 with its message', async () => {
  const { pid, ports } = await program();
  assert.ok((await connections({ peer: '127.0.0.1', proto: 'udp' })).some((c) => c.pid === pid && c.lport === ports.udp), 'root sees it');
  const r = sh(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, QOS, 'rsvp', 'connections', '--pid', String(pid)]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^no TCP or UDP connections for process \d+ \(other users' processes are seen by root only\)/);
  const peer = sh(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, QOS, 'rsvp', 'connections', '--peer', '127.0.0.1', '--json']);
  assert.equal(peer.status, 0, peer.stderr);
  assert.ok((JSON.parse(peer.stdout) as Connection[]).every((c) => c.pid !== pid), 'root\'s process is not listed');
});
