/* Connection discovery: the /proc/net tables and ss's round-trip times from fixture text, and
 * this test process's own TCP and UDP sockets (IPv4 and IPv6) found by pid, program and peer. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { requireTools } from '../prerequisites.js';
import { canonicalAddress, connections, parseProcNet, parseSsRtt } from './connections.js';

requireTools('ss'); // the round-trip times of this process's own connections

// little-endian words, as an x86 or arm64 kernel prints them
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1579 1 00000000117c51dd 100 0 0 10 0
   1: 0100000A:9C40 1401A8C0:01BB 01 00000000:00000000 02:000A7B30 00000000  1000        0 84632857 2 0000000000000000 20 4 30 10 -1
   2: 0100007F:A1B2 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 000000FD000000000000000001000000:C350 000000FD000000000000000002000000:0016 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 0 10 -1
   1: 0000000000000000FFFF00000100000A:1F90 0000000000000000FFFF00000200000A:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 0 10 -1
   2: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
`;
const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  210: 0100000A:9C40 0200000A:138C 01 00000000:00000000 00:00000000 00000000  1000        0 5151 2 0000000000000000 0
  300: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000   104        0 5252 2 0000000000000000 0
`;

test('/proc/net tables: addresses from their host-order words, ports, states as ss names them; no peer is null; TIME-WAIT (inode 0) left out', () => {
  assert.deepEqual(parseProcNet(TCP, 'tcp', true), [
    { proto: 'tcp', local: '0.0.0.0', lport: 8080, remote: null, rport: null, state: 'LISTEN', inode: 1579 },
    { proto: 'tcp', local: '10.0.0.1', lport: 40000, remote: '192.168.1.20', rport: 443, state: 'ESTAB', inode: 84632857 },
  ]);
  assert.deepEqual(parseProcNet(TCP6, 'tcp', true), [
    { proto: 'tcp', local: 'fd00::1', lport: 50000, remote: 'fd00::2', rport: 22, state: 'ESTAB', inode: 4242 },
    { proto: 'tcp', local: '10.0.0.1', lport: 8080, remote: '10.0.0.2', rport: 54321, state: 'ESTAB', inode: 4343 },
    { proto: 'tcp', local: '::', lport: 80, remote: null, rport: null, state: 'LISTEN', inode: 4444 },
  ], 'IPv4-mapped addresses as IPv4: what goes on the wire');
  assert.deepEqual(parseProcNet(UDP, 'udp', true), [
    { proto: 'udp', local: '10.0.0.1', lport: 40000, remote: '10.0.0.2', rport: 5004, state: 'ESTAB', inode: 5151 },
    { proto: 'udp', local: '0.0.0.0', lport: 5353, remote: null, rport: null, state: 'UNCONN', inode: 5252 },
  ]);
  // a big-endian machine prints the words as they are
  assert.deepEqual(parseProcNet('   0: 0A000001:9C40 C0A80114:01BB 01 00000000:00000000 00:00000000 00000000 0 0 77 1\n', 'tcp', false)[0],
    { proto: 'tcp', local: '10.0.0.1', lport: 40000, remote: '192.168.1.20', rport: 443, state: 'ESTAB', inode: 77 });
  assert.deepEqual(parseProcNet('garbage\n   0: 0100:1 x 01 0 0 0 0 0 9 1\n', 'tcp', true), []);
});

test('ss -tinHe: the smoothed RTT by inode, in seconds, not mrtt or rcv_rtt', () => {
  const ss = `ESTAB 34464  0      127.0.0.1:39225 127.0.0.1:52282 ino:84632858 sk:145d cgroup:/ <->
\t ts sack bbr wscale:10,10 rto:200 bbr:(bw:0bps,mrtt:0.029) rtt:12.5/6.25 ato:40 mss:32768 rcv_rtt:0.062 minrtt:0.029
ESTAB 0      0      [fd00::1]:50000 [fd00::2]:22 ino:4242 sk:145e cgroup:/ <->
\t ts sack cubic wscale:7,7 rto:204 rtt:0.186/0.302 mss:47616
SYN-SENT 0 1 10.0.0.1:40001 10.0.0.9:80 ino:99 sk:1 <->
\t cubic rto:1000 backoff:1
`;
  assert.deepEqual([...parseSsRtt(ss)], [[84632858, 0.0125], [4242, 0.000186]]);
  assert.equal(parseSsRtt('').size, 0);
});

test('a peer given as IPv6, bracketed or mapped, compares as the tables print it', () => {
  assert.equal(canonicalAddress('fd00:0::0001'), 'fd00::1');
  assert.equal(canonicalAddress('[FD00::1]'), 'fd00::1');
  assert.equal(canonicalAddress('::ffff:10.0.0.2'), '10.0.0.2');
  assert.equal(canonicalAddress('10.0.0.2'), '10.0.0.2');
  assert.equal(canonicalAddress('example.org'), null);
});

test('usage: a process, a program or a peer must be named; a bad peer, pid or protocol is refused', async () => {
  await assert.rejects(connections({}), (e: Error & { code?: string }) => e.code === 'QOS_ERR_USAGE' && /pid\), a program or a peer/.test(e.message));
  await assert.rejects(connections({ proto: 'tcp' }), /a program or a peer/);
  await assert.rejects(connections({ peer: 'nowhere' }), /not "nowhere"/);
  await assert.rejects(connections({ pid: -1 }), /not -1/);
  await assert.rejects(connections({ pid: 1, proto: 'sctp' as 'tcp' }), /not "sctp"/);
  assert.deepEqual(await connections({ pid: 0x7ffffffe }), [], 'no such process: nothing, no error');
});

const listen = async (host: string): Promise<Server> => { const s = createServer(); s.listen(0, host); await once(s, 'listening'); return s; };
const port = (x: Server | UdpSocket) => (x.address() as AddressInfo).port;

test("this process's own sockets: a TCP listener, both ends of its connection and connected UDP, IPv4 and IPv6, by pid, program and peer", async (t) => {
  const opened: { close(): unknown }[] = [];
  t.after(() => { for (const o of opened) o.close(); });
  const tcp: Record<string, { server: Server; client: Socket; accepted: Socket }> = {};
  const udp: Record<string, { rx: UdpSocket; tx: UdpSocket }> = {};
  for (const host of ['127.0.0.1', '::1']) {
    const server = await listen(host);
    opened.push(server);
    const accepted = once(server, 'connection');
    const client = connect(port(server), host);
    await once(client, 'connect');
    const [peer] = (await accepted) as [Socket];
    opened.push({ close: () => { client.destroy(); peer.destroy(); } });
    client.write('x'.repeat(64 * 1024)); // something acknowledged, so the kernel has an RTT sample
    tcp[host] = { server, client, accepted: peer };
    const type = host.includes(':') ? 'udp6' : 'udp4';
    const rx = createSocket(type), tx = createSocket(type);
    opened.push(rx, tx);
    rx.bind(0, host); await once(rx, 'listening');
    tx.connect(port(rx), host); await once(tx, 'connect');
    udp[host] = { rx, tx };
  }
  await new Promise((r) => setTimeout(r, 50));
  const mine = await connections({ pid: process.pid });
  const comm = readFileSync('/proc/self/comm', 'utf8').trim();
  const find = (proto: string, lport: number, rport: number | null) => mine.filter((c) => c.proto === proto && c.lport === lport && c.rport === rport);
  for (const host of ['127.0.0.1', '::1']) {
    const { server, client, accepted } = tcp[host]!;
    const [l] = find('tcp', port(server), null);
    assert.deepEqual(l && { ...l, inode: 0 }, { proto: 'tcp', local: host, lport: port(server), remote: null, rport: null, state: 'LISTEN', inode: 0, pid: process.pid, program: comm, rttS: null }, `${host}: the listener`);
    const [c] = find('tcp', client.localPort!, port(server));
    assert.ok(c && c.state === 'ESTAB' && c.local === host && c.remote === host, `${host}: the client end ${JSON.stringify(c)}`);
    assert.ok(typeof c.rttS === 'number' && c.rttS > 0 && c.rttS < 1, `${host}: its RTT from ss, seconds: ${c.rttS}`);
    assert.equal(find('tcp', port(server), accepted.remotePort!).length, 1, `${host}: the accepted end`);
    const { rx, tx } = udp[host]!;
    const [u] = find('udp', port(tx), port(rx));
    assert.deepEqual(u && { ...u, inode: 0 }, { proto: 'udp', local: host, lport: port(tx), remote: host, rport: port(rx), state: 'ESTAB', inode: 0, pid: process.pid, program: comm, rttS: null }, `${host}: connected UDP`);
    assert.equal(find('udp', port(rx), null)[0]?.state, 'UNCONN', `${host}: the unconnected receiver`);
  }
  const inodes = new Set(mine.map((c) => c.inode));
  assert.equal(inodes.size, mine.length, 'each socket once');

  const byPeer = await connections({ peer: '::1', proto: 'udp' });
  assert.ok(byPeer.every((c) => c.remote === '::1' && c.proto === 'udp'));
  assert.ok(byPeer.some((c) => c.pid === process.pid && c.lport === port(udp['::1']!.tx)), 'found by peer among every process');
  const byProgram = await connections({ program: comm, peer: '127.0.0.1', proto: 'tcp' });
  assert.ok(byProgram.some((c) => c.pid === process.pid && c.lport === tcp['127.0.0.1']!.client.localPort), 'found by program and peer');
  assert.ok(byProgram.every((c) => c.program === comm && c.remote === '127.0.0.1' && c.proto === 'tcp'));
  assert.deepEqual(await connections({ pid: process.pid, peer: '192.0.2.99' }), [], 'a peer it has no socket with');
  assert.deepEqual(await connections({ program: 'no-such-program-here' }), []);
});
