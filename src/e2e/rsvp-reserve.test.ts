/* Reservations for programs that never asked (docs/rsvp.md): network namespaces in a line,
 * sender host — x — r1 — receiver host, r1 running `qos rsvp router` with its link toward the
 * receiver the bottleneck (10 Mb/s, 9 reservable); x only forwards, and is where cross traffic
 * comes from (traffic a router sends itself is held back by its own queue, not dropped there). The sending host's daemon has a policy whose `reserve`
 * action makes it the RSVP sender of an unmodified iperf3's UDP socket; the receiving host's
 * daemon answers every Path with AutoRESV. What is checked is what a user would see: iperf3's
 * own loss figures, the DSCP of every datagram on the wire against the time the Resv arrived
 * (tcpdump + tshark), the status notifications, and the router's state. R is 2 s here. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetChain } from '../bench/netchain.js';
import { callJson } from '../daemon/admin-client.js';
import { removeStale } from '../demo/net.js';
import { start } from '../exec.js';
import { CBR_PROGRAM } from '../tc/cbr.js';
import { QOS, requireE2e, sh, TestDaemon, waitFor } from './harness.js';
import { Capture, COUNT_SINK, startRsvpRouter, type RouterProc } from './rsvp-net.js';

requireE2e('iperf3', 'tcpdump', 'tshark', 'python3', 'tc', 'nft');

const PREFIX = 'qrr';
const POLICY = `rules:
  - name: video
    match: { exe: "*iperf3*", proto: udp, remote_port: 5201 }
    action: { reserve: { service: controlled-load, flowspec: { TokenRate: 2.5Mbit, TokenBucketSize: 32kB, MaxSduSize: 1000 } } }
  - name: big
    match: { exe: "*iperf3*", proto: udp, remote_port: 5202 }
    action: { reserve: { service: controlled-load, flowspec: { TokenRate: 6Mbit, TokenBucketSize: 16kB, MaxSduSize: 1000 } } }
  - name: tcp-bulk
    match: { exe: "*python3*", proto: tcp, remote_port: 5300 }
    action: { reserve: { service: controlled-load, flowspec: { TokenRate: 2Mbit, TokenBucketSize: 8kB, MaxSduSize: 1448 } } }
  - name: until-torn-down
    match: { exe: "*python3*", proto: udp, remote_port: 5330 }
    action: { reserve: { service: controlled-load, flowspec: { TokenRate: 1.5Mbit, TokenBucketSize: 8kB, MaxSduSize: 1000 } } }
  - name: live
    match: { exe: "*python3*", proto: udp, remote_port: 5310 }
    action: { reserve: { characterize: true } }
`;
let chain: NetChain;
let dir: string;
let router: RouterProc;
let sender: TestDaemon;
let receiver: TestDaemon;

const ns = (name: string) => chain.node(name).ns;
const DEST = () => chain.node('receiver').left!.ip;

type Note = { seq: number; code: string; id: number | null; session: { port: number }; program: { exe: string; pid: number } | null; reason: string };
async function notes(d: TestDaemon, port: number): Promise<Note[]> {
  const out = sh([process.execPath, QOS, 'rsvp', 'events', '--json', '--admin', d.admin]);
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Note).filter((n) => n.session.port === port);
}

/** A capture on the sender's link; stop(): each packet's time, protocol, UDP port, DSCP and RSVP type. */
async function capture(filter: string): Promise<{ stop(): Promise<{ t: number; proto: number; dport: number; dscp: number; rsvp: number }[]> }> {
  const c = new Capture(ns('sender'), chain.node('sender').right!.dev, filter, dir);
  await c.started();
  return {
    async stop() {
      return (await c.fields(['frame.time_epoch', 'ip.proto', 'udp.dstport', 'ip.dsfield.dscp', 'rsvp.msg'])).map((l) => {
        const [t, proto, dport, dscp, msg] = l.split('|');
        return { t: Number(t), proto: Number(proto), dport: Number(dport || 0), dscp: Number(dscp || 0), rsvp: Number(msg || 0) };
      });
    },
  };
}

before(async () => {
  removeStale(PREFIX);
  dir = mkdtempSync(join(tmpdir(), 'qosd-rsvp-reserve-'));
  chain = new NetChain(PREFIX, ['sender', 'x', 'r1', 'receiver']);
  router = startRsvpRouter(ns('r1'), 'r1', ['--refresh', '2s', '--state-dir', dir, '--link', 'r1a=100Mbit', '--link', 'r1b=10Mbit']);
  await waitFor('router r1 ready', () => router.events.some((e) => e.kind === 'ready'));
  const common = ['--kernel', 'off', '--rsvp', 'on', '--rsvp-refresh', '2s'];
  for (const d of ['sender', 'receiver']) mkdirSync(join(dir, d));
  // the sending host: 8 Mb/s of its own link, 7.2 reservable (the second reservation, 6 Mb/s, does not fit beside the first)
  sender = await new TestDaemon(join(dir, 'sender'), POLICY, [...common, '--tc', 'on', '--rsvp-link', `${chain.node('sender').right!.dev}=8Mbit`], ['ip', 'netns', 'exec', ns('sender')]).start();
  receiver = await new TestDaemon(join(dir, 'receiver'), null, [...common, '--tc', 'off', '--rsvp-auto-resv', 'cl'], ['ip', 'netns', 'exec', ns('receiver')]).start();
});

after(async () => {
  await sender?.stop().catch(() => undefined);
  await receiver?.stop().catch(() => undefined);
  await router?.child.stop('SIGTERM').catch(() => undefined);
  chain?.destroy();
});

test('an unmodified iperf3 -u reserved by policy: best effort until the Resv, then marked CS3; under cross traffic it loses nothing while the same traffic unreserved loses over 10 %', async (t) => {
  const server = start(['iperf3', '-s', '-1', '-J', '-p', '5201'], { netns: ns('receiver'), name: 'iperf3 server', keepStdout: true });
  await waitFor('iperf3 server listening', () => sh(['ip', 'netns', 'exec', ns('receiver'), 'ss', '-ltn', 'sport = :5201']).stdout.includes('5201'), 100);
  const sink = start(['python3', '-c', COUNT_SINK, '3', '5206'], { netns: ns('receiver'), name: 'sink', keepStdout: true });
  await sink.until('ready', 30_000, 'stdout');
  const cap = await capture('udp port 5201 or ip proto 46');
  // iperf3 under the agent: 2 Mb/s for 8 s; meanwhile, once reserved, 2 Mb/s unreserved from
  // the same host and 15 Mb/s of cross traffic from x into r1's 10 Mb/s link
  const client = start(sender.run('iperf3', '-c', DEST(), '-u', '-b', '2M', '-l', '1000', '-t', '8', '-p', '5201'), { netns: ns('sender'), name: 'iperf3 client', keepStdout: true });
  await waitFor('the reservation installed on r1', () => router.events.some((e) => e.kind === 'installed' && e.ifname === 'r1b'), 100);
  const unreserved = start(['python3', '-c', CBR_PROGRAM, DEST(), '5206', String(2e6), '5', '40206'], { netns: ns('sender'), name: 'unreserved', keepStdout: true });
  const cross = start(['python3', '-c', CBR_PROGRAM, DEST(), '6000', String(15e6), '5', '46000'], { netns: ns('x'), name: 'cross', keepStdout: true });
  await Promise.all([client.exited, unreserved.exited, cross.exited]);
  await server.exited;
  await sink.exited;
  const packets = await cap.stop();

  const resv0 = packets.find((p) => p.proto === 46 && p.rsvp === 2);
  // what a reader of a failure needs: each second's datagrams by DSCP, and when the Resv came
  const t0 = packets[0]?.t ?? 0;
  const perSecond: Record<string, Record<number, number>> = {};
  for (const p of packets.filter((x) => x.proto === 17)) { const k = (p.t - t0).toFixed(0); (perSecond[k] ??= {})[p.dscp] = (perSecond[k]![p.dscp] ?? 0) + 1; }
  t.diagnostic(`datagrams by second and DSCP: ${JSON.stringify(perSecond)}; Resv at ${((resv0?.t ?? t0) - t0).toFixed(2)} s`);
  const result = JSON.parse(server.stdout) as { end: { sum: { lost_percent: number; packets: number; lost_packets: number } } };
  const sent = Number(unreserved.stdout.trim());
  const got = (JSON.parse(sink.stdout.split('\n').find((l) => l.startsWith('{'))!) as Record<string, number>)['5206'] ?? 0;
  const unreservedLoss = 1 - got / sent;
  assert.ok(result.end.sum.packets > 1000, `iperf3 sent ${result.end.sum.packets} datagrams`);
  assert.ok(result.end.sum.lost_percent <= 0.5, `the reserved iperf3 lost ${result.end.sum.lost_percent} % (${result.end.sum.lost_packets} of ${result.end.sum.packets})`);
  assert.ok(unreservedLoss >= 0.1, `the unreserved traffic lost only ${(unreservedLoss * 100).toFixed(2)} % (${got} of ${sent})`);

  // on the wire: datagrams best effort first, CS3 (24, Controlled Load's mark) from the Resv on
  const resv = packets.find((p) => p.proto === 46 && p.rsvp === 2);
  assert.ok(resv, 'a Resv reached the sending host');
  const data = packets.filter((p) => p.proto === 17 && p.dport === 5201);
  const firstMarked = data.find((p) => p.dscp !== 0);
  assert.ok(firstMarked, 'iperf3\'s datagrams were marked once admitted');
  assert.equal(firstMarked.dscp, 24);
  assert.ok(firstMarked.t >= resv.t, `the first marked datagram (${firstMarked.t}) came before the Resv (${resv.t})`);
  assert.ok(data.some((p) => p.dscp === 0 && p.t < resv.t), 'datagrams before the Resv went best effort');
  const late = data.filter((p) => p.t > firstMarked.t + 0.5);
  // after the Resv nothing goes best effort: CS3, or CS1 for a burst past the token bucket
  // (Controlled Load borrows: the excess is demoted, not dropped; iperf3 catches up in bursts
  // when a loaded machine schedules it late)
  const dscps = [...new Set(late.map((p) => p.dscp))];
  assert.ok(late.length > 100 && late.every((p) => p.dscp === 24 || p.dscp === 8), `after the Resv every datagram is marked: ${JSON.stringify(dscps)}`);
  assert.ok(late.filter((p) => p.dscp === 24).length >= late.length * 0.9, 'and nearly all of them conform');

  // the notifications: the sending host heard RECEIVERS for iperf3's session; the receiver SENDERS
  const mine = await notes(sender, 5201);
  const rcv = mine.find((n) => n.code === 'RECEIVERS');
  assert.ok(rcv, `RECEIVERS at the sender: ${JSON.stringify(mine)}`);
  assert.match(rcv.program?.exe ?? '', /iperf3/);
  assert.ok((await notes(receiver, 5201)).some((n) => n.code === 'SENDERS'), 'SENDERS at the receiver');
  // iperf3 exited: its sender went with it (PathTear), and so did r1's reservation
  await waitFor('r1 removing the reservation', () => router.events.some((e) => e.kind === 'removed'), 100);
  await waitFor('NO_SENDERS at the receiver', async () => (await notes(receiver, 5201)).some((n) => n.code === 'NO_SENDERS'), 200);
});

test('a second reservation beyond what the sending host\'s link may reserve: ADMISSION_FAILURE there, and the program runs on unmarked', async () => {
  const first = start(['iperf3', '-s', '-1', '-p', '5201'], { netns: ns('receiver'), name: 'iperf3 server 1' });
  const second = start(['iperf3', '-s', '-1', '-p', '5202'], { netns: ns('receiver'), name: 'iperf3 server 2' });
  for (const p of [5201, 5202]) await waitFor(`iperf3 server on ${p}`, () => sh(['ip', 'netns', 'exec', ns('receiver'), 'ss', '-ltn', `sport = :${p}`]).stdout.includes(String(p)), 100);
  const cap = await capture('udp port 5202');
  const a = start(sender.run('iperf3', '-c', DEST(), '-u', '-b', '1M', '-l', '1000', '-t', '8', '-p', '5201'), { netns: ns('sender'), name: 'iperf3 a' });
  await waitFor('RECEIVERS for the first', async () => (await notes(sender, 5201)).filter((n) => n.code === 'RECEIVERS').length >= 2, 100);
  const b = start(sender.run('iperf3', '-c', DEST(), '-u', '-b', '1M', '-l', '1000', '-t', '4', '-p', '5202'), { netns: ns('sender'), name: 'iperf3 b' });
  await waitFor('ADMISSION_FAILURE for the second', async () => (await notes(sender, 5202)).some((n) => n.code === 'ADMISSION_FAILURE'), 100);
  const refused = (await notes(sender, 5202)).find((n) => n.code === 'ADMISSION_FAILURE')!;
  assert.match(refused.program?.exe ?? '', /iperf3/);
  assert.match(refused.reason, /this host refused/);
  const bExit = await b.exited;
  assert.equal(bExit.code, 0, 'the refused program ran to its end');
  const packets = await cap.stop();
  const data = packets.filter((p) => p.proto === 17 && p.dport === 5202);
  assert.ok(data.length > 300, `${data.length} datagrams of the second program`);
  assert.ok(data.every((p) => p.dscp === 0), 'the refused program\'s datagrams stayed best effort');
  await a.exited;
  await Promise.all([first.exited, second.exited]);
});

test('SIGKILL of a reserved program: its sender goes (PathTear), and r1\'s class with it', async () => {
  const server = start(['iperf3', '-s', '-1', '-p', '5201'], { netns: ns('receiver'), name: 'iperf3 server' });
  await waitFor('iperf3 server listening', () => sh(['ip', 'netns', 'exec', ns('receiver'), 'ss', '-ltn', 'sport = :5201']).stdout.includes('5201'), 100);
  const installed = router.events.filter((e) => e.kind === 'installed').length;
  const client = start(sender.run('iperf3', '-c', DEST(), '-u', '-b', '1M', '-l', '1000', '-t', '60', '-p', '5201'), { netns: ns('sender'), name: 'iperf3 to kill' });
  await waitFor('the reservation installed on r1', () => router.events.filter((e) => e.kind === 'installed').length > installed, 100);
  const sessions = await callJson<{ role: string; origin: string; program: { pid: number } | null }[]>(sender.admin, 'GET', '/v1/rsvp/sessions');
  const mine = sessions.find((s) => s.origin === 'policy');
  assert.ok(mine?.program, `a policy session for the program: ${JSON.stringify(sessions)}`);
  const at = router.events.length;
  process.kill(mine.program.pid, 'SIGKILL');
  const since = () => router.events.slice(at);
  await waitFor('r1 hearing the PathTear', () => since().some((e) => e.kind === 'path-gone' && (e.session as { port: number }).port === 5201), 100);
  assert.equal(since().find((e) => e.kind === 'path-gone')!.why, 'tear', 'the path state went by PathTear, not by time-out');
  await waitFor('r1 removing the reservation', () => since().some((e) => e.kind === 'removed'), 100);
  await waitFor('no session left on the sending host', async () => (await callJson<unknown[]>(sender.admin, 'GET', '/v1/rsvp/sessions')).length === 0, 100);
  await client.exited.catch(() => undefined);
  server.kill();
});

type PathEvent = { event: { kind: string; session: { port: number }; tspec: { r: number; b: number; M: number }; adspec: { gs?: { terms: { ctot: number; dtot: number } | null } } | null } };
async function pathsAt(d: TestDaemon, port: number): Promise<PathEvent['event'][]> {
  return (await callJson<PathEvent[]>(d.admin, 'GET', '/v1/rsvp/events?after=0')).map((e) => e.event).filter((e) => e.kind === 'path' && e.session.port === port);
}

test('support mode: a receiver asks Guaranteed "r = 2 Mb/s, W = 50 ms"; its Resv carries the R the delay bound gives with the ADSPEC\'s Ctot and Dtot, and r1 reserves it', async () => {
  const at = router.events.length;
  const r = sh([process.execPath, QOS, 'rsvp', 'open', '--role', 'receiver', '--dest', DEST(), '--port', '5320', '--service', 'gs', '--bandwidth', '2Mbit', '--delay', '50ms', '--json', '--admin', receiver.admin]);
  assert.equal(r.status, 0, r.stderr);
  const id = (JSON.parse(r.stdout) as { id: number }).id;
  const s = sh([process.execPath, QOS, 'rsvp', 'open', '--role', 'sender', '--dest', DEST(), '--port', '5320', '--sport', '40320', '--rate', '2Mbit', '--bucket', '20kB', '--max', '1028', '--json', '--admin', sender.admin]);
  assert.equal(s.status, 0, s.stderr);
  await waitFor('the Path at the receiver', async () => (await pathsAt(receiver, 5320)).length > 0, 100);
  const path = (await pathsAt(receiver, 5320))[0]!;
  // r1's link toward the receiver, 10 Mb/s with a 1500-byte MTU: C = 1500 bytes, D = 1500 B / 1.25 MB/s = 1200 us
  assert.deepEqual(path.adspec?.gs?.terms && [path.adspec.gs.terms.ctot, path.adspec.gs.terms.dtot], [1500, 1200]);
  const installedNow = () => router.events.slice(at).find((e) => e.kind === 'installed' && e.ifname === 'r1b') as { rate: number } | undefined;
  await waitFor('r1 installing the reservation', () => installedNow() !== undefined, 100);
  const installed = installedNow()!;
  // by hand (RFC 2212, p unlimited): W = (b + Ctot) / R + Dtot, so R = (20000 + 1500) / (0.050 - 0.0012) = 440,573.77 B/s
  const R = (20000 + 1500) / (0.05 - 0.0012);
  const session = (await callJson<{ id: number; asked: { style: string; descriptors: { flowspec: { service: string; R: number; tspec: { r: number } } }[] } }[]>(receiver.admin, 'GET', '/v1/rsvp/sessions')).find((x) => x.id === id)!;
  const fs = session.asked.descriptors[0]!.flowspec;
  assert.equal(session.asked.style, 'WF', 'one sender: WF (seed 001)');
  assert.equal(fs.service, 'GS');
  assert.equal(fs.tspec.r, 250000, 'r is the bandwidth asked');
  assert.ok(fs.R >= R && fs.R - R < 0.05, `R ${fs.R} is not ${R.toFixed(2)} (rounded up to a 32-bit float)`);
  assert.ok(Math.abs(installed.rate - fs.R) < 1, `r1 reserved ${installed.rate} B/s, not R`);
  for (const [d, x] of [[receiver, id], [sender, (JSON.parse(s.stdout) as { id: number }).id]] as const) assert.equal(sh([process.execPath, QOS, 'rsvp', 'close', String(x), '--admin', d.admin]).status, 0);
});

test('a TCP connection reserved by policy: its session carries the measured RTT and the window W_R = 2 RTT r, and its TSpec the burst a sender paced by it makes', async () => {
  const server = start(['python3', '-c', TCP_SINK, '5300'], { netns: ns('receiver'), name: 'tcp sink', keepStdout: true });
  await server.until('ready', 30_000, 'stdout');
  const client = start(sender.run('python3', '-c', TCP_SOURCE, DEST(), '5300', '4'), { netns: ns('sender'), name: 'tcp source' });
  type S = { origin: string; program: { exe: string } | null; tcp: { rttS: number; window: number } | null; sender: { tspec: { r: number; b: number } } };
  const find = async () => (await callJson<S[]>(sender.admin, 'GET', '/v1/rsvp/sessions')).find((x) => x.origin === 'policy' && /python3/.test(x.program?.exe ?? ''));
  await waitFor('a session for the TCP connection', async () => (await find()) !== undefined, 100);
  const mine = (await find())!;
  assert.ok(mine.tcp && mine.tcp.rttS > 0, `the round trip was measured: ${JSON.stringify(mine.tcp)}`);
  const r = 250000, rS = 1e6; // 2 Mbit/s reserved; the sending host's link, --rsvp-link 8Mbit
  assert.ok(Math.abs(mine.tcp.window - 2 * mine.tcp.rttS * r) <= 1, `window ${mine.tcp.window} is 2 RTT r = ${2 * mine.tcp.rttS * r}`);
  const burst = mine.tcp.window * (1 - r / rS);
  assert.ok(mine.sender.tspec.b >= Math.max(8000, burst) && mine.sender.tspec.b <= Math.max(8000, burst) * 1.001 + 1, `b ${mine.sender.tspec.b} is max(the bucket, W_R (1 - r/r_S) = ${burst})`);
  await waitFor('the Path at the receiver', async () => (await pathsAt(receiver, 5300)).length > 0, 100);
  assert.equal((await pathsAt(receiver, 5300))[0]!.tspec.b, mine.sender.tspec.b, 'the Path carries that burst');
  await client.exited;
  await server.exited;
});

test('characterize: true: the daemon estimates the live flow and its Path carries the rate it measured', async () => {
  const sink = start(['python3', '-c', COUNT_SINK, '3', '5310'], { netns: ns('receiver'), name: 'sink', keepStdout: true });
  await sink.until('ready', 30_000, 'stdout');
  // 1 Mbit/s of 1000-byte payloads: 125,000 B/s of payload, 128,500 B/s of IP datagrams
  const cbr = start(sender.run('python3', '-c', CBR_PROGRAM, DEST(), '5310', String(1e6), '8', '40310'), { netns: ns('sender'), name: 'cbr live', keepStdout: true });
  await waitFor('the estimated Path at the receiver', async () => (await pathsAt(receiver, 5310)).length > 0, 100, 30_000)
    .catch((e: Error) => { throw new Error(`${e.message}; the sending daemon's log:\n${sender.log.slice(-3000)}`); });
  const path = (await pathsAt(receiver, 5310))[0]!;
  assert.ok(path.tspec.r > 128500 * 0.7 && path.tspec.r < 128500 * 1.5, `r ${path.tspec.r} B/s is not near the 128,500 B/s sent`);
  assert.equal(path.tspec.M, 1028, 'M is the largest datagram seen');
  await waitFor('RECEIVERS at the sender', async () => (await notes(sender, 5310)).some((n) => n.code === 'RECEIVERS'), 100);
  await cbr.exited;
  await sink.exited;
});

test('the receiver tears its reservation down: NO_RECEIVERS at the sending host, and the program\'s datagrams go back to best effort on the wire', async () => {
  const sink = start(['python3', '-c', COUNT_SINK, '3', '5330'], { netns: ns('receiver'), name: 'sink', keepStdout: true });
  await sink.until('ready', 30_000, 'stdout');
  const cap = await capture('udp port 5330');
  // a follower, as an administrator watching: `qos rsvp events --follow --json` from the last one on
  const last = Math.max(0, ...(await notes(sender, 5330)).map((n) => n.seq));
  const follower = start([process.execPath, QOS, 'rsvp', 'events', '--follow', '--json', '--after', String(last), '--admin', sender.admin], { name: 'events --follow', keepStdout: true });
  const cbr = start(sender.run('python3', '-c', CBR_PROGRAM, DEST(), '5330', String(1e6), '8', '40330'), { netns: ns('sender'), name: 'cbr teardown', keepStdout: true });
  await waitFor('RECEIVERS at the sender', async () => (await notes(sender, 5330)).some((n) => n.code === 'RECEIVERS'), 100);
  const auto = (await callJson<{ id: number; origin: string; session: { port: number } }[]>(receiver.admin, 'GET', '/v1/rsvp/sessions')).find((x) => x.origin === 'auto' && x.session.port === 5330);
  assert.ok(auto, 'AutoRESV made a session for the Path');
  // RECEIVERS comes with the Resv; the sending host's traffic control takes the reservation
  // after it: wait until it has (the session marked), and until datagrams went through its flow
  type Mine = { origin: string; session: { port: number }; marked: { flow: number } | null };
  const mine = async () => (await callJson<Mine[]>(sender.admin, 'GET', '/v1/rsvp/sessions')).find((x) => x.origin === 'policy' && x.session.port === 5330);
  let flow = 0;
  await waitFor('the sending host marking the program\'s datagrams', async () => { flow = (await mine())?.marked?.flow ?? 0; return flow > 0; }, 100);
  const dev = chain.node('sender').right!.dev;
  // (tc -s class show: the class's line, then " Sent B bytes P pkt ...")
  const through = () => Number(new RegExp(`^class htb d5c:${(0x10 + flow).toString(16)} .*\\n Sent \\d+ bytes (\\d+) pkt`, 'm')
    .exec(sh(['ip', 'netns', 'exec', ns('sender'), 'tc', '-s', 'class', 'show', 'dev', dev]).stdout)?.[1] ?? 0);
  await waitFor('datagrams through the reservation\'s flow', () => through() > 0, 100);
  const closed = Date.now() / 1000;
  assert.equal(sh([process.execPath, QOS, 'rsvp', 'close', String(auto.id), '--admin', receiver.admin]).status, 0);
  await waitFor('NO_RECEIVERS at the sender', async () => (await notes(sender, 5330)).some((n) => n.code === 'NO_RECEIVERS'), 100);
  // and its traffic control lets the reservation go after NO_RECEIVERS: wait until its flow is gone
  await waitFor('the reservation\'s flow gone from the sending host', async () => !(await callJson<{ flows: { id: number }[] }>(sender.admin, 'GET', '/v1/tc')).flows.some((f) => f.id === flow), 100);
  const unmarked = Date.now() / 1000;
  // (whole lines only: the follower may be printing one as it is read)
  const followedNow = () => follower.stdout.split('\n').slice(0, -1).filter((l) => l.trim()).map((l) => JSON.parse(l) as Note).filter((n) => n.session.port === 5330).map((n) => n.code);
  await waitFor('the follower printing it', () => followedNow().includes('NO_RECEIVERS'), 100);
  const followed = followedNow();
  assert.deepEqual(followed.filter((c) => c === 'RECEIVERS' || c === 'NO_RECEIVERS'), ['RECEIVERS', 'NO_RECEIVERS'], 'the follower saw the reservation come and go, in order');
  follower.kill();
  await cbr.exited;
  await sink.exited;
  const data = (await cap.stop()).filter((p) => p.proto === 17 && p.dport === 5330);
  const before = data.filter((p) => p.t < closed), after = data.filter((p) => p.t > unmarked);
  assert.ok(before.some((p) => p.dscp === 24), 'marked while reserved');
  assert.ok(after.length > 200 && after.every((p) => p.dscp === 0), `best effort again once the sending host let the reservation go: ${after.length} datagrams, ${JSON.stringify([...new Set(after.map((p) => p.dscp))])}`);
});

/** Reads TCP on ARGV[1] until the peer closes. */
const TCP_SINK = `import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(('', int(sys.argv[1]))); l.listen(1)
print('ready', flush=True)
c, _ = l.accept()
while c.recv(65536): pass
`;
/** Writes 64 kB every 0.1 s to ARGV[1]:ARGV[2] for ARGV[3] seconds. */
const TCP_SOURCE = `import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
end = time.time() + float(sys.argv[3])
while time.time() < end:
    s.sendall(b'x' * 65536); time.sleep(0.1)
s.close()
`;
