/* Sender TCP cheating end to end (docs/tcp-cheating.md): namespaces sender — a — receiver,
 * the data's path reserved at 20 Mb/s, the reverse path squeezed to 128 kb/s and flooded with
 * UDP (bench/tcp-cheat-net.ts), `qos rsvp cheat` run on a, the ingress router. What is checked
 * is what a user would see: on the sender's link, ACKs from the receiver that the receiver
 * never sent (made at a: TTL 64, where the receiver's, forwarded by a, arrive with 63), with
 * the window asked for and correct checksums (tshark); the receiver's real ACKs dropped at a;
 * more bytes through in the same window than without the cheat; and no table left behind. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheatNet, DEFAULT_NET, type RoundResult } from '../bench/tcp-cheat-net.js';
import { run, start, type Child } from '../exec.js';
import { QOS, requireE2e, sh, stopAtEndMark } from './harness.js';

requireE2e('tc', 'nft', 'ss', 'sysctl');

const WINDOW = 65_536;
const SECONDS = 2;
let net: CheatNet;
let dir: string;
let port = 41_000;

before(() => {
  // reno: in every namespace whatever the machine allows (net.ipv4.tcp_allowed_congestion_control),
  // so the result does not hang on the machine's default; a reverse path at 128 kbit/s makes
  // the contrast wide (about 45x measured in 2 s windows) so that a loaded machine cannot blur it
  net = new CheatNet('qtct', { ...DEFAULT_NET, reverseBits: 128e3, congestionControl: 'reno' });
  dir = mkdtempSync(join(tmpdir(), 'qosd-tcp-cheat-e2e-'));
});

after(() => {
  net?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Ack { ttl: number; ack: number; window: number; ipChecksum: number; tcpChecksum: number; tsecr: number | null }

/** tcpdump on a node's link of the pure ACKs from the receiver to the sender's port; stop()
 * gives them decoded by tshark (checksums checked: status 1 is good). Every ACK that crossed
 * the link before stop() is in it: a sends an end mark to the node's address ip over the link
 * after them, and tcpdump is stopped only once it has written the mark (a waiting time would
 * be a guess, too short on a loaded machine). */
async function captureAcks(ns: string, dev: string, ip: string, senderPort: number): Promise<{ stop(): Promise<Ack[]> }> {
  const file = join(dir, `${dev}-${senderPort}.pcap`);
  const filter = `tcp and src host ${net.receiverIp} and src port ${net.receiverPort} and dst port ${senderPort}`;
  const endMark = `udp and dst host ${ip} and dst port 9`;
  const p: Child = start(['tcpdump', '-i', dev, '-U', '--immediate-mode', '-B', '8192', '-n', '-w', file, `(${filter}) or (${endMark})`], { netns: ns, name: `tcpdump ${dev}`, stdio: ['ignore', 'ignore', 'pipe'] });
  await p.until('listening on', 30_000);
  return {
    async stop() {
      await stopAtEndMark(p, file, (mark) => sh(['ip', 'netns', 'exec', net.a.ns, 'bash', '-c', 'printf %s "$1" > /dev/udp/$2/9', 'endmark', mark, ip]));
      const r = await run(['tshark', '-r', file, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'tcp.relative_sequence_numbers:FALSE',
        '-Y', 'tcp.flags == 0x010 && tcp.len == 0', '-T', 'fields', '-E', 'separator=|',
        '-e', 'ip.ttl', '-e', 'tcp.ack', '-e', 'tcp.window_size_value', '-e', 'ip.checksum.status', '-e', 'tcp.checksum.status', '-e', 'tcp.options.timestamp.tsecr'], { timeoutMs: 60_000, pkg: 'tshark' });
      return r.stdout.split('\n').filter(Boolean).map((l) => {
        const f = l.split('|');
        const [ttl, ack, window, ipc, tcpc] = f.map(Number);
        return { ttl: ttl!, ack: ack!, window: window!, ipChecksum: ipc!, tcpChecksum: tcpc!, tsecr: f[5] ? Number(f[5]) : null };
      });
    },
  };
}

/** A round with a capture of the receiver's ACKs on the sender's link and on the receiver's,
 * from the connection's opening to the end of the measured window (the cheat still on). */
async function capturedRound(cheat: boolean, joinOpen = false): Promise<{ r: RoundResult; atSender: Ack[]; atReceiver: Ack[] }> {
  const senderPort = port++;
  let caps: { stop(): Promise<Ack[]> }[] = [];
  let acks: Ack[][] = [];
  const r = await net.round({
    cheat, joinOpen, seconds: SECONDS, senderPort, window: WINDOW,
    opened: async () => {
      caps = await Promise.all([captureAcks(net.sender.ns, net.sender.right!.dev, net.senderIp, senderPort), captureAcks(net.receiver.ns, net.receiver.left!.dev, net.receiverIp, senderPort)]);
    },
    measured: async () => { acks = await Promise.all(caps.map((c) => c.stop())); },
  });
  const [atSender, atReceiver] = acks;
  return { r, atSender: atSender!, atReceiver: atReceiver! };
}

const tables = (ns: string) => sh(['ip', 'netns', 'exec', ns, 'nft', 'list', 'tables']).stdout;

let plain: RoundResult;
let cheating: RoundResult;

test('without the cheat, the sender gets the receiver\'s own ACKs, forwarded by a (TTL 63)', { timeout: 60_000 }, async () => {
  const { r, atSender, atReceiver } = await capturedRound(false);
  plain = r;
  assert.ok(atReceiver.length > 0, 'the receiver sent ACKs');
  assert.ok(atSender.length > 0, 'some reached the sender through the congested reverse path');
  assert.deepEqual([...new Set(atSender.map((a) => a.ttl))], [63], 'every ACK the sender got was forwarded by a');
});

test('with the cheat on a, the sender gets fake ACKs the receiver never sent, and the receiver\'s real ACKs are dropped at a', { timeout: 60_000 }, async () => {
  const { r, atSender, atReceiver } = await capturedRound(true);
  cheating = r;
  const rep = r.report!;
  assert.ok(rep.segments > 0 && rep.fakeAcks === rep.ackable && rep.sendErrors === 0, JSON.stringify(rep));
  assert.ok(rep.wscale >= 0, `the window scale was read from the handshake: ${JSON.stringify(rep)}`);
  // made at a (TTL 64), not forwarded from the receiver (63): none of the receiver's reached the sender
  assert.ok(atSender.length > 0, 'the sender got ACKs');
  assert.deepEqual([...new Set(atSender.map((a) => a.ttl))], [64], 'every ACK the sender got was made at a');
  // tcpdump on a loaded machine may miss a few; it cannot see more than were sent
  assert.ok(atSender.length <= rep.fakeAcks && atSender.length >= rep.fakeAcks * 0.9, `${atSender.length} fake ACKs captured of ${rep.fakeAcks} sent`);
  assert.deepEqual([...new Set(atSender.map((a) => a.window))], [Math.min(65535, WINDOW >> rep.wscale)], 'each announces W_R in the receiver\'s window scale');
  assert.ok(atSender.every((a) => a.ipChecksum === 1 && a.tcpChecksum === 1), 'tshark finds every IP and TCP checksum good');
  assert.ok(rep.timestamps && atSender.every((a) => a.tsecr !== null && a.tsecr > 0), 'the connection uses timestamps, and every fake ACK echoes one');
  // the ack numbers climb: each acknowledges the data that had passed a
  assert.ok(atSender.every((a, i) => i === 0 || ((a.ack - atSender[i - 1]!.ack) >>> 0) < 2 ** 31), 'the ack numbers never go back');
  // the receiver did send ACKs; those that got through its congested link were dropped at a
  // (counted until the cheat stopped, after the captures: the queue still held some then)
  assert.ok(atReceiver.length > 0, 'the receiver sent ACKs of its own');
  assert.ok(rep.realAcksDropped > 0, `a dropped the receiver's ACKs: ${rep.realAcksDropped}`);
  assert.ok(!tables(net.a.ns).includes(rep.table), `its table ${rep.table} is gone once it stopped`);
});

test('through the congested reverse path, more than three times as many bytes arrive in the same window with the cheat as without', (t) => {
  // measured ~45x on this testbed: the margin leaves room for a loaded machine
  assert.ok(plain && cheating, 'the two rounds above ran');
  t.diagnostic(`${cheating.bytes} bytes with the cheat, ${plain.bytes} without, in ${SECONDS} s each: ${(cheating.bytes / plain.bytes).toFixed(1)}x`);
  assert.ok(cheating.bytes > 3 * plain.bytes, `${cheating.bytes} bytes with the cheat, ${plain.bytes} without, in ${SECONDS} s each`);
});

test('a cheat started on an open connection, told the window scale, answers from the first data segment it sees', { timeout: 60_000 }, async () => {
  const { r, atSender } = await capturedRound(true, true);
  const rep = r.report!;
  assert.ok(rep.segments > 0 && rep.fakeAcks === rep.segments && rep.beforeStart === 0, JSON.stringify(rep));
  assert.ok(!rep.timestamps, 'it did not see the handshake');
  assert.ok(atSender.length > 0 && atSender.every((a) => a.ttl === 64), 'the sender got fake ACKs only');
  assert.deepEqual([...new Set(atSender.map((a) => a.window))], [Math.min(65535, WINDOW >> rep.wscale)], 'W_R in the window scale it was given');
  assert.ok(atSender.every((a) => a.tsecr !== null && a.tsecr > 0), 'timestamps echoed from the segments themselves');
  assert.ok(r.bytes > 3 * plain.bytes, `${r.bytes} bytes with the cheat joined, ${plain.bytes} without`);
});

test('a cheat killed with SIGKILL leaves its table; the next one for the same connection removes it, and its own goes when it stops', { timeout: 60_000 }, async () => {
  const args = ['rsvp', 'cheat', '--json', '--dev', net.aDev, '--sender', `${net.senderIp}:${port}`, '--receiver', `${net.receiverIp}:${net.receiverPort}`, '--window', '64KiB'];
  const first = start([process.execPath, QOS, ...args], { netns: net.a.ns, name: 'qos rsvp cheat', keepStdout: true });
  await first.until('"ready"', 30_000, 'stdout');
  const table = (JSON.parse(first.stdout.trim()) as { table: string }).table;
  first.kill();
  await first.exited;
  assert.ok(tables(net.a.ns).includes(table), 'a killed cheat cannot remove its table');
  const second = start([process.execPath, QOS, ...args], { netns: net.a.ns, name: 'qos rsvp cheat', keepStdout: true });
  await second.until('"ready"', 30_000, 'stdout');
  assert.equal(tables(net.a.ns).split('\n').filter((l) => l.includes(table)).length, 1, 'one table for the connection: the old one was replaced');
  second.proc.kill('SIGTERM');
  await second.wait([0], 30_000);
  const stopped = JSON.parse(second.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  assert.equal(stopped.kind, 'stopped');
  for (const k of ['segments', 'fakeAcks', 'realAcksDropped']) assert.equal(stopped[k], 0, `${k}: no traffic`);
  assert.ok(!tables(net.a.ns).includes(table), 'its table is gone');
  assert.equal(sh(['ip', 'netns', 'pids', net.a.ns]).stdout.trim(), '', 'nothing of either cheat still runs on a (the helper dies with its parent)');
});

test('qos rsvp cheat refuses a sender that is not A.B.C.D:PORT, or an interface that is not there, before touching anything', () => {
  const cheat = (...args: string[]) => sh(['ip', 'netns', 'exec', net.a.ns, process.execPath, QOS, 'rsvp', 'cheat', ...args]);
  let r = cheat('--dev', net.aDev, '--sender', net.senderIp, '--receiver', `${net.receiverIp}:5001`, '--window', '1000');
  assert.equal(r.status, 64, r.stderr);
  assert.match(r.stderr, /--sender takes an IPv4 address and a port/);
  r = cheat('--dev', 'nosuch0', '--sender', `${net.senderIp}:1`, '--receiver', `${net.receiverIp}:5001`, '--window', '1000');
  assert.equal(r.status, 64, r.stderr);
  assert.match(r.stderr, /--dev: no interface "nosuch0"/);
  assert.doesNotMatch(tables(net.a.ns), /qosd_tcpcheat/);
});
