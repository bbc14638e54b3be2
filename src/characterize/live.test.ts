/* What --live captures: tcpdump filters from --flow and from a program's sockets as ss lists them. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet } from '../capture/pcap.js';
import { appSelect, bpfForApp, bpfForFlow, parseSs } from './live.js';

const SS = `udp   UNCONN 0      0            0.0.0.0:5353       0.0.0.0:*    users:(("avahi-daemon",pid=512,fd=12))
udp   ESTAB  0      0          10.0.0.1:40000     10.0.0.2:5004  users:(("python3",pid=77,fd=3))
tcp   ESTAB  0      0      [fd00::1]:51000   [fd00::2]:443   users:(("python3",pid=77,fd=4),("python3",pid=78,fd=4))
tcp   LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:(("sshd",pid=400,fd=3))
udp   UNCONN 0      0      [fe80::1%eth0]:546           [::]:*    users:(("python3",pid=77,fd=5))
udp   UNCONN 0      0            0.0.0.0:6000       0.0.0.0:*    users:(("python3x",pid=9,fd=5))
`;

test("a program's sockets from ss: connected ones with both ends, unconnected with the local end only", () => {
  const socks = parseSs(SS, 'python3');
  assert.deepEqual(socks, [
    { proto: 'udp', local: '10.0.0.1', lport: 40000, peer: '10.0.0.2', pport: 5004 },
    { proto: 'tcp', local: 'fd00::1', lport: 51000, peer: 'fd00::2', pport: 443 },
    { proto: 'udp', local: 'fe80::1', lport: 546, peer: null, pport: null },
  ]);
  assert.equal(bpfForApp(socks), '(udp and src host 10.0.0.1 and src port 40000 and dst host 10.0.0.2 and dst port 5004) or (tcp and src host fd00::1 and src port 51000 and dst host fd00::2 and dst port 443) or (udp and src host fe80::1 and src port 546)');
  assert.deepEqual(parseSs(SS, 'sshd'), [{ proto: 'tcp', local: '', lport: 22, peer: null, pport: null }]);
  assert.deepEqual(parseSs(SS, 'nobody'), []);
});

test('--flow as a tcpdump filter: a flow key or fields', () => {
  assert.equal(bpfForFlow('udp 10.0.0.1:4000 > 10.0.0.2:5004'), 'udp and src host 10.0.0.1 and src port 4000 and dst host 10.0.0.2 and dst port 5004');
  assert.equal(bpfForFlow('tcp [fd00::1]:4000 > [fd00::2]:80'), 'tcp and src host fd00::1 and src port 4000 and dst host fd00::2 and dst port 80');
  assert.equal(bpfForFlow('proto=udp,dport=5004,host=10.0.0.9'), 'udp and dst port 5004 and host 10.0.0.9');
  assert.equal(bpfForFlow('proto=132'), '(ip proto 132 or ip6 proto 132)');
  assert.throws(() => bpfForFlow('dport=5004 or 1=1'), /is not field=value/);
});

test("a program's sockets select the same packets from a file as the tcpdump filter does live", () => {
  const sel = appSelect(parseSs(SS, 'python3'));
  const pkt = (proto: number, src: string, sport: number, dst: string, dport: number) => ({ proto, src, sport, dst, dport } as Packet);
  assert.equal(sel(pkt(17, '10.0.0.1', 40000, '10.0.0.2', 5004)), true);
  assert.equal(sel(pkt(17, '10.0.0.2', 5004, '10.0.0.1', 40000)), false, 'what it receives is not what it sends');
  assert.equal(sel(pkt(6, '10.0.0.1', 40000, '10.0.0.2', 5004)), false, 'another protocol');
  assert.equal(sel(pkt(17, 'fe80::1', 546, 'ff02::1:2', 547)), true, 'an unconnected socket: any destination');
  assert.equal(sel(pkt(17, '10.0.0.1', 546, 'ff02::1:2', 547)), false, 'bound to another address');
});
