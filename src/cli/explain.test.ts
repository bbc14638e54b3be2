/* `qos explain` against a policy file (policy/explain.ts does the walk): the rule that decides
 * with its line, every rule before it with its first failing condition, the rules after it not
 * reached, and the path that enforces the rule for that program: eBPF for an exe rule on a
 * program's file, nftables for a rule on address and port, the agent for a process that has it
 * loaded, none for a process without the agent under a rule only the agent can enforce. */

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { QOS_CLI } from '../daemon/child.js';
import { AGENT_LIBRARY } from '../paths.js';
import { requireTools } from '../prerequisites.js';

requireTools('python3', 'nsenter', 'ss');

const dir = mkdtempSync(join(tmpdir(), 'qosd-explain-'));
const children: ReturnType<typeof spawn>[] = [];
after(() => { for (const c of children) c.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); });

const POLICY = `# what the office runs
rules:
  - name: voip
    match: { exe: "*/zoom" }
    action: { dscp: EF }
  - name: dns
    match: { remote_port: 53 }
    action: { dscp: CS2 }
  - name: sleeper
    match: { cmdline: "sleep 3600*" }
    action: { dscp: LE }
  - name: shell
    match: { exe: /usr/bin/dash }
    action: { dscp: AF31 }
  - name: web
    match: { proto: tcp, remote_port: 443 }
    action: { dscp: AF21 }
`;
const file = join(dir, 'policy.yaml');
writeFileSync(file, POLICY);
const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, 'explain', '--policy', file, ...args], { encoding: 'utf8' });

test('a program by its executable: the deciding rule and its line, why each rule before it failed, the rest not reached, the path that enforces it', () => {
  const r = qos('--exe', '/usr/bin/firefox', '--remote', '10.0.0.5:443');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n').slice(0, 9), [
    `connect tcp to 10.0.0.5:443 by /usr/bin/firefox (user ${spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim()})`,
    `decided by rule web (${file}:15): DSCP AF21`,
    'enforced by: nftables (the nftables table holds this rule, if the daemon has it installed (qos status))',
    'rules:',
    '  1 voip (line 3): exe */zoom did not match /usr/bin/firefox',
    '  2 dns (line 6): remote_port 443 is not 53',
    '  3 sleeper (line 9): cmdline sleep 3600* did not match (none)',
    '  4 shell (line 12): exe /usr/bin/dash did not match /usr/bin/firefox',
    '  5 web (line 15): matched',
  ]);
  const j = JSON.parse(qos('--exe', '/usr/bin/dash', '--remote', '[2001:db8::1]:80', '--json').stdout) as { decided_by: string; line: number; decision: unknown; path: { path: string }; call: unknown; rules: { name: string; result: string; failed?: string }[] };
  assert.deepEqual([j.decided_by, j.line, j.decision, j.path.path], ['shell', 12, { dscp: 26 }, 'ebpf']);
  assert.deepEqual(j.call, { event: 'connect', proto: 'tcp', remote: { address: '2001:db8::1', port: 80 }, local: null });
  assert.deepEqual(j.rules.map((x) => x.result), ['failed', 'failed', 'failed', 'matched', 'not reached']);
  const none = JSON.parse(qos('--exe', '/usr/bin/firefox', '--proto', 'udp', '--remote', '10.0.0.5:5004', '--json').stdout) as { decided_by: null; path: { path: string } };
  assert.deepEqual([none.decided_by, none.path.path], [null, 'none']);
});

test('a running process: its own executable and command line; with the agent loaded the agent enforces, without it a command-line rule has no path', async () => {
  const plain = spawn('sleep', ['3600']);
  const agent = spawn('sleep', ['3601'], { env: { ...process.env, LD_PRELOAD: AGENT_LIBRARY } });
  children.push(plain, agent);
  // what qos explain reads: the command line after the exec, and the agent mapped by ld.so
  const ready = () => {
    try {
      return readFileSync(`/proc/${plain.pid}/cmdline`, 'utf8') === 'sleep\u00003600\u0000' && readFileSync(`/proc/${agent.pid}/maps`, 'utf8').includes('libqosagent.so');
    } catch { return false; }
  };
  for (let i = 0; i < 400 && !ready(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(ready(), 'both sleeps started, the agent loaded in one');
  const p = JSON.parse(qos('--pid', String(plain.pid), '--remote', '10.0.0.5:80', '--json').stdout) as { program: { exe: string; cmdline: string }; agent: boolean; decided_by: string; path: { path: string; why: string } };
  assert.equal(p.program.cmdline, 'sleep 3600');
  assert.deepEqual([p.agent, p.decided_by, p.path.path], [false, 'sleeper', 'none']);
  assert.match(p.path.why, /^the process has no agent, and neither eBPF nor nftables can enforce this rule \(the eBPF programs do not see the command line \(cmdline\); nftables: /);
  // (a web rule on port 443, which nftables could also enforce: the agent, loaded, decides first)
  const a = JSON.parse(qos('--pid', String(agent.pid), '--remote', '10.0.0.5:443', '--json').stdout) as { agent: boolean; decided_by: string; path: { path: string } };
  assert.deepEqual([a.agent, a.decided_by, a.path.path], [true, 'web', 'agent']);
});

test('a process\'s sockets: the mark the kernel has on each now, and --fd explains one (its protocol and remote end the call)', async () => {
  // a program that set its own marks: EF on a TCP connection, AF41 and priority 5 on a UDP one
  const py = spawn('python3', ['-c', [
    'import socket, sys, time',
    's = socket.socket(); s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xb8)',
    "l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(); s.connect(l.getsockname())",
    "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x88); u.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 5); u.connect(('127.0.0.1', 53))",
    "print(s.fileno(), u.fileno(), flush=True); time.sleep(60)",
  ].join('\n')]);
  children.push(py);
  let said = '';
  const [tcpFd, udpFd] = await new Promise<[number, number]>((res) => py.stdout!.on('data', (d: Buffer) => { said += d; if (said.includes('\n')) res(said.trim().split(' ').map(Number) as [number, number]); }));
  type S = { fd: number; proto: string; tos: number; priority: number; remote: string };
  const jr = qos('--pid', String(py.pid), '--fd', String(udpFd), '--json');
  assert.equal(jr.status, 0, jr.stderr);
  const j = JSON.parse(jr.stdout) as { sockets: S[]; call: { proto: string; remote: { port: number } }; decided_by: string };
  const by = new Map(j.sockets.map((k) => [k.fd, k]));
  assert.deepEqual([by.get(tcpFd)?.proto, by.get(tcpFd)?.tos], ['tcp', 0xb8]);
  assert.deepEqual([by.get(udpFd)?.proto, by.get(udpFd)?.tos, by.get(udpFd)?.priority], ['udp', 0x88, 5]);
  assert.deepEqual([j.call.proto, j.call.remote.port, j.decided_by], ['udp', 53, 'dns'], 'the UDP socket to port 53: the dns rule');
  const text = qos('--pid', String(py.pid), '--fd', String(tcpFd)).stdout;
  assert.match(text, new RegExp(`^  fd ${tcpFd} tcp ESTAB 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:\\d+: TOS 0xb8 \\(EF\\), priority \\d+$`, 'm'), text);
  const missing = qos('--pid', String(py.pid), '--fd', '999');
  assert.equal(missing.status, 66);
  assert.match(missing.stderr, new RegExp(`process ${py.pid} has no TCP or UDP socket on descriptor 999`));
});

test('bad input: no program, a bad endpoint, a missing policy, a process that is not there', () => {
  const none = qos('--remote', '10.0.0.5:80');
  assert.equal(none.status, 64);
  assert.match(none.stderr, /say which program: --pid PID \(a running process\) or --exe PATH/);
  const bad = qos('--exe', '/x', '--remote', '10.0.0.5');
  assert.equal(bad.status, 64);
  assert.match(bad.stderr, /--remote takes ADDRESS:PORT \(\[ADDRESS\]:PORT for IPv6\), not "10\.0\.0\.5"/);
  const missing = spawnSync(process.execPath, [QOS_CLI, 'explain', '--policy', join(dir, 'nope.yaml'), '--exe', '/x'], { encoding: 'utf8' });
  assert.equal(missing.status, 66);
  assert.match(missing.stderr, /cannot read .*nope\.yaml/);
  const gone = qos('--pid', '4194303');
  assert.equal(gone.status, 66);
  assert.match(gone.stderr, /no process 4194303/);
});
