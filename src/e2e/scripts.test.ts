/* Policy scripts under a real agent, marks checked on the wire: the shipped JavaScript example
 * (at most two EF flows per user), and the paper's own Safe Tcl Figures 5 and 6 with only the
 * NetMeeting command line and the IP address changed. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireE2e, QOS, ROOT, TestDaemon, Testbed } from './harness.js';

requireE2e();

/** A daemon whose script runs at the test's priority (not nice 19) and may take 900 ms to
 * answer, and programs whose agent waits 1 s for it: these tests are about the marks on the
 * wire, not about how fast this machine is while they run. */
class PatientDaemon extends TestDaemon {
  constructor(dir: string, policy: string) {
    super(dir, policy, ['--script-nice', 'keep', '--script-answer-ms', '900']);
  }
  override run(...argv: string[]): string[] {
    return [process.execPath, QOS, 'run', '--socket', this.socket, '--timeout-ms', '1000', '--', ...argv];
  }
}
let tb: Testbed;
let daemon: PatientDaemon;
const PORT = 7400;

before(async () => {
  tb = new Testbed();
  const dir = join(tb.dir, 'ef');
  mkdirSync(dir);
  copyFileSync(join(ROOT, 'examples/ef-per-user/policy.js'), join(dir, 'policy.js'));
  daemon = await new PatientDaemon(dir, readFileSync(join(ROOT, 'examples/ef-per-user/policy.yaml'), 'utf8')).start();
  await tb.sink(PORT);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

// Opens n connections one after another and holds them all open, then closes them.
const holder = (n: number, tag: string) => ['python3', '-c', `
import socket, sys
held = [socket.create_connection(("${tb.serverIp}", ${PORT})) for _ in range(${n})]
print(" ".join(str(s.getsockname()[1]) for s in held))
`, tag];

test('examples/ef-per-user: two EF flows per user at a time, the third gets AF41; others fall to the rules', async () => {
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

/** A copy of examples/paper/<name>.{tcl,yaml} with some text replaced, and a daemon for it. */
async function paperDaemon(name: string, replace: [string, string]): Promise<PatientDaemon> {
  const dir = join(tb.dir, name);
  mkdirSync(dir);
  const tcl = readFileSync(join(ROOT, `examples/paper/${name}.tcl`), 'utf8');
  assert.ok(tcl.includes(replace[0]), `${name}.tcl has ${replace[0]}`);
  writeFileSync(join(dir, `${name}.tcl`), tcl.replace(replace[0], replace[1]));
  return new PatientDaemon(dir, readFileSync(join(ROOT, `examples/paper/${name}.yaml`), 'utf8')).start();
}

test('the paper\'s Figure 5 in Safe Tcl: "NetMeeting" datagrams get TOS 48, another program nothing', async () => {
  const netmeeting = ['socat', '-u', '-', `UDP4:${tb.serverIp}:5004`];
  const d = await paperDaemon('figure5', ['socat -u - UDP4:192.0.2.10:5004', netmeeting.join(' ')]);
  try {
    const cap = await tb.capture('udp and (dst port 5004 or dst port 5005)');
    const a = tb.inClient(d.run(...netmeeting), { input: 'video frame' });
    const b = tb.inClient(d.run('socat', '-u', '-', `UDP4:${tb.serverIp}:5005`), { input: 'not netmeeting' });
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    const pkts = await cap.packets();
    assert.deepEqual(pkts.filter((p) => p.dstPort === 5004).map((p) => p.dscp), [48 >> 2], 'TOS 48 is DSCP 12');
    assert.deepEqual(pkts.filter((p) => p.dstPort === 5005).map((p) => p.dscp), [0]);
  } finally {
    await d.stop();
  }
});

test('the paper\'s Figure 6 in Safe Tcl: connections to one host get TOS 48, to another address nothing', async () => {
  const d = await paperDaemon('figure6', ['"192.0.2.10"', `"${tb.serverIp}"`]);
  try {
    const cap = await tb.capture(`tcp dst port ${PORT} and tcp[tcpflags] & tcp-syn != 0 or ip6 and tcp dst port ${PORT}`);
    const v4 = tb.inClient(d.run('socat', '-u', '-', `TCP4:${tb.serverIp}:${PORT}`), { input: 'x' });
    const v6 = tb.inClient(d.run('socat', '-u', '-', `TCP6:[${tb.serverIp6}]:${PORT}`), { input: 'x' });
    assert.equal(v4.status, 0, v4.stderr);
    assert.equal(v6.status, 0, v6.stderr);
    const pkts = await cap.packets();
    assert.deepEqual(pkts.filter((p) => p.syn && !p.ipv6).map((p) => p.dscp), [12]);
    assert.deepEqual(pkts.filter((p) => p.syn && p.ipv6).map((p) => p.dscp), [0]);
  } finally {
    await d.stop();
  }
});
