/* Name resolution under the built-in policy: glibc's resolver sends its queries through calls
 * inside libc (__socket, __connect, __sendmmsg) that the agent never sees, so its
 * `name-resolution` rule reaches DNS only through the kernel table (docs/agent.md, Limits).
 * A daemon with the built-in policy and --kernel on runs in the client namespace; a DNS server
 * of a few lines answers in the server namespace; getent and python resolve a name through it,
 * under the agent and without it, and tshark reads the queries' DS field. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { call, callJson } from '../daemon/admin-client.js';
import { requireE2e, TestDaemon, Testbed } from './harness.js';

requireE2e();
let tb: Testbed;
let daemon: TestDaemon;
let netnsEtc = '';
const NAME = 'qosd-resolver-test.example';
const ANSWER = '192.0.2.53';
const AF21 = 18;

// A DNS server: every A question is answered with ANSWER, any other with no records (RFC 1035
// section 4.1: the header with the question's id, QR and RD, RA set; the question echoed; an
// answer whose name is a pointer to offset 12, the question's name).
const DNS_SERVER = (host: string) => `import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('${host}', 53))
while True:
    q, peer = s.recvfrom(512)
    i = 12
    while q[i]:
        i += q[i] + 1
    qtype = struct.unpack('!H', q[i + 1:i + 3])[0]
    question = q[12:i + 5]
    answers = struct.pack('!HHHIH', 0xc00c, 1, 1, 60, 4) + socket.inet_aton('${ANSWER}') if qtype == 1 else b''
    s.sendto(q[:2] + struct.pack('!HHHHH', 0x8180, 1, 1 if answers else 0, 0, 0) + question + answers, peer)
`;

before(async () => {
  tb = new Testbed();
  // `ip netns exec` puts /etc/netns/NS/resolv.conf in place of /etc/resolv.conf
  netnsEtc = `/etc/netns/${tb.client}`;
  mkdirSync(netnsEtc, { recursive: true });
  writeFileSync(`${netnsEtc}/resolv.conf`, `nameserver ${tb.serverIp}\n`);
  tb.start(['python3', '-c', DNS_SERVER(tb.serverIp)], tb.server);
  await tb.waitListening(53, 'udp');
  daemon = await new TestDaemon(tb.dir, null, ['--kernel', 'on'], ['ip', 'netns', 'exec', tb.client]).start();
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
  rmSync(netnsEtc, { recursive: true, force: true });
});

test('the built-in policy places name-resolution in the kernel table', async () => {
  const list = await callJson<{ policy_rules: { name?: string; where: string }[] }>(daemon.admin, 'GET', '/v1/rules');
  assert.equal(list.policy_rules.find((r) => r.name === 'name-resolution')?.where, 'agent+kernel');
});

test('DNS queries of getent and python are AF21 under the agent and without it: the kernel rule marks what the agent cannot see', async () => {
  const python = `import socket; print(sorted({a[4][0] for a in socket.getaddrinfo('${NAME}', 53, socket.AF_INET)}))`;
  const programs = [['getent', 'ahostsv4', NAME], ['python3', '-c', python]];
  const cap = await tb.capture(`udp and dst port 53 and dst host ${tb.serverIp}`);
  for (const argv of programs) {
    for (const full of [daemon.run(...argv), argv]) {
      const r = tb.inClient(full);
      assert.equal(r.status, 0, `${full.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(ANSWER.replaceAll('.', '\\.')), 'the name resolved through the test server');
    }
  }
  const queries = (await cap.packets()).filter((p) => p.dstPort === 53);
  assert.ok(queries.length >= programs.length * 2, `one query or more per lookup, got ${queries.length}`);
  assert.deepEqual([...new Set(queries.map((p) => p.dscp))], [AF21]);
  const list = await callJson<{ policy_rules: { name?: string; packets?: number }[] }>(daemon.admin, 'GET', '/v1/rules');
  const counted = list.policy_rules.find((r) => r.name === 'name-resolution')?.packets ?? 0;
  assert.ok(counted >= queries.length, `the kernel rule marked them: ${counted} packets counted, ${queries.length} queries captured`);
  // The agent saw none of it: no call to port 53 reached the daemon (glibc's internal calls).
  const decisions = (await call(daemon.admin, 'GET', '/v1/decisions?limit=1000')).body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { remote: { port: number } | null });
  assert.deepEqual(decisions.filter((d) => d.remote?.port === 53), [], 'the resolver\'s calls bypass the agent');
});
