/* Host traffic control end to end (docs/traffic-control.md): a daemon in the client namespace
 * puts flows on the client's veth (given a 10 Mb/s link rate); constant-bit-rate UDP senders
 * run in the client, and the server's capture, read by tshark, says what arrived, when, and
 * with which DSCP. Rates are measured at the receiver from the capture's timestamps. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { callJson } from '../daemon/admin-client.js';
import { CBR_PAYLOAD, CBR_PROGRAM } from '../tc/cbr.js';
import { QOS, requireE2e, sh, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e('python3');
let tb: Testbed;
let daemon: TestDaemon;
let dev: string;

/** An unmodified iperf3 under the agent gets a flow from the H.263 CIF template, shaped. */
const POLICY = `rules:
  - name: video
    match: { exe: "*iperf3*", proto: udp }
    action: { template: H263CIF, service: guaranteed }
  - name: voice
    match: { exe: "*python3*", remote_port: 6030 }
    action: { dscp: EF, template: G711, service: guaranteed }
`;
/** nogroup may use the admin API, so that a non-root caller reaches the tc routes' own check */
const DAEMON_ARGS = ['--kernel', 'off', '--admin-group', '65534'];
const PAYLOAD = CBR_PAYLOAD;
const qos = (...args: string[]) => sh([process.execPath, QOS, 'tc', ...args, '--admin', daemon.admin], { timeout: 120_000 });
const api = <T>(method: string, path: string, body?: unknown) => callJson<T>(daemon.admin, method, path, body, 60_000);
const inClient = (...argv: string[]) => sh(['ip', 'netns', 'exec', tb.client, ...argv]).stdout;


function cbr(port: number, bps: number, secs: number, dst = tb.serverIp): number {
  const r = sh(['ip', 'netns', 'exec', tb.client, 'python3', '-c', CBR_PROGRAM, dst, String(port), String(bps), String(secs)], { timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout.trim());
}

interface Arrival { at: number; sent: number; seq: number; dscp: number; port: number; ipLen: number }

/** The datagrams to ports that arrived, from the server's capture. */
async function arrivals(cap: Awaited<ReturnType<Testbed['capture']>>): Promise<Arrival[]> {
  await cap.packets(); // stops the capture once every packet sent is in it
  const out = sh(['tshark', '-r', cap.file, '-Y', 'udp && data', '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.dsfield.dscp', '-e', 'udp.dstport', '-e', 'ip.len', '-e', 'data.data', '-E', 'separator=|']).stdout;
  return out.split('\n').filter(Boolean).map((l) => {
    const [at, dscp, port, len, data] = l.split('|');
    const b = Buffer.from(data!.slice(0, 24), 'hex');
    return { at: Number(at), dscp: Number(dscp), port: Number(port), ipLen: Number(len), seq: b.readUInt32BE(0), sent: b.readDoubleBE(4) };
  }).filter((a) => a.ipLen === PAYLOAD + 28);
}

/** Payload bits/s over the arrivals between the first and last fifth of the run (the bucket's
 * burst at the start and the queue draining at the end left out). */
function steadyRate(a: Arrival[]): number {
  const t0 = a[0]!.at, t1 = a[a.length - 1]!.at, span = t1 - t0;
  const mid = a.filter((x) => x.at >= t0 + span / 5 && x.at <= t1 - span / 5);
  return ((mid.length - 1) * PAYLOAD * 8) / (mid[mid.length - 1]!.at - mid[0]!.at);
}

const tcState = () => ({ qdisc: inClient('tc', 'qdisc', 'show', 'dev', dev), nft: inClient('nft', 'list', 'tables') });

before(async () => {
  tb = new Testbed();
  chmodSync(tb.dir, 0o711);
  dev = `${tb.id}c0`;
  daemon = await new TestDaemon(tb.dir, POLICY, DAEMON_ARGS, ['ip', 'netns', 'exec', tb.client]).start();
  await tb.udpSink([6001, 6002, 6003, 6004, 6005]);
  const r = qos('set-interface', dev, '--rate', '10Mbit', '--json');
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

test('shape: a 5 Mb/s CBR sender shaped to 1 Mb/s arrives at 1 Mb/s, each datagram when the token bucket lets it go', async (t) => {
  const bucket = 10_000;
  const flow = await api<{ id: number; rate: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: '1Mbit', TokenBucketSize: bucket, MinimumPolicedSize: PAYLOAD }, service: 'guaranteed' });
  assert.equal(qos('add-filter', '--flow', String(flow.id), '--dst', tb.serverIp, '--proto', 'udp', '--dport', '6001').status, 0);
  const cap = await tb.capture('udp port 6001');
  const sent = cbr(6001, 5e6, 3);
  const a = (await arrivals(cap)).filter((x) => x.port === 6001);
  // every datagram that arrived is the flow's, marked Guaranteed's CS5 (shape mode: all conform)
  assert.deepEqual([...new Set(a.map((x) => x.dscp))], [40]);
  const rate = steadyRate(a);
  // the kernel's rate is the actual token rate, headers counted: TokenRate x 1028/1000 of IP
  // bytes; HTB also counts the 14-byte Ethernet header, so payload arrives at TokenRate x 1028/1042
  assert.ok(Math.abs(rate / 1e6 - 1) <= 0.05, `shaped to 1 Mb/s, arrived at ${(rate / 1e6).toFixed(3)} Mb/s (${a.length} of ${sent})`);
  // the delay of each datagram: a token bucket of `bucket` bytes filling at the flow's rate,
  // fed the datagrams that arrived at their send times, lets each go at the predicted time
  const r = flow.rate, frame = PAYLOAD + 28 + 14;
  let tokens = bucket, last = a[0]!.sent, free = 0;
  const errors = a.map((x) => {
    const start = Math.max(x.sent, free);
    tokens = Math.min(bucket, tokens + (start - last) * r);
    const wait = tokens >= frame ? 0 : (frame - tokens) / r;
    free = start + wait; tokens += wait * r - frame; last = free;
    return Math.abs((x.at - x.sent) - (free - x.sent));
  });
  const within = errors.filter((e) => e <= 0.02).length / errors.length;
  const early = a.findIndex((x) => x.at - x.sent > 0.005);
  t.diagnostic(`shape: ${(rate / 1e6).toFixed(4)} Mb/s, ${(within * 100).toFixed(1)}% within 20 ms of the bucket, ${early} passed at once, ${a.length} of ${sent} arrived`);
  assert.ok(within >= 0.9, `${(within * 100).toFixed(1)}% of datagrams left within 20 ms of the token bucket's time (median error ${(errors.sort((p, q) => p - q)[errors.length >> 1]! * 1e3).toFixed(1)} ms)`);
  // the first ones pass at once: the bucket's bytes, plus what it refills meanwhile
  assert.ok(early >= Math.floor(bucket / frame) - 1, `only ${early} datagrams passed before the bucket (${bucket} bytes) ran out`);
  assert.equal(qos('del-flow', String(flow.id)).status, 0);
});

test('discard: the loss is the excess over the token bucket, the rest arrives unmarked by the policer', async (t) => {
  const bucket = 20_000, tokenRate = 125_000;
  const flow = await api<{ id: number; rate: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: tokenRate, TokenBucketSize: bucket, MinimumPolicedSize: PAYLOAD }, service: 'controlled-load', mode: 'discard' });
  await api('POST', '/v1/tc/filters', { flow: flow.id, dst: tb.serverIp, proto: 'udp', dport: 6002 });
  const cap = await tb.capture('udp port 6002');
  const secs = 3;
  const sent = cbr(6002, 4e6, secs);
  const a = (await arrivals(cap)).filter((x) => x.port === 6002);
  const span = a[a.length - 1]!.sent - a[0]!.sent;
  // a CBR source through a policer: the bucket, then the actual token rate (headers counted)
  const expected = Math.min(sent, Math.floor((bucket + tokenRate * ((PAYLOAD + 28) / PAYLOAD) * span) / (PAYLOAD + 28)));
  assert.ok(Math.abs(a.length - expected) <= Math.max(3, expected * 0.05), `${a.length} of ${sent} arrived; the token bucket passes ${expected}`);
  const loss = 1 - a.length / sent, theory = 1 - expected / sent;
  t.diagnostic(`discard: ${a.length} of ${sent} arrived, theory ${expected}; loss ${(loss * 100).toFixed(2)}% vs ${(theory * 100).toFixed(2)}%`);
  assert.ok(Math.abs(loss - theory) <= 0.03, `loss ${(loss * 100).toFixed(1)}%, theory ${(theory * 100).toFixed(1)}%`);
  assert.deepEqual([...new Set(a.map((x) => x.dscp))], [24]);
  // what passed was not delayed: discard mode polices, it does not shape
  const late = a.filter((x) => x.at - x.sent > 0.05).length;
  assert.ok(late <= a.length * 0.05, `${late} of ${a.length} datagrams waited over 50 ms`);
  assert.equal(qos('del-flow', String(flow.id)).status, 0);
});

test('borrow: alone the flow uses the idle link, the excess demoted to CS1; against competing traffic it keeps its token rate', async (t) => {
  const tokenRate = 250_000; // 2 Mb/s
  const flow = await api<{ id: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: tokenRate, TokenBucketSize: 10_000, MinimumPolicedSize: PAYLOAD }, service: 'controlled-load' });
  await api('POST', '/v1/tc/filters', { flow: flow.id, dst: tb.serverIp, proto: 'udp', dport: 6003 });
  let cap = await tb.capture('udp port 6003');
  cbr(6003, 5e6, 3);
  let a = (await arrivals(cap)).filter((x) => x.port === 6003);
  const alone = steadyRate(a);
  assert.ok(alone >= 0.9 * 5e6, `alone on an idle 10 Mb/s link it got ${(alone / 1e6).toFixed(2)} Mb/s of the 5 it sent`);
  const conforming = a.filter((x) => x.dscp === 24), demoted = a.filter((x) => x.dscp === 8);
  assert.equal(conforming.length + demoted.length, a.length, `only CS3 and CS1: ${[...new Set(a.map((x) => x.dscp))].join(',')}`);
  const span = a[a.length - 1]!.sent - a[0]!.sent;
  const expected = (10_000 + tokenRate * ((PAYLOAD + 28) / PAYLOAD) * span) / (PAYLOAD + 28);
  assert.ok(Math.abs(conforming.length - expected) <= expected * 0.1, `${conforming.length} conforming (CS3) datagrams, the token bucket allows ${expected.toFixed(0)}`);
  // now an unfiltered sender saturates the link (12 Mb/s into 10): best effort at prio 4,
  // above the demoted class; the flow keeps its 2 Mb/s
  cap = await tb.capture('udp port 6003');
  const competitor = tb.start(['python3', '-c', CBR_PROGRAM, tb.serverIp, '6004', '12e6', '6'], tb.client);
  await waitFor('the competing sender', () => competitor.pid !== undefined);
  cbr(6003, 5e6, 3);
  a = (await arrivals(cap)).filter((x) => x.port === 6003);
  const contended = steadyRate(a);
  t.diagnostic(`borrow: alone ${(alone / 1e6).toFixed(3)} Mb/s (${conforming.length} CS3 vs ${expected.toFixed(0)} allowed, ${demoted.length} CS1); contended ${(contended / 1e6).toFixed(3)} Mb/s`);
  assert.ok(contended >= 0.95 * tokenRate * 8, `against 12 Mb/s of best effort it got ${(contended / 1e6).toFixed(2)} Mb/s; its token rate is ${tokenRate * 8 / 1e6}`);
  competitor.kill();
  assert.equal(qos('del-flow', String(flow.id)).status, 0);
});

test('802.1p in priority tags, with the interface\'s marks overridden (conforming 26/4, demoted 10/2) and a flow\'s own (46/6)', async (t) => {
  // this kernel has no VLAN devices (CONFIG_VLAN_8021Q): the BPF tagger writes the tag
  assert.equal(qos('set-interface', dev, '--dot1p', 'on', '--mark', 'ControlledLoad=26/4', '--nonconforming', '10/2').status, 0);
  const a = await api<{ id: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: '1Mbit', TokenBucketSize: 10_000, MinimumPolicedSize: PAYLOAD }, service: 'controlled-load' });
  const b = await api<{ id: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: '1Mbit', TokenBucketSize: 10_000 }, service: 'guaranteed', dscp: 46, pcp: 6 });
  await api('POST', '/v1/tc/filters', { flow: a.id, dst: tb.serverIp, proto: 'udp', dport: 6011 });
  await api('POST', '/v1/tc/filters', { flow: b.id, dst: tb.serverIp, proto: 'udp', dport: 6012 });
  const cap = await tb.capture('udp port 6011 or udp port 6012 or udp port 6013');
  cbr(6011, 3e6, 2);
  cbr(6012, 0.5e6, 1);
  cbr(6013, 0.5e6, 0.5); // unfiltered: untagged
  await cap.packets();
  const out = sh(['tshark', '-r', cap.file, '-T', 'fields', '-e', 'udp.dstport', '-e', 'vlan.priority', '-e', 'vlan.id', '-e', 'ip.dsfield.dscp']).stdout;
  const seen = new Map<string, number>();
  for (const l of out.split('\n').filter(Boolean)) { const k = l.split('\t').join(' '); if (!k.startsWith('9 ')) seen.set(k, (seen.get(k) ?? 0) + 1); }
  t.diagnostic(`802.1p: ${JSON.stringify(Object.fromEntries(seen))}`);
  assert.deepEqual([...seen.keys()].sort(), ['6011 2 0 10', '6011 4 0 26', '6012 6 0 46', '6013   0'], 'port, 802.1p, VLAN id, DSCP');
  assert.equal(qos('del-flow', String(a.id)).status, 0);
  assert.equal(qos('del-flow', String(b.id)).status, 0);
  assert.equal(qos('set-interface', dev, '--dot1p', 'off', '--mark', 'ControlledLoad=24/3', '--nonconforming', '8/1').status, 0);
  assert.doesNotMatch(inClient('tc', 'filter', 'show', 'dev', dev, 'egress'), /qosd_dot1p/, 'the tagger is gone with --dot1p off');
});

test('IPv6: a filter on a v6 prefix puts the datagrams in the flow, marked in the traffic class', async () => {
  const f = await api<{ id: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: '1Mbit', TokenBucketSize: 10_000 }, service: 'network-control' });
  const net6 = `${tb.serverIp6.replace(/::2$/, '::')}/64`;
  const filter = await api<{ family: number }>('POST', '/v1/tc/filters', { flow: f.id, dst: net6, proto: 'udp', dport: '6020-6021' });
  assert.equal(filter.family, 6);
  const cap = await tb.capture('udp port 6020 or udp port 6022');
  const sent = cbr(6020, 0.5e6, 1, tb.serverIp6);
  cbr(6022, 0.5e6, 0.5, tb.serverIp6); // outside the filter's ports
  const pkts = (await cap.packets()).filter((p) => p.ipv6);
  const inFlow = pkts.filter((p) => p.dstPort === 6020), outside = pkts.filter((p) => p.dstPort === 6022);
  assert.equal(inFlow.length, sent);
  assert.deepEqual([...new Set(inFlow.map((p) => p.dscp))], [48], 'NetworkControl: CS6');
  assert.deepEqual([...new Set(outside.map((p) => p.dscp))], [0]);
  assert.equal(qos('del-flow', String(f.id)).status, 0);
});

test('bad input: a clear error and nothing changed in tc or nft', async () => {
  const before = tcState();
  const cases: Array<[string[], RegExp, number]> = [
    [['add-flow', '--dev', dev, '--token-rate', '2Mbit', '--peak', '1Mbit'], /PeakBandwidth/, 64],
    [['add-flow', '--dev', dev, '--template', 'H999'], /no FLOWSPEC template "H999"/, 64],
    [['add-flow', '--dev', 'nosuchdev0', '--token-rate', '1Mbit'], /no interface nosuchdev0/, 66],
    [['add-filter', '--flow', '999', '--dst', tb.serverIp], /no flow 999/, 66],
    [['add-flow', '--dev', dev, '--token-rate', '20Mbit'], /cannot hold it/, 73],
    [['add-flow', '--dev', dev, '--token-rate', '1Mbit', '--mode', 'police'], /mode must be/, 64],
    [['add-filter', '--flow', '1', '--dst', '10.0.0.0/255.0.255.0'], /contiguous/, 64],
  ];
  for (const [args, message, code] of cases) {
    const r = qos(...args);
    assert.equal(r.status, code, `qos tc ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  // two filters with wildcards that overlap: the second is refused, naming the first
  const f = await api<{ id: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: '1Mbit' } });
  const first = await api<{ id: number }>('POST', '/v1/tc/filters', { flow: f.id, dst: tb.serverIp.replace(/\d+$/, '0/24'), proto: 'udp' });
  const mid = tcState();
  const r = qos('add-filter', '--flow', String(f.id), '--dst', tb.serverIp, '--proto', 'udp', '--dport', '7000');
  assert.equal(r.status, 73, r.stderr);
  assert.match(r.stderr, new RegExp(`filter ${first.id} .*overlaps`));
  assert.deepEqual(tcState(), mid);
  // a caller the admin API lets in (the admin group), but not root, is refused
  const other = sh(['ip', 'netns', 'exec', tb.client, 'setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, QOS, 'tc', 'flows', '--admin', daemon.admin]);
  assert.equal(other.status, 77, other.stderr);
  assert.match(other.stderr, /traffic control is root's alone \(uid 65534 asked\)/);
  assert.equal(qos('del-flow', String(f.id)).status, 0);
  assert.equal(tcState().nft, before.nft);
});

test('a daemon killed with SIGKILL leaves its traffic control; the next one (same options) removes it at start, and removes its own at stop; another daemon leaves it alone', async () => {
  const f = await api<{ id: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: '1Mbit' } });
  await api('POST', '/v1/tc/filters', { flow: f.id, dst: tb.serverIp, proto: 'udp', dport: 6005 });
  const table = `${daemon.nftTable}_tc`;
  const again = [...DAEMON_ARGS, '--nft-table', daemon.nftTable];
  assert.match(tcState().qdisc, /htb d5c: root/);
  assert.match(tcState().nft, new RegExp(`inet ${table}\\b`));
  daemon.proc.kill('SIGKILL');
  await waitFor('the daemon to die', () => daemon.proc.exitCode !== null || daemon.proc.signalCode !== null);
  assert.match(tcState().qdisc, /htb d5c: root/, 'SIGKILL leaves it');
  // a daemon of its own (another directory, another table) in the namespace touches none of it,
  // and cannot take the interface while it is there
  const dir = mkdtempSync(join(tb.dir, 'other-'));
  const other = await new TestDaemon(dir, null, DAEMON_ARGS, ['ip', 'netns', 'exec', tb.client]).start();
  assert.match(tcState().qdisc, /htb d5c: root/);
  const taken = sh([process.execPath, QOS, 'tc', 'add-flow', '--dev', dev, '--token-rate', '1Mbit', '--admin', other.admin]);
  assert.equal(taken.status, 73, taken.stderr);
  assert.match(taken.stderr, /already has a root qdisc, htb d5c:, that is not this daemon's/);
  await other.stop();
  // the same daemon again (its directory, its table) removes what its predecessor left
  daemon = await new TestDaemon(tb.dir, POLICY, again, ['ip', 'netns', 'exec', tb.client]).start();
  assert.doesNotMatch(tcState().qdisc, /d5c:/);
  assert.doesNotMatch(tcState().nft, new RegExp(`inet ${table}\\b`));
  const l = await api<{ flows: unknown[] }>('GET', '/v1/tc');
  assert.equal(l.flows.length, 0);
  assert.equal(qos('set-interface', dev, '--rate', '10Mbit').status, 0);
  await api('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: '1Mbit' } });
  await daemon.stop();
  assert.doesNotMatch(tcState().qdisc, /d5c:/);
  assert.doesNotMatch(tcState().nft, new RegExp(`inet ${table}\\b`));
  daemon = await new TestDaemon(tb.dir, POLICY, again, ['ip', 'netns', 'exec', tb.client]).start();
  assert.equal(qos('set-interface', dev, '--rate', '10Mbit').status, 0);
});

test('an unmodified iperf3 -u under qos run gets a flow and an exact filter by policy (template) on connect, is shaped to its rate, and both go when it exits', async (t) => {
  tb.start(['iperf3', '-s', '-1', '-p', '5201'], tb.server);
  await tb.waitListening(5201);
  const cap = await tb.capture('udp port 5201');
  const client = tb.start(daemon.run('iperf3', '-c', tb.serverIp, '-u', '-b', '2M', '-l', String(PAYLOAD), '-t', '4'), tb.client);
  type Listing = { flows: Array<{ id: number; rate: number; mode: string; service: string; owner: { kind: string; pid?: number; rule?: string }; conforming: { dscp: number } }> };
  type Filters = Array<{ flow: number; exact: boolean; dst: string; dport: string; proto: string }>;
  let seen: Listing | undefined;
  let filters: Filters = [];
  // the flow is made first and its filter after it: wait for both
  await waitFor('the policy\'s flow and its filter', async () => {
    filters = await api<Filters>('GET', '/v1/tc/filters');
    seen = await api<Listing>('GET', '/v1/tc');
    return filters.length > 0 && seen.flows.length > 0;
  });
  const flow = seen!.flows[0]!;
  assert.equal(seen!.flows.length, 1);
  assert.deepEqual({ kind: flow.owner.kind, rule: flow.owner.rule, mode: flow.mode, service: flow.service }, { kind: 'policy', rule: 'video', mode: 'shape', service: 'Guaranteed' });
  assert.deepEqual(filters.map((f) => ({ flow: f.flow, exact: f.exact, dst: f.dst, dport: f.dport, proto: f.proto })), [{ flow: flow.id, exact: true, dst: tb.serverIp, dport: '5201', proto: 'udp' }]);
  await new Promise<void>((resolve) => { if (client.exitCode !== null) resolve(); else client.once('exit', () => resolve()); });
  assert.equal(client.exitCode, 0);
  await waitFor('the flow to go with iperf3', async () => (await api<Listing>('GET', '/v1/tc')).flows.length === 0);
  assert.deepEqual(await api('GET', '/v1/tc/filters'), []);
  await cap.packets();
  const out = sh(['tshark', '-r', cap.file, '-Y', `udp.dstport == 5201 && ip.len == ${PAYLOAD + 28}`, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.dsfield.dscp']).stdout;
  const all = out.split('\n').filter(Boolean).map((l) => { const [at, dscp] = l.split('\t'); return { at: Number(at), dscp: Number(dscp) }; });
  // the datagrams sent before the filter was in place (the flow is made after the connect,
  // off the decision path) are unmarked; every later one carries the flow's mark,
  // Guaranteed's CS5, and arrives at the flow's rate
  const first = all.findIndex((x) => x.dscp === 40);
  assert.ok(first >= 0 && all.slice(0, first).every((x) => x.dscp === 0) && all.slice(first).every((x) => x.dscp === 40), `DSCPs in order: ${all.map((x) => x.dscp).join(',')}`);
  const a = all.slice(first);
  const t0 = a[0]!.at, t1 = a[a.length - 1]!.at, span = t1 - t0;
  const mid = a.filter((x) => x.at >= t0 + span / 5 && x.at <= t1 - span / 5);
  const rate = ((mid.length - 1) * (PAYLOAD + 28)) / (mid[mid.length - 1]!.at - mid[0]!.at);
  t.diagnostic(`iperf3: flow ${flow.id} at ${flow.rate} B/s, arrived at ${rate.toFixed(0)} B/s (${a.length} datagrams in the flow, ${first} before it)`);
  assert.ok(Math.abs(rate / flow.rate - 1) <= 0.05, `shaped to ${flow.rate} B/s, arrived at ${rate.toFixed(0)} B/s`);
});

test('an unconnected UDP socket under qos run gets its flow at its first sendto: a filter on its destination and local port', async () => {
  const code = `import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.time()
while time.time() - t0 < 1.5:
    s.sendto(b'x' * 160, ('${tb.serverIp}', 6030))
    time.sleep(0.02)
print(s.getsockname()[1])`;
  const prog = tb.start(daemon.run('python3', '-c', code), tb.client);
  let out = '';
  prog.stdout!.on('data', (d: Buffer) => (out += d));
  // 'close', not 'exit': its output (the port it sent from) may still be on its way at exit
  const closed = new Promise<void>((resolve) => prog.once('close', () => resolve()));
  type F = { flow: number; exact: boolean; src: string; sport: string; dst: string; dport: string };
  let filters: F[] = [];
  await waitFor('the sender\'s filter', async () => (filters = await api<F[]>('GET', '/v1/tc/filters')).length > 0);
  const flowMark = (await api<{ flows: Array<{ conforming: { dscp: number } }> }>('GET', '/v1/tc')).flows[0]!.conforming.dscp;
  await closed;
  assert.equal(prog.exitCode, 0);
  assert.deepEqual(filters.map((f) => ({ src: f.src, sport: f.sport, dst: f.dst, dport: f.dport })), [{ src: '*', sport: out.trim(), dst: tb.serverIp, dport: '6030' }]);
  // the rule's own mark (EF) is the flow's, not Guaranteed's CS5
  assert.equal(flowMark, 46);
  await waitFor('the flow to go with the process', async () => (await api<{ flows: unknown[] }>('GET', '/v1/tc')).flows.length === 0);
});
