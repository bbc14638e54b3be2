/* RSVP end to end (docs/rsvp.md): four network namespaces in a line, sender — r1 — r2 —
 * receiver, the routers running `qos rsvp router` (r1's link toward r2 is the bottleneck, 10
 * Mb/s), the hosts `qos daemon --rsvp on`. A sender announces a session, the receiver reserves,
 * and what the tests check is what a user would: the routers' HTB classes and nftables
 * filters, the datagrams that arrive, the receiver's answer, and every RSVP message on the
 * wires decoded by tshark. R is 2 s here, so state lives (K + 0.5) x 1.5 x R = 10.5 s. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetChain } from '../bench/netchain.js';
import { callJson } from '../daemon/admin-client.js';
import { removeStale } from '../demo/net.js';
import { start, type Child } from '../exec.js';
import { CBR_PROGRAM } from '../tc/cbr.js';
import { QOS, requireE2e, sh, TestDaemon, waitFor } from './harness.js';
import { COUNT_SINK, startRsvpRouter, type RouterProc } from './rsvp-net.js';

requireE2e('python3', 'tc', 'nft');

const PREFIX = 'qrv';
const REFRESH = '2s';
const LIFETIME_S = (3 + 0.5) * 1.5 * 2;
let chain: NetChain;
let dir: string;
const routers: Record<string, RouterProc> = {};
let sender: TestDaemon;
let receiver: TestDaemon;
/** a second host in the sender's namespace that speaks only the UDP encapsulation */
let udpSender: TestDaemon;
const captures: { child: Child; file: string }[] = [];

const ns = (name: string) => chain.node(name).ns;
const inNs = (name: string, ...argv: string[]) => sh(['ip', 'netns', 'exec', ns(name), ...argv], { timeout: 120_000 });
const qos = (d: TestDaemon, ...args: string[]) => sh([process.execPath, QOS, 'rsvp', ...args, '--admin', d.admin], { timeout: 120_000 });
const DEST = () => chain.node('receiver').left!.ip;
const SRC = () => chain.node('sender').right!.ip;

function startRouter(name: string, links: string[], extra: string[] = []): void {
  routers[name] = startRsvpRouter(ns(name), name, ['--refresh', REFRESH, '--state-dir', dir, ...links.flatMap((l) => ['--link', l]), ...extra]);
}

/** The HTB classes of reservations on a router's interface (d5c:1-4 are the root's own). */
function flowClasses(name: string, dev: string): string[] {
  return inNs(name, 'tc', 'class', 'show', 'dev', dev).stdout.split('\n').filter((l) => /^class htb d5c:/.test(l) && !/^class htb d5c:[1-4] /.test(l));
}

function nftTable(name: string): string {
  return inNs(name, 'nft', 'list', 'table', 'inet', 'qosd_rsvp').stdout;
}

before(async () => {
  removeStale(PREFIX);
  dir = mkdtempSync(join(tmpdir(), 'qosd-rsvp-e2e-'));
  chain = new NetChain(PREFIX);
  for (const n of chain.nodes) {
    const dev = n.left?.dev ?? n.right!.dev;
    const file = join(dir, `${n.name}.pcap`);
    const child = start(['tcpdump', '-i', dev, '-U', '--immediate-mode', '-n', '-w', file, 'ip proto 46 or udp port 1698 or udp port 1699'], { netns: n.ns, name: `tcpdump ${n.name}`, stdio: ['ignore', 'ignore', 'pipe'] });
    await child.until('listening on', 30_000);
    captures.push({ child, file });
  }
  startRouter('r1', ['r1a=100Mbit', 'r1b=10Mbit'], ['--quota-app', 'lowprio=100kbit', '--udp']);
  startRouter('r2', ['r2a=100Mbit', 'r2b=100Mbit']);
  for (const name of ['r1', 'r2']) await waitFor(`router ${name} ready`, () => routers[name]!.events.some((e) => e.kind === 'ready'));
  const hostArgs = ['--kernel', 'off', '--tc', 'off', '--rsvp', 'on', '--rsvp-refresh', REFRESH];
  sender = await new TestDaemon(join(dir, 'sender'), null, hostArgs, ['ip', 'netns', 'exec', ns('sender')]).start();
  receiver = await new TestDaemon(join(dir, 'receiver'), null, hostArgs, ['ip', 'netns', 'exec', ns('receiver')]).start();
  udpSender = await new TestDaemon(join(dir, 'udp-sender'), null, [...hostArgs, '--rsvp-transport', 'udp'], ['ip', 'netns', 'exec', ns('sender')]).start();
});

after(async () => {
  await sender?.stop().catch(() => undefined);
  await receiver?.stop().catch(() => undefined);
  await udpSender?.stop().catch(() => undefined);
  for (const r of Object.values(routers)) await r.child.stop('SIGTERM').catch(() => undefined);
  for (const c of captures) await c.child.stop('SIGINT').catch(() => undefined);
  chain?.destroy();
});

/** The receiver's RSVP events of a kind for the session on port. */
async function receiverEvents(kind: string, port: number): Promise<Record<string, unknown>[]> {
  const ev = await callJson<{ event: Record<string, unknown> & { session: { port: number } } }[]>(receiver.admin, 'GET', '/v1/rsvp/events?after=0');
  return ev.map((e) => e.event).filter((e) => e.kind === kind && e.session.port === port);
}

test('a Path crosses both routers to the receiver; its Resv comes back, each router installs an HTB class and a filter on its outgoing interface, and the receiver gets the confirmation', async () => {
  const s = qos(sender, 'send', '--dest', DEST(), '--port', '5004', '--sport', '40000', '--rate', '275kB', '--max', '1028');
  assert.equal(s.status, 0, s.stderr);
  await waitFor('the Path at the receiver', async () => (await receiverEvents('path', 5004)).length > 0, 200);
  const [path] = await receiverEvents('path', 5004);
  assert.equal((path!.sender as { source: string }).source, SRC());
  assert.equal(path!.phop, chain.node('r2').right!.ip, 'the previous hop is r2, the last router');
  const r = qos(receiver, 'reserve', '--dest', DEST(), '--port', '5004', '--rate', '275kB', '--max', '1028', '--sender', `${SRC()}:40000`, '--wait', '60s');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /confirmed/);
  for (const [name, dev] of [['r1', 'r1b'], ['r2', 'r2b']] as const) {
    // a router makes the reservation's class first and its filter after it: wait for both
    const filters = (t: string) => t.includes(`${SRC()} . ${DEST()}`) || t.includes(SRC());
    await waitFor(`the reservation on ${name}, its class and its filter`, () => flowClasses(name, dev).length === 1 && filters(nftTable(name)), 200);
    assert.match(flowClasses(name, dev)[0]!, / rate 2200Kbit /, 'the class has the reservation\'s rate: 275 kB/s of IP datagrams');
    const table = nftTable(name);
    assert.ok(filters(table), `${name}'s table filters the sender's packets:\n${table}`);
    assert.equal(flowClasses(name, name === 'r1' ? 'r1a' : 'r2a').length, 0, 'nothing is reserved toward the sender');
  }
  await waitFor('r1 reporting the reservation installed', () => routers.r1!.events.some((e) => e.kind === 'installed' && e.ifname === 'r1b'));
});

/** Datagrams each CBR sender sent and the receiver got, for flows run at once. */
async function cbrThrough(flows: { port: number; sport: number; bps: number }[], secs: number): Promise<{ sent: number; got: number }[]> {
  const ports = flows.map((f) => f.port);
  const sink = start(['python3', '-c', COUNT_SINK, '3', ...ports.map(String)], { netns: ns('receiver'), name: 'sink', keepStdout: true });
  await sink.until('ready', 30_000, 'stdout');
  const senders = flows.map((f) => start(['python3', '-c', CBR_PROGRAM, DEST(), String(f.port), String(f.bps), String(secs), String(f.sport)], { netns: ns('sender'), name: `cbr ${f.port}`, keepStdout: true }));
  const sent = await Promise.all(senders.map(async (c) => { await c.exited; return Number(c.stdout.trim()); }));
  await sink.exited;
  const got = JSON.parse(sink.stdout.split('\n').find((l) => l.startsWith('{'))!) as Record<string, number>;
  return flows.map((f, i) => ({ sent: sent[i]!, got: got[String(f.port)] ?? 0 }));
}


test('reserved traffic keeps its rate through the bottleneck under cross traffic with no loss; the same traffic unreserved loses packets', async () => {
  // 2 Mb/s of payload reserved (port 5004, from port 40000), the same unreserved (5006), and
  // 15 Mb/s of cross traffic into r1's 10 Mb/s link
  const [reserved, unreserved, cross] = await cbrThrough([{ port: 5004, sport: 40000, bps: 2e6 }, { port: 5006, sport: 40006, bps: 2e6 }, { port: 6000, sport: 46000, bps: 15e6 }], 5);
  const loss = (x: { sent: number; got: number }) => 1 - x.got / x.sent;
  assert.ok(reserved!.sent > 1000 && cross!.sent > 5000, `sent ${reserved!.sent} and ${cross!.sent}`);
  assert.ok(loss(reserved!) <= 0.005, `the reserved flow lost ${(loss(reserved!) * 100).toFixed(2)} % (${reserved!.got} of ${reserved!.sent})`);
  assert.ok(loss(unreserved!) >= 0.1, `the unreserved flow lost only ${(loss(unreserved!) * 100).toFixed(2)} % (${unreserved!.got} of ${unreserved!.sent})`);
  assert.ok(loss(cross!) >= 0.1, `the cross traffic lost ${(loss(cross!) * 100).toFixed(2)} %: the link was not the bottleneck`);
});

test('a reservation beyond what r1 may reserve is refused with ResvErr admission failure (code 1), and nothing is installed', async () => {
  const before = flowClasses('r1', 'r1b').length;
  const s = qos(sender, 'send', '--dest', DEST(), '--port', '5008', '--sport', '40008', '--rate', '2MB', '--max', '1028', '--json');
  assert.equal(s.status, 0, s.stderr);
  await waitFor('the second Path at the receiver', async () => (await receiverEvents('path', 5008)).length > 0, 200);
  // 16 Mb/s on a 10 Mb/s link of which 90 % is reservable
  const r = qos(receiver, 'reserve', '--dest', DEST(), '--port', '5008', '--rate', '2MB', '--max', '1028', '--sender', `${SRC()}:40008`, '--wait', '60s', '--json');
  assert.equal(r.status, 1, r.stdout + r.stderr);
  const answer = JSON.parse(r.stdout) as { reservation: { id: number }; event: { kind: string; code: number; value: number; node: string } };
  assert.deepEqual([answer.event.kind, answer.event.code, answer.event.value, answer.event.node], ['resv-error', 1, 2, chain.node('r1').right!.ip]);
  assert.equal(flowClasses('r1', 'r1b').length, before);
  await waitFor('r1 reporting the refusal', () => routers.r1!.events.some((e) => e.kind === 'refused' && e.code === 1 && e.ifname === 'r1b'));
  // released and stopped: ResvTear and PathTear cross the wire
  assert.equal(qos(receiver, 'release', String(answer.reservation.id)).status, 0);
  assert.equal(qos(sender, 'stop', String((JSON.parse(s.stdout) as { id: number }).id)).status, 0);
});

test('a reservation over its application\'s quota is refused with ResvErr policy control failure (code 2)', async () => {
  const s = qos(sender, 'send', '--dest', DEST(), '--port', '5010', '--sport', '40010', '--rate', '275kB', '--max', '1028', '--json');
  assert.equal(s.status, 0, s.stderr);
  await waitFor('the third Path at the receiver', async () => (await receiverEvents('path', 5010)).length > 0, 200);
  // 2.2 Mb/s for an application whose quota on r1 is 100 kb/s
  const r = qos(receiver, 'reserve', '--dest', DEST(), '--port', '5010', '--rate', '275kB', '--max', '1028', '--sender', `${SRC()}:40010`, '--app', 'lowprio', '--wait', '60s');
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /refused by 10\.251\.2\.1: error code 2, value 4/);
  assert.equal(qos(sender, 'stop', String((JSON.parse(s.stdout) as { id: number }).id)).status, 0);
});

test('a router killed with SIGKILL leaves its classes; the next one removes them, and soft state puts the reservation back', async () => {
  const s = qos(sender, 'send', '--dest', DEST(), '--port', '5012', '--sport', '40012', '--rate', '125kB', '--max', '1028', '--json');
  assert.equal(s.status, 0, s.stderr);
  await waitFor('the Path of port 5012 at the receiver', async () => (await receiverEvents('path', 5012)).length > 0, 200);
  const r = qos(receiver, 'reserve', '--dest', DEST(), '--port', '5012', '--rate', '125kB', '--max', '1028', '--sender', `${SRC()}:40012`, '--wait', '60s');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const has5012 = () => flowClasses('r2', 'r2b').some((l) => / rate 1Mbit /.test(l));
  await waitFor('the 1 Mb/s reservation on r2', has5012, 200);
  routers.r2!.child.proc.kill('SIGKILL');
  await routers.r2!.child.exited;
  assert.ok(has5012(), 'a killed router cannot clean up: its class stays');
  startRouter('r2', ['r2a=100Mbit', 'r2b=100Mbit']);
  await waitFor('router r2 ready again', () => routers.r2!.events.some((e) => e.kind === 'ready'));
  // what the killed one left is gone before the new one reserves anything
  assert.ok(!has5012(), `the new router removed what the killed one left:\n${flowClasses('r2', 'r2b').join('\n')}`);
  // the next Path refresh gives it path state, the receiver's next Resv refresh the reservation
  await waitFor('the reservation back on r2 by refreshes alone', has5012, 250);
  assert.equal(qos(sender, 'stop', String((JSON.parse(s.stdout) as { id: number }).id)).status, 0);
  await waitFor('the reservation gone from both routers after PathTear', () => !has5012() && !flowClasses('r1', 'r1b').some((l) => / rate 1Mbit /.test(l)), 250);
});

test('a host speaking only the UDP encapsulation (appendix C): its Path reaches r1 on UDP 1698, r1 answers it on UDP 1699, and the reservation is installed on both routers', async () => {
  const s = qos(udpSender, 'send', '--dest', DEST(), '--port', '5014', '--sport', '40014', '--rate', '150kB', '--max', '1028', '--json');
  assert.equal(s.status, 0, s.stderr);
  await waitFor('the UDP host\'s Path at the receiver', async () => (await receiverEvents('path', 5014)).length > 0, 200);
  assert.equal(qos(receiver, 'reserve', '--dest', DEST(), '--port', '5014', '--rate', '150kB', '--max', '1028', '--sender', `${SRC()}:40014`).status, 0);
  const has = (name: string, dev: string) => flowClasses(name, dev).some((l) => / rate 1200Kbit /.test(l));
  await waitFor('the reservation on r1 and r2', () => has('r1', 'r1b') && has('r2', 'r2b'), 250);
  // r1 sent its Resv to the UDP host on UDP 1699, which counted it
  await waitFor('the UDP host receiving r1\'s Resv', async () => ((await callJson<{ counts: { received: number } }>(udpSender.admin, 'GET', '/v1/rsvp')).counts.received) > 0, 200);
  assert.equal(qos(udpSender, 'stop', String((JSON.parse(s.stdout) as { id: number }).id)).status, 0);
  await waitFor('the reservation gone after PathTear over UDP', () => !has('r1', 'r1b') && !has('r2', 'r2b'), 250);
});

test('a sender killed with SIGKILL (no PathTear): the routers drop its path state and reservation within the state lifetime', async () => {
  // port 5004's reservation, the only one left: if r2's kill in an earlier test let r1's state
  // for it time out, the next Resv refresh puts it back
  await waitFor('r1 holding port 5004\'s reservation', () => flowClasses('r1', 'r1b').length === 1, 250);
  const killedAt = Date.now();
  sender.proc.kill('SIGKILL');
  await waitFor('the reservation gone from r1 and r2', () => flowClasses('r1', 'r1b').length === 0 && flowClasses('r2', 'r2b').length === 0, 250, 120_000);
  const took = (Date.now() - killedAt) / 1000;
  // r1 times the path state out and sends PathTear on: r2 may see either first
  for (const name of ['r1', 'r2']) {
    await waitFor(`${name} reporting the path state gone`, () => routers[name]!.events.some((e) => e.kind === 'path-gone' && (e.session as { port: number }).port === 5004));
    const gone = routers[name]!.events.find((e) => e.kind === 'path-gone' && (e.session as { port: number }).port === 5004)!;
    if (name === 'r1') assert.equal(gone.why, 'timeout', 'r1 timed the path state out');
    else assert.ok(gone.why === 'timeout' || gone.why === 'tear', `r2: ${String(gone.why)}`);
    assert.ok(routers[name]!.events.some((e) => e.kind === 'removed'), `${name} removed the reservation's flow`);
  }
  // a loaded machine may take longer than the lifetime to notice; it must not have been sooner
  // than the refreshes allow (the state was refreshed until the kill)
  assert.ok(took >= LIFETIME_S / 3, `gone ${took.toFixed(1)} s after the kill`);
});

test('every RSVP message on the wires decodes in tshark without error, of every type that crossed', async () => {
  for (const c of captures) await c.child.stop('SIGINT');
  const types = new Set<string>();
  for (const c of captures) {
    const out = sh(['tshark', '-r', c.file, '-d', 'udp.port==1698,rsvp', '-d', 'udp.port==1699,rsvp', '-T', 'fields', '-e', 'rsvp.msg', '-e', '_ws.malformed', '-e', '_ws.expert.severity', '-E', 'separator=|']).stdout;
    for (const line of out.split('\n').filter(Boolean)) {
      const [msg, malformed, severity] = line.split('|');
      assert.ok(msg, `a packet tshark did not read as RSVP in ${c.file}: ${line}`);
      assert.ok(!malformed, `malformed RSVP in ${c.file}: ${line}`);
      assert.ok(!severity || !/error/i.test(severity), `tshark reports an error in ${c.file}: ${line}`);
      types.add(msg!);
    }
  }
  // Path 1, Resv 2, ResvErr 4, PathTear 5, ResvTear 6, ResvConf 7
  for (const t of ['1', '2', '4', '5', '6', '7']) assert.ok(types.has(t), `message type ${t} on the wire (seen: ${[...types].join(', ')})`);
  // and the UDP encapsulation on the sender's link: the UDP host's Path to 224.0.0.14:1698, r1's Resv to 1699
  const udp = sh(['tshark', '-r', captures[0]!.file, '-d', 'udp.port==1698,rsvp', '-d', 'udp.port==1699,rsvp', '-Y', 'udp && rsvp', '-T', 'fields', '-e', 'ip.dst', '-e', 'udp.dstport', '-e', 'rsvp.msg']).stdout;
  assert.match(udp, /^224\.0\.0\.14\t1698\t1$/m);
  assert.match(udp, /^10\.251\.1\.1\t1699\t2$/m);
});
