/* Per-executable marking in the kernel through the daemon (docs/ebpf.md): `qos daemon --ebpf on`
 * attaches bpf/exe-mark.bpf.c to a cgroup of the test's own, and fills its maps from the
 * policy's exe rules. Programs run in that cgroup (joined first: `ip netns exec` mounts a sysfs
 * of its own) and in a Testbed's client namespace; tshark on the server reads their packets.
 * Programs the agent cannot reach get their exe rule's mark on the very first packet, with no
 * agent loaded: a static C client, an io_uring connect, a Go program (Debian's hey). */

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runSync } from '../exec.js';
import { callJson } from '../daemon/admin-client.js';
import { CGROUP2, requireE2e, sh, Testbed, TestCgroup, TestDaemon, waitFor, QOS } from './harness.js';

requireE2e('bpftool', 'gcc', 'hey');

const PORT = 8081, PORT2 = 8082;

let tb: Testbed;
let cg: TestCgroup;
let daemon: TestDaemon | null = null;
const bin: Record<string, string> = {};

const must = (argv: string[]) => runSync(argv, { timeoutMs: 60_000 }).stdout;

/** Runs argv in the test's cgroup and the client namespace. */
function inCgroup(argv: string[]) {
  return sh(cg.argv(tb.client, [...argv]));
}

/** The DSCP of every packet matching filter (default: to PORT) that a run sends, read by tshark
 * on the server's side. */
async function dscps(argv: string[], filter = `dst port ${PORT}`): Promise<{ out: string; dscp: number[] }> {
  const cap = await tb.capture(filter);
  const r = inCgroup(argv);
  return { out: r.stdout.trim(), dscp: (await cap.packets()).map((p) => p.dscp) };
}
const classes = async (argv: string[], filter?: string) => [...new Set((await dscps(argv, filter)).dscp)];

const CLIENT = `#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef URING
#include <liburing.h>
#endif
/* tcp|udp ADDRESS PORT [SECONDS]: one connect (or two unconnected datagrams), kept open for
 * SECONDS if given; prints ok or errno N */
int main(int argc, char **argv) {
  int v6 = strchr(argv[2], ':') != NULL, udp = !strcmp(argv[1], "udp");
  struct sockaddr_storage ss = {0}; socklen_t len;
  if (v6) { struct sockaddr_in6 *a = (void *)&ss; a->sin6_family = AF_INET6; a->sin6_port = htons(atoi(argv[3])); inet_pton(AF_INET6, argv[2], &a->sin6_addr); len = sizeof *a; }
  else { struct sockaddr_in *a = (void *)&ss; a->sin_family = AF_INET; a->sin_port = htons(atoi(argv[3])); inet_pton(AF_INET, argv[2], &a->sin_addr); len = sizeof *a; }
  int s = socket(v6 ? AF_INET6 : AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0), r;
  if (udp) r = sendto(s, "x", 1, 0, (struct sockaddr *)&ss, len) == 1 && sendto(s, "y", 1, 0, (struct sockaddr *)&ss, len) == 1 ? 0 : -1;
#ifdef URING
  else { struct io_uring ring; io_uring_queue_init(2, &ring, 0); struct io_uring_sqe *e = io_uring_get_sqe(&ring);
    io_uring_prep_connect(e, s, (struct sockaddr *)&ss, len); io_uring_submit(&ring); struct io_uring_cqe *c; io_uring_wait_cqe(&ring, &c);
    r = c->res < 0 ? (errno = -c->res, -1) : 0; }
#else
  else r = connect(s, (struct sockaddr *)&ss, len);
#endif
  if (r) printf("errno %d\\n", errno); else printf("ok\\n");
  fflush(stdout);
  if (argc > 4) sleep(atoi(argv[4]));
  return 0;
}
`;

/** The policy of these tests: the agent-only cmdline rule first, then the exe rules. */
function policy(staticDscp = 'EF'): string {
  return `rules:
  - name: agent-cmdline
    match: { cmdline: "*client-dyn tcp*" }
    action: { dscp: AF21 }
  - name: static
    match: { exe: ${bin.static} }
    action: { dscp: ${staticDscp} }
  - name: dyn
    match: { exe: ${bin.dyn} }
    action: { dscp: CS5 }
  - name: uring
    match: { exe: ${bin.uring} }
    action: { dscp: AF41 }
  - name: go
    match: { exe: "*/hey" }
    action: { dscp: AF31 }
  - name: refused
    match: { exe: ${bin.refused}, remote_port: ${PORT} }
    action: { deny: ECONNREFUSED }
`;
}

interface EbpfStatus { attached: boolean; problem: string | null; generation: number; programs: { name: string; attach: string; id: number }[]; links: number[]; files: string[]; rules: string[] }
const status = async () => ((await callJson<{ ebpf: EbpfStatus }>(daemon!.admin, 'GET', '/v1/status')).ebpf);

/** The ids of the programs attached to the test's cgroup, by bpftool. */
function attachedIds(): number[] {
  const text = must(['bpftool', '-j', 'cgroup', 'show', cg.dir]).trim(); // (nothing at all when none)
  const out = (text ? JSON.parse(text) : []) as { id: number }[];
  return out.map((p) => p.id).sort((a, b) => a - b);
}
const progIds = () => (JSON.parse(must(['bpftool', '-j', 'prog', 'show'])) as { id: number }[]).map((p) => p.id);
const mapIds = () => (JSON.parse(must(['bpftool', '-j', 'map', 'show'])) as { id: number }[]).map((m) => m.id);

async function startDaemon(extra: string[] = []): Promise<TestDaemon> {
  daemon = await new TestDaemon(tb.dir, policy(), ['--ebpf', 'on', '--ebpf-cgroup', cg.dir, '--kernel', 'off', '--tc', 'off', ...extra]).start();
  return daemon;
}

before(async () => {
  tb = new Testbed();
  cg = new TestCgroup('test');
  const src = join(tb.dir, 'client.c');
  writeFileSync(src, CLIENT);
  bin.static = join(tb.dir, 'client-static');
  must(['gcc', '-static', '-O2', '-o', bin.static, src]);
  bin.other = join(tb.dir, 'client-other');
  copyFileSync(bin.static, bin.other); // the same program in another file: another executable
  bin.refused = join(tb.dir, 'client-refused');
  copyFileSync(bin.static, bin.refused);
  bin.dyn = join(tb.dir, 'client-dyn');
  must(['gcc', '-O2', '-o', bin.dyn, src]);
  bin.uring = join(tb.dir, 'client-uring');
  const r = runSync(['gcc', '-static', '-O2', '-DURING', '-o', bin.uring, src, '-luring'], { timeoutMs: 60_000, ok: 'any' });
  assert.equal(r.code, 0, `gcc -luring (install the Debian package liburing-dev): ${r.stderr}`);
  bin.hey = must(['sh', '-c', 'readlink -f "$(command -v hey)"']).trim();
  await tb.sink(PORT);
  await tb.sink(PORT2);
  await tb.udpSink([PORT]);
  await startDaemon();
});

after(async () => {
  await daemon?.stop();
  cg?.remove();
  tb?.cleanup();
});

test('with no agent, each program gets its exe rule\'s mark from the first packet: a static client, io_uring, Go (hey); a copy of the static client stays unmarked', async () => {
  const s = await status();
  assert.equal(s.attached, true, `attached: ${s.problem}`);
  assert.deepEqual(s.rules, ['static', 'dyn', 'uring', 'go', 'refused']);
  assert.ok(s.files.includes(bin.static!) && s.files.includes(bin.hey!), `files: ${s.files.join(' ')}`);
  const marked = await dscps([bin.static!, 'tcp', tb.serverIp, String(PORT)]);
  assert.equal(marked.out, 'ok');
  assert.ok(marked.dscp.length >= 1, 'packets captured');
  assert.deepEqual([...new Set(marked.dscp)], [46], 'every packet of the connection EF, the SYN first');
  const other = await dscps([bin.other!, 'tcp', tb.serverIp, String(PORT)]);
  assert.equal(other.out, 'ok');
  assert.deepEqual([...new Set(other.dscp)], [0], 'another file with the same bytes is another program');
  assert.deepEqual(await classes([bin.static!, 'tcp', tb.serverIp6, String(PORT)]), [46], 'IPv6: the traffic class');
  assert.deepEqual(await classes([bin.uring!, 'tcp', tb.serverIp, String(PORT)]), [34], 'io_uring connect: AF41');
  const hey = await dscps([bin.hey!, '-n', '1', '-c', '1', '-t', '5', `http://${tb.serverIp}:${PORT}/`], `tcp dst port ${PORT} and tcp[tcpflags] & tcp-syn != 0`);
  assert.ok(hey.dscp.length >= 1, `hey sent a SYN: ${hey.out}`);
  assert.deepEqual([...new Set(hey.dscp)], [26], 'Go: AF31');
  // udp_sendmsg takes the socket's TOS before the sendmsg hook runs: an unconnected socket's
  // first datagram leaves unmarked, the next ones marked (docs/ebpf.md, "Limits")
  const udp = await dscps([bin.static!, 'udp', tb.serverIp, String(PORT)], `udp dst port ${PORT}`);
  assert.deepEqual(udp.dscp, [0, 46]);
});

test('a deny rule by exe refuses the connect with its errno, before any packet', async () => {
  const r = await dscps([bin.refused!, 'tcp', tb.serverIp, String(PORT)]);
  assert.equal(r.out, 'errno 111', 'ECONNREFUSED');
  assert.deepEqual(r.dscp, []);
  // only where the rule says: another port is not refused
  assert.equal(inCgroup([bin.refused!, 'tcp', tb.serverIp, String(PORT2)]).stdout.trim(), 'ok');
});

test('the agent and eBPF from one policy: under the agent the program gets the agent\'s decision (cmdline rule), without it the eBPF decision (exe rule)', async () => {
  const agent = await classes(daemon!.run(bin.dyn!, 'tcp', tb.serverIp, String(PORT)));
  assert.deepEqual(agent, [18], 'AF21: the cmdline rule the agent sees');
  const plain = await classes([bin.dyn!, 'tcp', tb.serverIp, String(PORT)]);
  assert.deepEqual(plain, [40], 'CS5: the exe rule, by eBPF');
  const stat = await classes(daemon!.run(bin.static!, 'tcp', tb.serverIp, String(PORT)));
  assert.deepEqual(stat, [46], 'a static program under qos run: the agent cannot load, eBPF marks it');
});

test('qos flows shows a socket the eBPF programs decided, with the path, program and rule, until it closes', async () => {
  const p = tb.start(cg.argv(tb.client, [bin.static!, 'tcp', tb.serverIp, String(PORT), '30']));
  type F = { path: string; pid: number; exe: string; rule: string; class: string; remote: { address: string; port: number }; proto: string };
  const mine = async () => (await callJson<F[]>(daemon!.admin, 'GET', '/v1/flows')).filter((f) => f.path === 'ebpf' && f.pid === p.pid);
  await waitFor('the static client\'s socket in /v1/flows', async () => (await mine()).length === 1);
  const [f] = await mine();
  assert.equal(f!.exe, bin.static);
  assert.equal(f!.rule, 'static');
  assert.equal(f!.class, 'EF');
  assert.equal(f!.proto, 'tcp');
  assert.deepEqual(f!.remote, { address: tb.serverIp, port: PORT });
  const text = sh([process.execPath, QOS, 'flows', '--admin', daemon!.admin]).stdout;
  assert.match(text, new RegExp(`^ebpf\\s+${p.pid}\\s+-\\s+tcp\\s.*dscp 46\\s+static\\s+${bin.static}$`, 'm'), text);
  p.kill('SIGKILL');
  await waitFor('the socket gone from /v1/flows', async () => (await mine()).length === 0);
});

test('a policy reload changes the mark of the next connection', async () => {
  const before = (await status()).generation;
  writeFileSync(daemon!.policyFile, policy('CS3'));
  const r = sh([process.execPath, QOS, 'reload', '--admin', daemon!.admin]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.ok((await status()).generation > before);
  assert.deepEqual(await classes([bin.static!, 'tcp', tb.serverIp, String(PORT)]), [24], 'CS3');
  writeFileSync(daemon!.policyFile, policy());
  assert.equal(sh([process.execPath, QOS, 'reload', '--admin', daemon!.admin]).status, 0);
  assert.deepEqual(await classes([bin.static!, 'tcp', tb.serverIp, String(PORT)]), [46]);
});

test('stopping leaves no program attached and no map; a daemon killed with SIGKILL leaves none either, and the next one attaches once', async () => {
  const s = await status();
  // the tc programs of per-application limits go on interfaces, only when the policy has limits
  const progs = s.programs.map((p) => p.id).sort((a, b) => a - b);
  const onCgroup = s.programs.filter((p) => p.attach.startsWith('cgroup')).map((p) => p.id).sort((a, b) => a - b);
  assert.equal(onCgroup.length, 8, 'connect4, connect6, sendmsg4, sendmsg6, sock_release; sock_create and the two that count packets (docs/apps.md)');
  assert.deepEqual(attachedIds(), onCgroup, 'bpftool cgroup show: our eight programs');
  await daemon!.stop();
  daemon = null;
  assert.deepEqual(attachedIds(), [], 'nothing attached after a stop');
  assert.deepEqual(progIds().filter((id) => progs.includes(id)), [], 'the programs are gone (bpftool prog show)');
  const d = await startDaemon();
  const again = (await status()).programs.map((p) => p.id);
  // the maps its programs use (not another daemon's: their names are the same)
  const maps = [...new Set(again.flatMap((id) => (JSON.parse(must(['bpftool', '-j', 'prog', 'show', 'id', String(id)])) as { map_ids?: number[] }).map_ids ?? []))];
  assert.ok(maps.length >= 5, `its maps exist while it runs: ${maps.join(' ')}`);
  d.proc.kill('SIGKILL');
  await waitFor('the killed daemon\'s programs detached', () => attachedIds().length === 0);
  assert.deepEqual(progIds().filter((id) => again.includes(id)), []);
  await waitFor('its maps freed', () => mapIds().filter((id) => maps.includes(id)).length === 0);
  // nothing pinned: the machine's bpffs holds nothing of ours
  const pinned = (() => { try { return readdirSync('/sys/fs/bpf'); } catch { return []; } })();
  assert.deepEqual(pinned.filter((n) => n.startsWith('qosd')), []);
  await startDaemon();
  assert.equal(attachedIds().length, 8, 'one set of programs, not two');
  assert.deepEqual(await classes([bin.static!, 'tcp', tb.serverIp, String(PORT)]), [46]);
});

test('--ebpf on with a cgroup that does not exist fails the start, saying why; --ebpf auto starts without, and qos status says why', async () => {
  const missing = join(CGROUP2, `qosd-missing-${process.pid}`);
  const on = sh([process.execPath, QOS, 'daemon', '--socket', join(tb.dir, 'x.sock'), '--admin', join(tb.dir, 'y.sock'), '--rules', join(tb.dir, 'r.json'), '--kernel', 'off', '--tc', 'off', '--ebpf', 'on', '--ebpf-cgroup', missing], { timeout: 60_000 });
  assert.equal(on.status, 69, on.stderr);
  assert.match(on.stderr, new RegExp(`the cgroup ${missing} does not exist`));
  const dir = join(tb.dir, 'auto');
  mkdirSync(dir);
  const auto = await new TestDaemon(dir, null, ['--ebpf', 'auto', '--ebpf-cgroup', missing, '--kernel', 'off', '--tc', 'off']).start();
  try {
    const s = (await callJson<{ ebpf: EbpfStatus }>(auto.admin, 'GET', '/v1/status')).ebpf;
    assert.equal(s.attached, false);
    assert.match(s.problem ?? '', /does not exist/);
    const text = sh([process.execPath, QOS, 'status', '--admin', auto.admin]).stdout;
    assert.match(text, /^ebpf\s+not attached \(--ebpf auto\): the cgroup .* does not exist/m, text);
  } finally {
    await auto.stop();
  }
});
