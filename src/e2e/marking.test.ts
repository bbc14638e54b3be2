/* Unmodified programs started with `qos run` get their packets marked on the wire as the
 * policy says; unmatched traffic stays at DSCP 0; DENY keeps a connect off the wire. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { requireE2e, type Packet, TestDaemon, Testbed } from './harness.js';

requireE2e('socat', 'iperf3');
let tb: Testbed;
let daemon: TestDaemon;

const POLICY = `
rules:
  - name: deny-9999
    match: { event: connect, remote_port: 9999 }
    action: { deny: ECONNREFUSED }
  - name: curl-8080
    match: { exe: "*/curl", remote_port: 8080 }
    action: { dscp: AF41 }
  - name: python-udp
    match: { cmdline: "*python3*", proto: udp }
    action: { dscp: EF }
  - name: socat
    match: { exe: "*/socat" }
    action: { dscp: CS3 }
  - name: iperf3
    match: { exe: "*/iperf3" }
    action: { dscp: AF31 }
  - name: node
    match: { exe: "*/node", remote_port: 8080 }
    action: { tos: 128 }
`;

before(async () => {
  tb = new Testbed();
  daemon = await new TestDaemon(tb.dir, POLICY).start();
  tb.start(['python3', '-m', 'http.server', '8080', '--bind', '::'], tb.server);
  tb.start(['python3', '-m', 'http.server', '8081', '--bind', '::'], tb.server);
  await tb.waitListening(8080);
  await tb.waitListening(8081);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

function dscps(pkts: Packet[], pred: (p: Packet) => boolean): number[] {
  return [...new Set(pkts.filter(pred).map((p) => p.dscp))];
}

test('curl: TCP to the matched port is AF41 from the SYN on; another port stays 0', async () => {
  const cap = await tb.capture('tcp and (dst port 8080 or dst port 8081)');
  const a = tb.inClient(daemon.run('curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${tb.serverIp}:8080/`));
  const b = tb.inClient(daemon.run('curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${tb.serverIp}:8081/`));
  assert.equal(a.stdout, '200');
  assert.equal(b.stdout, '200');
  const pkts = await cap.packets();
  const syn = pkts.filter((p) => p.syn && !p.ack && p.dstPort === 8080);
  assert.equal(syn.length, 1, 'one SYN to 8080');
  assert.equal(syn[0]!.dscp, 34, 'the SYN itself is marked AF41');
  assert.deepEqual(dscps(pkts, (p) => p.dstPort === 8080), [34]);
  assert.deepEqual(dscps(pkts, (p) => p.dstPort === 8081), [0]);
});

test('curl over IPv6 is marked too', async () => {
  const cap = await tb.capture('ip6 and tcp and dst port 8080');
  const r = tb.inClient(daemon.run('curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://[${tb.serverIp6}]:8080/`));
  assert.equal(r.stdout, '200');
  const pkts = await cap.packets();
  assert.ok(pkts.length > 3);
  assert.deepEqual(dscps(pkts, (p) => p.ipv6), [34]);
});

test('python3: unconnected UDP sendto over IPv4 and IPv6 is EF from the first datagram', async () => {
  const cap = await tb.capture('udp and dst port 6000');
  const script = `import socket
for fam, host in ((socket.AF_INET, '${tb.serverIp}'), (socket.AF_INET6, '${tb.serverIp6}')):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for i in range(5):
        s.sendto(b'x' * 100, (host, 6000))
    s.close()
print('sent')`;
  const r = tb.inClient(daemon.run('python3', '-c', script));
  assert.equal(r.stdout.trim(), 'sent', r.stderr);
  const pkts = await cap.packets();
  assert.equal(pkts.filter((p) => !p.ipv6).length, 5);
  assert.equal(pkts.filter((p) => p.ipv6).length, 5);
  assert.deepEqual(dscps(pkts, () => true), [46]);
});

test('python3 without the agent stays unmarked (control)', async () => {
  const cap = await tb.capture('udp and dst port 6001');
  tb.inClient(['python3', '-c', `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('${tb.serverIp}', 6001))`]);
  const pkts = await cap.packets();
  assert.equal(pkts.length, 1);
  assert.equal(pkts[0]!.dscp, 0);
});

test('socat: TCP and UDP are CS3', async () => {
  const cap = await tb.capture('(tcp and dst port 8080) or (udp and dst port 6002)');
  const t = tb.inClient(daemon.run('socat', '-t', '1', '-', `TCP:${tb.serverIp}:8080`), { timeout: 20_000 });
  assert.equal(t.status, 0, t.stderr);
  const u = tb.inClient(daemon.run('socat', '-u', 'OPEN:/etc/hostname', `UDP:${tb.serverIp}:6002`));
  assert.equal(u.status, 0, u.stderr);
  const pkts = await cap.packets();
  assert.ok(pkts.some((p) => p.proto === 'tcp') && pkts.some((p) => p.proto === 'udp'));
  assert.deepEqual(dscps(pkts, () => true), [24]);
});

test('iperf3 -u: control (TCP) and data (UDP) are AF31', async () => {
  tb.start(['iperf3', '-s', '-1', '-p', '5201'], tb.server);
  await tb.waitListening(5201);
  const cap = await tb.capture('dst port 5201');
  const r = tb.inClient(daemon.run('iperf3', '-u', '-c', tb.serverIp, '-p', '5201', '-t', '1', '-b', '1M', '--json'), { timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr + r.stdout.slice(0, 400));
  const sent = JSON.parse(r.stdout) as { end: { sum: { packets: number } } };
  const pkts = await cap.packets();
  const udp = pkts.filter((p) => p.proto === 'udp');
  assert.ok(udp.length >= sent.end.sum.packets, `captured ${udp.length} UDP datagrams`);
  assert.deepEqual(dscps(pkts, (p) => p.proto === 'udp'), [26]);
  assert.deepEqual(dscps(pkts, (p) => p.proto === 'tcp'), [26]);
});

test('node: a Node.js script gets TOS 128 (CS4) on its connection', async () => {
  const cap = await tb.capture('tcp and dst port 8080');
  const script = `require('http').get('http://${tb.serverIp}:8080/', (r) => { r.resume(); r.on('end', () => console.log(r.statusCode)); })`;
  const r = tb.inClient(daemon.run(process.execPath, '-e', script));
  assert.equal(r.stdout.trim(), '200', r.stderr);
  const pkts = await cap.packets();
  assert.ok(pkts.some((p) => p.syn));
  assert.deepEqual(dscps(pkts, () => true), [32]);
});

test('DENY: curl fails with ECONNREFUSED and nothing reaches the wire', async () => {
  tb.start(['python3', '-m', 'http.server', '9999', '--bind', '::'], tb.server);
  await tb.waitListening(9999);
  const cap = await tb.capture('tcp and port 9999');
  const denied = tb.inClient(daemon.run('curl', '-sS', `http://${tb.serverIp}:9999/`));
  assert.equal(denied.status, 7, 'curl exit 7: failed to connect');
  assert.match(denied.stderr, /Connection refused|Couldn't connect/);
  const plain = tb.inClient(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${tb.serverIp}:9999/`]);
  assert.equal(plain.stdout, '200', 'the server is there: only the policy refused');
  const pkts = await cap.packets();
  const synsFromDenied = pkts.filter((p) => p.syn && !p.ack);
  assert.equal(synsFromDenied.length, 1, 'only the unpreloaded curl sent a SYN');
});
