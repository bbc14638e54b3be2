/* Traffic control that follows interfaces (docs/traffic-control.md, "Interfaces that come and
 * go"): a daemon in the client namespace has a flow with an IPv4 and an IPv6 filter on the
 * client's veth; the veth is deleted and made again with its name, renamed, taken down and
 * up, and the daemon's link monitor is killed while the veth goes. Each time the kernel is
 * read (tc, nft) and the packets that reach the server (tcpdump, tshark) must carry the flow's
 * DSCP again. How long the return took is printed (t.diagnostic), not asserted: the issue's
 * 2 s depends on this machine's load; the test only bounds it generously. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { callJson } from '../daemon/admin-client.js';
import { CBR_PROGRAM } from '../tc/cbr.js';
import { QOS, requireE2e, sh, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e('python3', 'nft');
let tb: Testbed;
let daemon: TestDaemon;
let dev: string;
let table: string;
let flowClass: string;
/** the flow's own DSCP (AF41), different from every default mark */
const DSCP = 34;
const PORT4 = 6101, PORT6 = 6102;
/** how long the return may take before the test fails: a bound for a broken daemon, not a measure */
const RETURN_BOUND_MS = 30_000;

const qos = (...args: string[]) => sh([process.execPath, QOS, ...args, '--admin', daemon.admin], { timeout: 120_000 });
const api = <T>(method: string, path: string, body?: unknown) => callJson<T>(daemon.admin, method, path, body, 60_000);
const inClient = (...argv: string[]) => sh(['ip', 'netns', 'exec', tb.client, ...argv]);

interface Listing {
  interfaces: Array<{ dev: string; present: boolean; absent: { since: string; why: string } | null; flows: number }>;
  flows: Array<{ id: number; dev: string; waiting: boolean }>;
  filters: Array<{ id: number; flow: number; family: number }>;
}
interface Status { tc: { changes_applied: number; absent: Array<{ dev: string; why: string }>; link_events: Record<string, number>; last_link_event: { dev: string; what: string; why?: string } | null }; links: { monitor: string; monitor_pid: number | null; restarts: number; last_exit: { how: string } | null } }
const listing = () => api<Listing>('GET', '/v1/tc');
const status = () => api<Status>('GET', '/v1/status');

const qdisc = (name = dev) => inClient('tc', 'qdisc', 'show', 'dev', name).stdout;
const classes = (name = dev) => inClient('tc', 'class', 'show', 'dev', name).stdout;
const nftTable = () => inClient('nft', 'list', 'table', 'inet', table);

/** Whether the whole of the flow's traffic control is on the interface: our root qdisc, the
 * flow's class, and the lookups of both families naming it with the filters' elements. */
function installed(name = dev): boolean {
  const n = nftTable();
  return /htb d5c: root/.test(qdisc(name)) && classes(name).includes(`class htb ${flowClass} `)
    && n.status === 0 && n.stdout.includes(`oifname "${name}" ip saddr`) && n.stdout.includes(`oifname "${name}" ip6 saddr`)
    && new RegExp(`\\b${PORT4} : goto flow_`).test(n.stdout) && new RegExp(`\\b${PORT6} : goto flow_`).test(n.stdout);
}

/** The DSCPs of the IPv4 and the IPv6 datagrams the filters match, as the server receives them. */
async function marks(): Promise<{ v4: number[]; v6: number[] }> {
  const cap = await tb.capture(`udp port ${PORT4} or udp port ${PORT6}`);
  for (const [dst, port] of [[tb.serverIp, PORT4], [tb.serverIp6, PORT6]] as const) {
    const r = inClient('python3', '-c', CBR_PROGRAM, dst, String(port), '400000', '0.2');
    assert.equal(r.status, 0, r.stderr);
  }
  const pkts = await cap.packets();
  const set = (v6: boolean, port: number) => [...new Set(pkts.filter((p) => p.ipv6 === v6 && p.dstPort === port).map((p) => p.dscp))];
  return { v4: set(false, PORT4), v6: set(true, PORT6) };
}

/** Makes the veth again with its name and times the return: from `ip link add` to our root
 * qdisc on it, and to the whole of it (classes, nft lookups); then gives it its addresses. */
async function relink(t: { diagnostic(s: string): void }, what: string): Promise<void> {
  const at = tb.addLink();
  await waitFor('the root qdisc d5c: on the interface made again', () => /htb d5c: root/.test(qdisc()), 5, RETURN_BOUND_MS);
  const qdiscMs = performance.now() - at;
  await waitFor('its classes and nft lookups', () => installed(), 5, RETURN_BOUND_MS);
  const allMs = performance.now() - at;
  t.diagnostic(`${what}: root qdisc d5c: back ${qdiscMs.toFixed(0)} ms after ip link add, classes and nft lookups ${allMs.toFixed(0)} ms (polled every 5 ms)`);
  tb.configureLink();
}

/** Whether process pid has ended (gone, or a zombie nobody reaped yet). */
function ended(pid: number): boolean {
  const stat = sh(['cat', `/proc/${pid}/stat`]);
  return stat.status !== 0 || /^\d+ \(.*\) Z /.test(stat.stdout);
}

/** Deletes the veth; waits until the daemon says the interface is absent. */
async function unlink(): Promise<void> {
  assert.equal(sh(['ip', '-n', tb.client, 'link', 'del', dev]).status, 0);
  await waitFor('qos tc flows to say the interface is absent', async () => (await listing()).interfaces.some((i) => i.dev === dev && !i.present), 20, RETURN_BOUND_MS);
}

before(async () => {
  tb = new Testbed();
  dev = `${tb.id}c0`;
  daemon = await new TestDaemon(tb.dir, null, ['--kernel', 'off'], ['ip', 'netns', 'exec', tb.client]).start();
  table = `${daemon.nftTable}_tc`;
  await tb.udpSink([PORT4, PORT6]);
  assert.equal(qos('tc', 'set-interface', dev, '--rate', '10Mbit').status, 0);
  const flow = JSON.parse(qos('tc', 'add-flow', '--dev', dev, '--token-rate', '2Mbit', '--bucket', '10kB', '--service', 'controlled-load', '--dscp', String(DSCP), '--json').stdout) as { id: number };
  flowClass = `d5c:${(0x10 + flow.id).toString(16)}`;
  for (const [dst, port] of [[tb.serverIp, PORT4], [tb.serverIp6, PORT6]] as const) {
    const r = qos('tc', 'add-filter', '--flow', String(flow.id), '--dst', dst, '--proto', 'udp', '--dport', String(port));
    assert.equal(r.status, 0, r.stderr);
  }
  assert.ok(installed(), 'installed at first');
  assert.deepEqual(await marks(), { v4: [DSCP], v6: [DSCP] }, 'marked before anything happens to the interface');
});

after(async () => {
  await daemon?.stop();
  tb?.cleanup();
});

test('an interface deleted keeps its traffic control, waiting; made again with its name, all of it comes back and IPv4 and IPv6 packets carry the flow\'s DSCP again', async (t) => {
  const was = await listing();
  await unlink();
  const l = await listing();
  assert.deepEqual(l.flows.map((f) => [f.dev, f.waiting]), [[dev, true]], 'the flow waits');
  assert.deepEqual(l.filters, was.filters, 'both filters kept');
  assert.equal(l.interfaces[0]!.absent!.why, 'gone');
  const text = qos('tc', 'flows');
  assert.match(text.stdout, new RegExp(`${dev}: .*\\n  absent since \\S+ \\(gone\\): its flows and filters wait for it`));
  assert.match(text.stdout, /\bwaiting\s*$/m);
  assert.notEqual(nftTable().status, 0, 'its only interface gone, the table went with its lookups');
  assert.match(qos('status').stdout, new RegExp(`${dev} absent since \\S+ \\(gone\\): ${dev}'s flows wait for it`));
  const restored = (await status()).tc.link_events.restored!;
  await relink(t, 'deleted and made again');
  // the kernel has it all before the daemon has taken it in (its state, the note for status,
  // the log): wait for the return to be handled
  await waitFor('the daemon to have handled the return', async () => (await status()).tc.link_events.restored === restored + 1, 20, RETURN_BOUND_MS);
  const s = await status();
  assert.deepEqual(s.tc.absent, []);
  assert.equal(s.tc.last_link_event!.what, 'restored');
  assert.match(qos('status').stdout, new RegExp(`last interface change: ${dev} restored at `));
  assert.ok((await listing()).flows.every((f) => !f.waiting));
  assert.deepEqual(await marks(), { v4: [DSCP], v6: [DSCP] });
  assert.match(daemon.log, /interface gone: its traffic control/);
  assert.match(daemon.log, /interface back: its traffic control is installed again/);
});

test('a rename (same index) moves the traffic control to the new name: the kernel keeps qdisc and classes, the lookups name the new name', async () => {
  const other = `${tb.id}r0`;
  const before = (await status()).tc.link_events.renamed!;
  assert.equal(inClient('ip', 'link', 'set', 'dev', dev, 'down').status, 0);
  assert.equal(inClient('ip', 'link', 'set', 'dev', dev, 'name', other).status, 0);
  await waitFor('the configuration under the new name', async () => (await listing()).interfaces.some((i) => i.dev === other && i.present), 20, RETURN_BOUND_MS);
  assert.ok(installed(other));
  assert.ok(!nftTable().stdout.includes(`oifname "${dev}"`), 'no lookup names the old name');
  assert.deepEqual((await listing()).flows.map((f) => f.dev), [other]);
  assert.equal((await status()).tc.link_events.renamed, before + 1);
  tb.configureLink(other);
  assert.deepEqual(await marks(), { v4: [DSCP], v6: [DSCP] });
  // and back to its name for the other tests
  assert.equal(inClient('ip', 'link', 'set', 'dev', other, 'down').status, 0);
  assert.equal(inClient('ip', 'link', 'set', 'dev', other, 'name', dev).status, 0);
  await waitFor('the configuration under its name again', async () => (await listing()).interfaces.some((i) => i.dev === dev && i.present), 20, RETURN_BOUND_MS);
  tb.configureLink();
  assert.ok(installed());
});

test('down and up: the kernel keeps the root qdisc and classes; the daemon changes nothing and packets are marked after it', async () => {
  const s0 = (await status()).tc;
  assert.equal(inClient('ip', 'link', 'set', 'dev', dev, 'down').status, 0);
  assert.ok(/htb d5c: root/.test(qdisc()) && classes().includes(`class htb ${flowClass} `), 'kept while down');
  assert.equal(inClient('ip', 'link', 'set', 'dev', dev, 'up').status, 0);
  await waitFor('the daemon to have handled down and up', async () => (await status()).tc.link_events.handled! >= s0.link_events.handled! + 2, 20, RETURN_BOUND_MS);
  const s1 = (await status()).tc;
  assert.equal(s1.changes_applied, s0.changes_applied, 'nothing reinstalled');
  assert.deepEqual({ ...s1.link_events, handled: 0 }, { ...s0.link_events, handled: 0 });
  assert.ok(installed());
  tb.configureLink(); // IPv6 addresses and neighbour entries go with a link that goes down
  assert.deepEqual(await marks(), { v4: [DSCP], v6: [DSCP] });
});

test('the link monitor killed with SIGKILL is started again, and a deletion made while it was dead is noticed; its return too', async (t) => {
  const s0 = await status();
  const monitor = s0.links.monitor_pid;
  assert.ok(monitor, `a monitor runs: ${JSON.stringify(s0.links)}`);
  // the daemon stopped for the moment, so that the link goes while no monitor runs at all
  const daemonPid = daemon.proc.pid!;
  process.kill(daemonPid, 'SIGSTOP');
  try {
    process.kill(monitor, 'SIGKILL');
    await waitFor('the monitor to die', () => ended(monitor), 5, RETURN_BOUND_MS);
    assert.equal(sh(['ip', '-n', tb.client, 'link', 'del', dev]).status, 0);
  } finally {
    process.kill(daemonPid, 'SIGCONT');
  }
  await waitFor('a new monitor', async () => { const l = (await status()).links; return l.monitor === 'running' && l.restarts === s0.links.restarts + 1; }, 20, RETURN_BOUND_MS);
  const s1 = await status();
  assert.notEqual(s1.links.monitor_pid, monitor);
  assert.match(s1.links.last_exit!.how, /SIGKILL/);
  await waitFor('the deletion noticed', async () => (await listing()).interfaces.some((i) => i.dev === dev && !i.present), 20, RETURN_BOUND_MS);
  assert.match(daemon.log, /the link monitor \(ip monitor link\) ended; starting it again/);
  await relink(t, 'after the monitor\'s restart');
  assert.deepEqual(await marks(), { v4: [DSCP], v6: [DSCP] });
});

test('back with a root qdisc not ours (made under another name, renamed): refused, said in status and the log; the daemon runs on, and set-interface installs it once that qdisc is gone', async () => {
  await unlink();
  const refused = (await status()).tc.link_events.refused!;
  const tmp = `${tb.id}t0`;
  tb.addLink(tmp);
  assert.equal(inClient('tc', 'qdisc', 'add', 'dev', tmp, 'root', 'handle', '1:', 'htb').status, 0);
  assert.equal(inClient('ip', 'link', 'set', 'dev', tmp, 'name', dev).status, 0);
  await waitFor('the refusal', async () => (await status()).tc.link_events.refused === refused + 1, 20, RETURN_BOUND_MS);
  const s = await status();
  assert.match(s.tc.absent[0]!.why, /root qdisc, htb 1:, that is not this daemon's/);
  assert.match(qos('status').stdout, new RegExp(`last interface change: ${dev} refused at \\S+: it has a root qdisc, htb 1:`));
  assert.match(daemon.log, /interface back, but its traffic control is not installed: it waits/);
  assert.match(qdisc(), /htb 1: root/, 'the other qdisc left alone');
  assert.equal(daemon.proc.exitCode, null);
  const busy = qos('tc', 'set-interface', dev);
  assert.equal(busy.status, 73, busy.stderr);
  assert.match(busy.stderr, /already has a root qdisc, htb 1:/);
  assert.equal(inClient('tc', 'qdisc', 'del', 'dev', dev, 'root').status, 0);
  assert.equal(qos('tc', 'set-interface', dev).status, 0);
  assert.ok(installed());
  tb.configureLink();
  assert.deepEqual(await marks(), { v4: [DSCP], v6: [DSCP] });
});

test('a daemon killed with SIGKILL takes its link monitor with it (an orphan would keep the namespace alive)', async () => {
  const monitor = (await status()).links.monitor_pid!;
  assert.match(sh(['cat', `/proc/${monitor}/cmdline`]).stdout.replace(/\0/g, ' '), /^ip -o monitor link/);
  daemon.proc.kill('SIGKILL');
  await waitFor('the daemon to die', () => daemon.proc.exitCode !== null || daemon.proc.signalCode !== null);
  await waitFor('its link monitor to die with it', () => ended(monitor), 20, RETURN_BOUND_MS);
});
