/* `qos explain` against a running daemon (issue 25's set): one daemon in a Testbed's client
 * namespace (nsenter, so that it still sees the host's cgroup tree) with its eBPF programs on a
 * cgroup of the test's own, its nftables table and its traffic control, and five programs held
 * open to a server namespace, each explained through POST /v1/explain (`qos explain --json`)
 * and checked field by field, the "did not match because" lines too: an agent-marked curl put
 * in a traffic-control flow by its rule, an eBPF-marked static program, a program the kernel
 * rules mark by its port, an application that sets its own IP_TOS under a rule without
 * override, and an unmatched program. What the kernel has (TOS and priority from ss, the
 * connection mark from conntrack, the flow from tc's state) is checked against what the
 * policy says, and the kernel rule's mark against the packets tshark reads. */

import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runSync } from '../exec.js';
import { callJson } from '../daemon/admin-client.js';
import { socketsOf } from '../kernel/sockets.js';
import { requireTools } from '../prerequisites.js';
import type { ExplainReport } from '../explain/report.js';
import { requireE2e, sh, Testbed, TestCgroup, TestDaemon, waitFor, QOS } from './harness.js';

requireE2e('gcc', 'curl', 'nsenter', 'ss');
requireTools('python3');

const PORT = 8081, PORT2 = 8082, PORT3 = 8083;
const PYTHON = '/usr/bin/python3';

let tb: Testbed;
let cg: TestCgroup;
let daemon: TestDaemon;
const bin: Record<string, string> = {};

/* ADDRESS PORT SECONDS: one TCP connect, then held open */
const CLIENT = `#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[2])); inet_pton(AF_INET, argv[1], &a.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (argc < 4 || connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
  sleep(atoi(argv[3]));
  return 0;
}
`;

/** The policy: one rule per case, each case's rules before it failing for a reason of its own. */
const policy = () => `rules:
  - name: own-tos
    match: { cmdline: "*own-tos-app*" }
    action: { dscp: AF11 }
  - name: static
    match: { exe: ${bin.static} }
    action: { dscp: EF }
  - name: web
    match: { exe: "*/curl", remote_port: ${PORT} }
    action: { dscp: AF41, flowspec: { TokenRate: 1Mbit, TokenBucketSize: 16kB }, mode: borrow }
  - name: kernel-port
    match: { proto: tcp, remote_port: ${PORT3} }
    action: { dscp: CS4 }
`;

const qos = (...args: string[]) => sh([process.execPath, QOS, 'explain', '--admin', daemon.admin, ...args], { timeout: 120_000 });
function explainJson(...args: string[]): ExplainReport {
  const r = qos(...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ExplainReport;
}

/** The child of pid running comm (qos run runs its program as its child), once it runs. */
async function childOf(pid: number, comm: string): Promise<number> {
  let child = 0;
  await waitFor(`${comm} started by pid ${pid}`, () => {
    let kids: string[] = [];
    try { kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean); } catch { /* not yet */ }
    child = Number(kids.find((k) => { try { return readFileSync(`/proc/${k}/comm`, 'utf8').trim() === comm; } catch { return false; } }) ?? 0);
    return child > 0;
  });
  return child;
}

/** Waits until pid has a connected TCP socket to port (from the kernel, ss), and gives its fd. */
async function connectedFd(pid: number, port: number): Promise<number> {
  let fd = -1;
  await waitFor(`pid ${pid} connected to port ${port}`, async () => {
    const s = (await socketsOf(pid)).find((k) => k.state === 'ESTAB' && k.remote.endsWith(`:${port}`));
    fd = s?.fd ?? -1;
    return fd >= 0;
  }, 100);
  return fd;
}

const rulesOf = (r: ExplainReport) => r.rules.map((x) => [x.name, x.line, x.result, x.failed]);

before(async () => {
  tb = new Testbed();
  cg = new TestCgroup('explain');
  const src = join(tb.dir, 'client.c');
  writeFileSync(src, CLIENT);
  bin.static = join(tb.dir, 'client-static');
  runSync(['gcc', '-static', '-O2', '-o', bin.static, src], { timeoutMs: 60_000, pkg: 'gcc' });
  bin.other = join(tb.dir, 'client-other');
  copyFileSync(bin.static, bin.other); // the same bytes in another file: another program
  for (const p of [PORT, PORT2, PORT3]) await tb.sink(p);
  daemon = await new TestDaemon(tb.dir, policy(), ['--ebpf', 'on', '--ebpf-cgroup', cg.dir, '--kernel', 'on'], ['nsenter', `--net=/run/netns/${tb.client}`]).start();
  // a veth says no speed: traffic control needs the link's rate
  await callJson(daemon.admin, 'PUT', `/v1/tc/interfaces/${tb.id}c0`, { rate: '100Mbit' });
});

after(async () => {
  await daemon?.stop();
  tb?.cleanup();
  cg?.remove();
});

test('an agent-marked curl: the agent decides by its rule, the kernel has the rule\'s TOS, and its socket is in the traffic-control flow the rule asked for', async () => {
  const run = tb.start(daemon.run('curl', '-s', '-o', '/dev/null', '--max-time', '120', `http://${tb.serverIp}:${PORT}/`), tb.client);
  const curl = await childOf(run.pid!, 'curl');
  const fd = await connectedFd(curl, PORT);
  // the flow and its filter come once the daemon has read the socket's 5-tuple (tc/attach.ts)
  await waitFor('the curl\'s socket in a traffic-control flow', async () => (await callJson<{ filters: unknown[] }>(daemon.admin, 'GET', '/v1/tc')).filters.length === 1);
  const r = explainJson('--pid', String(curl), '--remote', `${tb.serverIp}:${PORT}`);
  assert.deepEqual([r.program.exe, r.agent, r.decided_by, r.line, r.decision?.dscp, r.path.path], ['/usr/bin/curl', true, 'web', 8, 34, 'agent']);
  assert.equal(r.path.why, 'the process has the agent loaded: it decides, from this rule');
  assert.deepEqual(r.call, { event: 'connect', proto: 'tcp', remote: { address: tb.serverIp, port: PORT }, local: null });
  assert.deepEqual(rulesOf(r), [
    ['own-tos', 2, 'failed', `cmdline *own-tos-app* did not match curl -s -o /dev/null --max-time 120 http://${tb.serverIp}:${PORT}/`],
    ['static', 5, 'failed', `exe ${bin.static} did not match /usr/bin/curl`],
    ['web', 8, 'matched', undefined],
    ['kernel-port', 11, 'not reached', undefined],
  ]);
  const s = r.socket!;
  assert.equal(s.fd, fd, 'the socket to --remote');
  assert.equal(s.tos, 34 << 2, 'the kernel has AF41 on the socket (ss)');
  assert.deepEqual([s.daemon?.path, s.daemon?.rule, s.daemon?.class], ['agent', 'web', 'AF41']);
  assert.equal(s.own_tos, null, 'curl set no TOS of its own');
  assert.ok(s.tc.in === 'flow', JSON.stringify(s.tc));
  const tc = await callJson<{ flows: { id: number; dev: string }[]; filters: { id: number; flow: number }[] }>(daemon.admin, 'GET', '/v1/tc');
  assert.equal(s.tc.dev, `${tb.id}c0`);
  assert.deepEqual([s.tc.flow.id, s.tc.filter.id], [tc.flows[0]!.id, tc.filters[0]!.id]);
  assert.equal(s.tc.flow.class, `d5c:${(0x10 + tc.flows[0]!.id).toString(16)}`);
  assert.deepEqual([s.tc.flow.mode, s.tc.flow.conforming.dscp, s.tc.flow.owner], ['borrow', 34, { kind: 'policy', pid: curl, fd, rule: 'web' }]);
  assert.equal(s.tc.filter.exact, true);
  assert.match(s.tc.filter.match, new RegExp(`^tcp ${tb.clientIp}:\\d+ -> ${tb.serverIp.replace(/\./g, '\\.')}:${PORT}$`));
  // its packets carry a DSCP already: the table's DSCP-0 path never classified the flow
  assert.ok(!('why' in s.kernel_rule) && s.kernel_rule.number === 0 && s.kernel_rule.rule === null, JSON.stringify(s.kernel_rule));
  run.kill('SIGKILL');
  sh(['kill', '-KILL', String(curl)]);
});

test('an eBPF-marked static program: no agent, the programs hold its exe rule, the kernel has EF on its socket', async () => {
  const p = tb.start(cg.argv(tb.client, [bin.static!, tb.serverIp, String(PORT), '120']));
  const fd = await connectedFd(p.pid!, PORT);
  await waitFor('its socket among the eBPF flows', async () => (await callJson<{ path: string; pid: number }[]>(daemon.admin, 'GET', '/v1/flows')).some((f) => f.path === 'ebpf' && f.pid === p.pid));
  const r = explainJson('--pid', String(p.pid), '--fd', String(fd));
  assert.deepEqual([r.program.exe, r.agent, r.decided_by, r.line, r.decision?.dscp, r.path.path], [bin.static, false, 'static', 5, 46, 'ebpf']);
  assert.equal(r.path.why, `the process has no agent; the eBPF programs hold this rule for ${bin.static}`);
  assert.deepEqual(rulesOf(r), [
    ['own-tos', 2, 'failed', `cmdline *own-tos-app* did not match ${bin.static} ${tb.serverIp} ${PORT} 120`],
    ['static', 5, 'matched', undefined],
    ['web', 8, 'not reached', undefined],
    ['kernel-port', 11, 'not reached', undefined],
  ]);
  const s = r.socket!;
  assert.deepEqual([s.fd, s.proto, s.state, s.remote], [fd, 'tcp', 'ESTAB', `${tb.serverIp}:${PORT}`]);
  assert.equal(s.tos, 46 << 2, 'the kernel has EF on the socket (ss)');
  assert.deepEqual([s.daemon?.path, s.daemon?.rule, s.daemon?.class], ['ebpf', 'static', 'EF']);
  assert.equal(s.own_tos, null);
  assert.ok(s.tc.in === 'none');
  assert.match(s.tc.why, new RegExp(`^(none of the \\d+ traffic-control filters? on ${tb.id}c0 matches tcp ${tb.clientIp}:\\d+ -> ${tb.serverIp}:${PORT}|the daemon has no traffic-control filter)$`));
  p.kill('SIGKILL');
});

test('a program the kernel rules mark: no agent, no eBPF entry; the connection mark names the policy rule nftables holds, and its packets carry that rule\'s DSCP', async () => {
  const cap = await tb.capture(`tcp dst port ${PORT3}`);
  const p = tb.start([bin.other!, tb.serverIp, String(PORT3), '120'], tb.client);
  const fd = await connectedFd(p.pid!, PORT3);
  const r = explainJson('--pid', String(p.pid), '--fd', String(fd));
  assert.deepEqual([r.program.exe, r.agent, r.decided_by, r.line, r.decision?.dscp, r.path.path], [bin.other, false, 'kernel-port', 11, 32, 'nftables']);
  assert.equal(r.path.why, 'the process has no agent; the nftables table holds this rule');
  assert.deepEqual(rulesOf(r), [
    ['own-tos', 2, 'failed', `cmdline *own-tos-app* did not match ${bin.other} ${tb.serverIp} ${PORT3} 120`],
    ['static', 5, 'failed', `exe ${bin.static} did not match ${bin.other}`],
    ['web', 8, 'failed', `remote_port ${PORT3} is not ${PORT}`],
    ['kernel-port', 11, 'matched', undefined],
  ]);
  const s = r.socket!;
  assert.equal(s.tos, 0, 'the socket itself is unmarked: nftables marks its packets');
  assert.equal(s.daemon, undefined, 'neither the agent nor eBPF decided it');
  const k = s.kernel_rule;
  assert.ok(!('why' in k), JSON.stringify(k));
  assert.deepEqual([k.rule, k.current], [{ origin: 'policy', name: 'kernel-port', position: 4 }, true]);
  assert.ok(k.number > 0 && k.generation > 0);
  assert.deepEqual([...new Set((await cap.packets()).map((x) => x.dscp))], [32], 'every packet CS4, as the mark says');
  p.kill('SIGKILL');
});

test('an application that sets its own IP_TOS under a rule without override: honoured, the kernel has the application\'s TOS', async () => {
  const code = ['# own-tos-app', 'import socket, sys, time', 's = socket.socket()', 's.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xb8)', 's.connect((sys.argv[1], int(sys.argv[2])))', 'time.sleep(120)'].join('\n');
  const run = tb.start(daemon.run(PYTHON, '-c', code, tb.serverIp, String(PORT2)), tb.client);
  const py = await childOf(run.pid!, 'python3');
  const fd = await connectedFd(py, PORT2);
  await waitFor('its flow decided by the daemon', async () => (await callJson<{ pid: number; rule: string | null }[]>(daemon.admin, 'GET', '/v1/flows')).some((f) => f.pid === py && f.rule === 'own-tos'));
  const r = explainJson('--pid', String(py), '--fd', String(fd));
  assert.deepEqual([r.agent, r.decided_by, r.line, r.decision, r.path.path], [true, 'own-tos', 2, { dscp: 10 }, 'agent']);
  assert.deepEqual(rulesOf(r), [
    ['own-tos', 2, 'matched', undefined],
    ['static', 5, 'not reached', undefined],
    ['web', 8, 'not reached', undefined],
    ['kernel-port', 11, 'not reached', undefined],
  ]);
  const s = r.socket!;
  assert.equal(s.tos, 0xb8, 'the kernel has the application\'s EF, not the rule\'s AF11 (ss)');
  assert.deepEqual(s.own_tos, { asked: 0xb8, by: 'agent', override: false, honoured: true });
  assert.deepEqual([s.daemon?.rule, s.daemon?.class], ['own-tos', 'AF11']);
  assert.deepEqual(s.kernel_rule, { mark: '0x00000000', number: 0, generation: 0, current: false, rule: null }, 'its packets carry a DSCP: the table never classified the flow');
  const text = qos('--pid', String(py), '--fd', String(fd)).stdout;
  assert.match(text, new RegExp(`^  fd ${fd} tcp ESTAB ${tb.clientIp}:\\d+ -> ${tb.serverIp}:${PORT2}: TOS 0xb8 \\(EF\\), priority \\d+; decided by the agent, rule own-tos: AF11; the application set TOS 0xb8 itself: honoured, the kernel has it \\(the rule has no override\\)$`, 'm'), text);
  run.kill('SIGKILL');
  sh(['kill', '-KILL', String(py)]);
});

test('an unmatched program: path none, every rule\'s failing condition; the connection mark says no kernel rule took it', async () => {
  const p = tb.start([bin.other!, tb.serverIp, String(PORT), '120'], tb.client);
  const fd = await connectedFd(p.pid!, PORT);
  const r = explainJson('--pid', String(p.pid), '--fd', String(fd));
  assert.deepEqual([r.agent, r.decided_by, r.line, r.decision, r.path], [false, null, null, null, { path: 'none', why: 'no rule decides: the default, or nothing' }]);
  assert.deepEqual(rulesOf(r), [
    ['own-tos', 2, 'failed', `cmdline *own-tos-app* did not match ${bin.other} ${tb.serverIp} ${PORT} 120`],
    ['static', 5, 'failed', `exe ${bin.static} did not match ${bin.other}`],
    ['web', 8, 'failed', `exe */curl did not match ${bin.other}`],
    ['kernel-port', 11, 'failed', `remote_port ${PORT} is not ${PORT3}`],
  ]);
  const s = r.socket!;
  assert.deepEqual([s.tos, s.priority, s.daemon, s.own_tos], [0, 0, undefined, null]);
  const k = s.kernel_rule;
  assert.ok(!('why' in k), JSON.stringify(k));
  assert.deepEqual([k.number, k.rule, k.current], [0, null, true], 'classified under the current rules: none took it');
  const text = qos('--pid', String(p.pid), '--fd', String(fd)).stdout;
  assert.deepEqual(text.split('\n').slice(1, 8), [
    'no rule matches and there is no default: the socket is left alone',
    'enforced by: none (no rule decides: the default, or nothing)',
    'rules:',
    `  1 own-tos (line 2): cmdline *own-tos-app* did not match ${bin.other} ${tb.serverIp} ${PORT} 120`,
    `  2 static (line 5): exe ${bin.static} did not match ${bin.other}`,
    `  3 web (line 8): exe */curl did not match ${bin.other}`,
    `  4 kernel-port (line 11): remote_port ${PORT} is not ${PORT3}`,
  ]);
  assert.match(text, new RegExp(`^    nftables: none: the connection mark 0x[0-9a-f]{8} says no kernel rule took the flow \\(generation \\d+, the current one\\)$`, 'm'), text);
  p.kill('SIGKILL');
});

test('POST /v1/explain refuses what qos explain refuses: a bad field, an unknown one, no program, a process that is not there', async () => {
  const refused = async (body: unknown) => callJson(daemon.admin, 'POST', '/v1/explain', body).then(() => assert.fail('answered'), (e: { code: string; message: string }) => `${e.code}: ${e.message}`);
  assert.equal(await refused({ pid: 'x' }), 'QOS_ERR_USAGE: --pid takes a whole number above 0, not "x"');
  assert.equal(await refused({ exe: '/x', colour: 'red' }), 'QOS_ERR_USAGE: explain takes pid, fd, exe, cmdline, user, uid, event, proto, remote, local; not colour');
  assert.equal(await refused({ remote: '10.0.0.5:80' }), 'QOS_ERR_USAGE: say which program: --pid PID (a running process) or --exe PATH');
  assert.equal(await refused({ pid: 4194303 }), 'QOS_ERR_NOT_FOUND: no process 4194303');
  const gone = qos('--pid', '4194303');
  assert.equal(gone.status, 66, 'the CLI exits as for any QOS_ERR_NOT_FOUND');
  assert.match(gone.stderr, /no process 4194303/);
});
