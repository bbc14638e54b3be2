/* Per-application statistics and limits through the daemon (docs/apps.md). The daemon runs in a
 * Testbed's client namespace (nsenter: `ip netns exec` would mount a sysfs without the test's
 * cgroup) with its eBPF programs on a cgroup of the test's own; programs join that cgroup and
 * namespace and talk to servers in the other namespace over the veth.
 *
 * - Statistics: what two programs sent and received is what their own TCP says it sent and
 *   received (TCP_INFO's bytes and segments, each segment with its 52 bytes of headers), within
 *   1 %; 1,000 programs that live a moment each leave Prometheus at most --stats-labels series
 *   of their own plus "other", whose sum is the total.
 * - Limits: a download and an upload under a limit arrive at the limit (HTB counts link-layer
 *   frames: a TCP payload of MSS bytes travels in MSS + 66), within 5 %, over four sockets at once
 *   (the limit is the program's, not each socket's), while another program's paced download
 *   beside it keeps its own rate; a program the agent decides is held too (the daemon tags its
 *   socket). After SIGKILL the next daemon removes what the killed one left. */

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runSync, start } from '../exec.js';
import { call, callJson } from '../daemon/admin-client.js';
import { LIMIT_PRIO } from '../ebpf/limits.js';
import { QOS, requireE2e, sh, Testbed, TestCgroup, TestDaemon, waitFor } from './harness.js';

requireE2e('iperf3', 'gcc', 'bpftool');

const SINK = 8091, SINK2 = 8092, PERF = 5301, PERF2 = 5302, PERF3 = 5303;
const LABELS = 5;

let tb: Testbed;
let cg: TestCgroup;
let daemon: TestDaemon | null = null;
const bin: Record<string, string> = {};
const must = (argv: string[]) => runSync(argv, { timeoutMs: 120_000 }).stdout;

/** Runs argv in the test's cgroup and the client namespace. */
function inCgroup(argv: string[], timeout = 120_000) {
  const r = sh(cg.argv(tb.client, [...argv]), { timeout });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/* SENDN ADDRESS PORT BYTES: sends BYTES, waits for the other end to close, prints what its TCP
 * says it sent and received (TCP_INFO), as JSON. TINY ADDRESS PORT: one datagram. */
const SENDN = `#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
  inet_pton(AF_INET, argv[1], &a.sin_addr);
#ifdef TINY
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  return sendto(u, "x", 1, 0, (struct sockaddr *)&a, sizeof a) == 1 ? 0 : 1;
#else
  long n = atol(argv[3]);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
  static char buf[65536];
  for (long left = n; left > 0;) { ssize_t w = write(s, buf, left < (long)sizeof buf ? left : (long)sizeof buf); if (w <= 0) { perror("write"); return 1; } left -= w; }
  shutdown(s, SHUT_WR);
  while (read(s, buf, sizeof buf) > 0) {}
  struct tcp_info ti; socklen_t l = sizeof ti;
  getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &l);
  printf("{\\"bytes_sent\\":%llu,\\"segs_out\\":%u,\\"bytes_received\\":%llu,\\"segs_in\\":%u}\\n",
    (unsigned long long)ti.tcpi_bytes_sent, ti.tcpi_segs_out, (unsigned long long)ti.tcpi_bytes_received, ti.tcpi_segs_in);
  close(s);
  return 0;
#endif
}
`;

function policy(): string {
  return `rules:
  - name: slow-agent
    match: { cmdline: "*iperf3-agent*" }
    action: { limit: { ingress: 6Mbit } }
  - name: slow
    match: { exe: ${bin.lim} }
    action: { limit: { egress: 8Mbit, ingress: 10Mbit } }
`;
}

async function startDaemon(text = policy()): Promise<TestDaemon> {
  // one table name for every daemon here: the next daemon with the same options is the one
  // that removes what a killed one left; no rescan during the test: a new interface gets the
  // filters from the link watcher or not at all
  daemon = await new TestDaemon(tb.dir, text, ['--ebpf', 'on', '--ebpf-cgroup', cg.dir, '--kernel', 'off', '--tc', 'off', '--stats-labels', String(LABELS), '--nft-table', `qapps${process.pid % 100000}`, '--ebpf-rescan', '60m'], ['nsenter', `--net=/run/netns/${tb.client}`]).start();
  return daemon;
}

interface Row { key: string; name: string; tx_bytes: number; rx_bytes: number; tx_packets: number; rx_packets: number }
const apps = async (by = 'program') => callJson<{ rows: Row[]; total: { tx_bytes: number; rx_bytes: number }; tracked: number }>(daemon!.admin, 'GET', `/v1/apps?by=${by}`);
interface LimitsStatus { ifb: string | null; problem: string | null; interfaces: string[]; sockets_tagged: number; limits: { name: string }[] }
const limitsStatus = async () => (await callJson<{ ebpf: { limits: LimitsStatus } }>(daemon!.admin, 'GET', '/v1/status')).ebpf.limits;

/** The client namespace's interfaces, and the filters at our priority on its veth. */
const links = () => (JSON.parse(must(['ip', '-n', tb.client, '-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname);
function ourFilters(dev = `${tb.id}c0`): number {
  let n = 0;
  for (const dir of ['ingress', 'egress']) {
    const r = sh(['ip', 'netns', 'exec', tb.client, 'tc', '-j', 'filter', 'show', 'dev', dev, dir]);
    if (r.status === 0 && r.stdout.trim()) n += (JSON.parse(r.stdout) as { pref?: number; options?: unknown }[]).filter((f) => f.pref === LIMIT_PRIO && f.options).length;
  }
  return n;
}

before(async () => {
  tb = new Testbed();
  cg = new TestCgroup('apps');
  const src = join(tb.dir, 'sendn.c');
  writeFileSync(src, SENDN);
  bin.a = join(tb.dir, 'sender-a');
  must(['gcc', '-O2', '-o', bin.a, src]);
  bin.b = join(tb.dir, 'sender-b');
  copyFileSync(bin.a, bin.b); // the same bytes in another file: another program
  bin.tiny = join(tb.dir, 'tiny');
  must(['gcc', '-O2', '-DTINY', '-o', bin.tiny, src]);
  const iperf3 = must(['sh', '-c', 'readlink -f "$(command -v iperf3)"']).trim();
  for (const k of ['lim', 'free', 'agent']) { bin[k] = join(tb.dir, `iperf3-${k}`); copyFileSync(iperf3, bin[k]!); }
  await tb.sink(SINK);
  await tb.sink(SINK2);
  await tb.udpSink([SINK]);
  for (const p of [PERF, PERF2, PERF3]) { tb.start(['iperf3', '-s', '-p', String(p)], tb.server); await tb.waitListening(p); }
  await startDaemon();
});

after(async () => {
  await daemon?.stop();
  cg?.remove();
  tb?.cleanup();
});

test('two programs: what each sent and received is what its TCP says it sent and received, headers included, within 1 %', async () => {
  const ra = JSON.parse(inCgroup([bin.a!, tb.serverIp, String(SINK), '3000000'])) as { bytes_sent: number; segs_out: number; bytes_received: number; segs_in: number };
  const rb = JSON.parse(inCgroup([bin.b!, tb.serverIp, String(SINK2), '1000000'])) as typeof ra;
  // each segment carries 20 bytes of IPv4 header and 32 of TCP (with timestamps); the SYN 8 more
  const wire = (r: typeof ra) => ({ tx: r.bytes_sent + r.segs_out * 52 + 8, rx: r.bytes_received + r.segs_in * 52 + 8 });
  const rows = (await apps()).rows;
  for (const [path, r] of [[bin.a!, ra], [bin.b!, rb]] as const) {
    const row = rows.find((x) => x.name === path);
    assert.ok(row, `a row for ${path}: ${rows.map((x) => x.name).join(', ')}`);
    const w = wire(r);
    assert.ok(Math.abs(row.tx_bytes - w.tx) / w.tx < 0.01, `${path} sent: counted ${row.tx_bytes}, its TCP ${w.tx} (${r.bytes_sent} bytes in ${r.segs_out} segments)`);
    assert.ok(Math.abs(row.rx_bytes - w.rx) / w.rx < 0.01, `${path} received: counted ${row.rx_bytes}, its TCP ${w.rx} (${r.segs_in} segments)`);
    assert.ok(Math.abs(row.tx_packets - r.segs_out) <= 2, `${path}: ${row.tx_packets} packets counted, ${r.segs_out} segments sent`);
  }
  const users = (await apps('user')).rows;
  assert.ok(users.some((u) => u.name === 'root' && u.tx_bytes >= wire(ra).tx + wire(rb).tx * 0.99), 'by user: root has both');
  const units = (await apps('unit')).rows;
  assert.ok(units.some((u) => u.name === `/qosd-apps-${process.pid}`), `by unit: the test's cgroup: ${units.map((u) => u.name).join(', ')}`);
  // qos top shows the same, as people read it
  const top = sh([process.execPath, QOS, 'top', '--admin', daemon!.admin, '--once', '--interval', '200ms', '--rows', '50']);
  assert.equal(top.status, 0, top.stderr);
  assert.match(top.stdout, /^qos top: by program/);
  assert.ok(top.stdout.includes(bin.a!) && top.stdout.includes(bin.b!), top.stdout);
});

test('1,000 programs that live a moment each: Prometheus keeps at most --stats-labels programs of their own and "other", summing to the total', async () => {
  const dir = join(tb.dir, 'many');
  mkdirSync(dir);
  for (let i = 0; i < 1000; i++) copyFileSync(bin.tiny!, join(dir, `p${i}`));
  inCgroup(['sh', '-c', `for f in ${dir}/p*; do "$f" ${tb.serverIp} ${SINK} || exit 1; done`], 300_000);
  const text = (await call(daemon!.admin, 'GET', '/metrics')).body;
  const series = text.split('\n').filter((l) => l.startsWith('qosd_app_bytes_total{') && l.includes('direction="tx"'));
  assert.ok(series.length >= 2 && series.length <= LABELS + 1, `${series.length} series:\n${series.join('\n')}`);
  assert.ok(series.some((l) => l.includes('program="other"')), 'the rest are "other"');
  const sum = series.reduce((a, l) => a + Number(l.split(' ').pop()), 0);
  const { total, tracked } = await apps();
  assert.ok(sum <= total.tx_bytes && sum >= total.tx_bytes - 200, `the series sum to the total sent: ${sum} of ${total.tx_bytes}`);
  assert.ok(tracked >= 1000, `the table tracks them (${tracked}), within its bound`);
  for (const name of ['qosd_user_bytes_total', 'qosd_unit_bytes_total']) {
    const n = text.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes('direction="tx"')).length;
    assert.ok(n >= 1 && n <= LABELS + 1, `${name}: ${n} series`);
  }
});

/** Runs iperf3 (a copy at path) in the cgroup; its JSON's received rate in bit/s and MSS. */
function iperf(argv: string[]): { bps: number; mss: number } {
  const r = JSON.parse(inCgroup(argv)) as { error?: string; start: { tcp_mss_default?: number }; end: { sum_received: { bits_per_second: number } } };
  assert.equal(r.error, undefined);
  return { bps: r.end.sum_received.bits_per_second, mss: r.start.tcp_mss_default ?? 1448 };
}
/** What a TCP payload gets of a limit on link-layer frames: MSS of every MSS + 66 bytes. */
const goodput = (limitBits: number, mss: number) => limitBits * mss / (mss + 66);

test('limits: an upload and a download over four sockets arrive at the program\'s limit within 5 %, while another program\'s paced download beside it keeps its rate', async () => {
  await waitFor('the limits set up', async () => { const s = await limitsStatus(); return s.ifb !== null && s.interfaces.includes(`${tb.id}c0`); }, 100, 30_000);
  assert.equal(ourFilters(), 2, 'the two filters on the veth');
  const up = iperf([bin.lim!, '-c', tb.serverIp, '-p', String(PERF), '-t', '5', '-O', '1', '-P', '4', '-J']);
  const want = goodput(8e6, up.mss);
  assert.ok(Math.abs(up.bps - want) / want < 0.05, `upload: ${(up.bps / 1e6).toFixed(2)} Mbit/s of payload at the receiver; the 8 Mbit/s limit gives ${(want / 1e6).toFixed(2)}`);
  // the download, and another program's paced at 20 Mbit/s by its sender, at once
  const freeOut = join(tb.dir, 'free.json');
  const free = start(cg.argv(tb.client, ['sh', '-c', `${bin.free} -c ${tb.serverIp} -p ${PERF2} -R -b 20M -t 7 -O 1 -J > ${freeOut}`]));
  const down = iperf([bin.lim!, '-c', tb.serverIp, '-p', String(PERF), '-R', '-t', '5', '-O', '1', '-P', '4', '-J']);
  await free.wait([0], 60_000);
  const wantDown = goodput(10e6, down.mss);
  assert.ok(Math.abs(down.bps - wantDown) / wantDown < 0.05, `download: ${(down.bps / 1e6).toFixed(2)} Mbit/s; the 10 Mbit/s limit gives ${(wantDown / 1e6).toFixed(2)}`);
  const other = (JSON.parse(readFileSync(freeOut, 'utf8')) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
  assert.ok(Math.abs(other - 20e6) / 20e6 < 0.05, `the other program's download: ${(other / 1e6).toFixed(2)} Mbit/s of its 20`);
  const rows = (await apps()).rows;
  assert.ok((rows.find((r) => r.name === bin.free)?.rx_bytes ?? 0) > 0, 'counted too');
});

test('limits: a program the agent decides is held too (the daemon tags its socket)', async () => {
  const before = (await limitsStatus()).sockets_tagged;
  const r = JSON.parse(inCgroup([...daemon!.run(bin.agent!, '-c', tb.serverIp, '-p', String(PERF3), '-R', '-t', '5', '-O', '1', '-J')])) as { end: { sum_received: { bits_per_second: number } }; start: { tcp_mss_default?: number } };
  const want = goodput(6e6, r.start.tcp_mss_default ?? 1448);
  const got = r.end.sum_received.bits_per_second;
  assert.ok(Math.abs(got - want) / want < 0.05, `under the agent: ${(got / 1e6).toFixed(2)} Mbit/s; the 6 Mbit/s limit gives ${(want / 1e6).toFixed(2)}`);
  assert.ok((await limitsStatus()).sockets_tagged >= before + 2, 'its control and data sockets tagged');
});

test('qos explain names the limit a socket\'s tag in the kernel puts it under, and none for another program\'s', async () => {
  const held = (path: string, port: number) => start(cg.argv(tb.client, [path, '-c', tb.serverIp, '-p', String(port), '-t', '20', '-b', '100k']));
  const a = held(bin.lim!, PERF), b = held(bin.free!, PERF2);
  try {
    const pidOf = async (path: string) => { let pid = 0; await waitFor(`${path} running`, () => { pid = Number(sh(['pgrep', '-n', '-f', `^${path} -c`]).stdout.trim()); return pid > 0; }); return pid; };
    type Sock = { remote: string; limit: { in: string; name?: string; id?: number; egress_bps?: number | null; ingress_bps?: number | null; why?: string } };
    // its control and data sockets, both to the server's port
    const socks = async (pid: number, port: number) => {
      let out: Sock[] = [];
      await waitFor('its sockets', async () => { out = (await callJson<{ sockets: Sock[] }>(daemon!.admin, 'POST', '/v1/explain', { pid })).sockets.filter((k) => k.remote.endsWith(`:${port}`)); return out.length >= 2; });
      return out;
    };
    for (const k of await socks(await pidOf(bin.lim!), PERF)) assert.deepEqual(k.limit, { in: 'limit', name: 'slow', id: k.limit.id, egress_bps: 8e6, ingress_bps: 10e6 });
    for (const k of await socks(await pidOf(bin.free!), PERF2)) assert.deepEqual(k.limit, { in: 'none', why: 'its tag in the kernel names no limit' });
  } finally {
    a.kill(); b.kill();
  }
});

test('an interface that appears while the daemon runs gets the two filters, from the link watcher (not the 10 s rescan)', async (t) => {
  const dev = `${tb.id}n0`;
  const t0 = Date.now();
  must(['ip', '-n', tb.client, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${tb.id}n1`]);
  try {
    await waitFor(`the filters on ${dev}`, () => ourFilters(dev) === 2, 20, 30_000);
    t.diagnostic(`filters on the new interface ${Date.now() - t0} ms after ip link add`);
    assert.ok((await limitsStatus()).interfaces.includes(dev));
  } finally {
    must(['ip', '-n', tb.client, 'link', 'del', dev]);
  }
  await waitFor('the interface gone from the status', async () => !(await limitsStatus()).interfaces.includes(dev), 50, 30_000);
});

test('stop removes the IFB device and the filters; after SIGKILL the next daemon removes what the killed one left', async () => {
  const s = await limitsStatus();
  assert.ok(s.ifb && links().includes(s.ifb));
  await daemon!.stop();
  daemon = null;
  assert.ok(!links().includes(s.ifb!), 'the IFB device is gone');
  assert.equal(ourFilters(), 0, 'no filter of ours is left');
  const killed = await startDaemon();
  await waitFor('the limits set up', async () => (await limitsStatus()).ifb !== null && ourFilters() === 2, 100, 30_000);
  killed.proc.kill('SIGKILL');
  await new Promise((r) => killed.proc.once('exit', r));
  assert.ok(links().includes(s.ifb!) && ourFilters() === 2, `SIGKILL leaves them: ${links().join(' ')}, ${ourFilters()} filters`);
  await startDaemon('rules: []\n');
  assert.ok(!links().includes(s.ifb!), 'the next daemon removed the IFB device');
  assert.equal(ourFilters(), 0, 'and the filters');
});
