/* The testbed of the TCP cheating experiment (docs/tcp-cheating.md), shared by `qos bench
 * tcp-cheat` and src/e2e/tcp-cheat.test.ts: three network namespaces in a line, sender — a —
 * receiver (netchain.ts), where a is the QoS network's ingress router A of seed 001's figure 14.
 *
 *   forward:  the sender's link is shaped to the reserved rate (TBF on its egress): the rate
 *             the sender may send at, the only bottleneck of the data's path
 *   reverse:  the receiver's link toward A is squeezed (TBF, a low rate and a short queue) and,
 *             during each measured window, flooded with UDP cross traffic toward the sender:
 *             the receiver's ACKs wait in a full queue or are dropped there
 *
 * No netem on this machine: the reverse path's congestion is a low-rate qdisc plus cross
 * traffic. One round is one TCP connection, with or without `qos rsvp cheat` on A: the
 * connection opens while the reverse path is idle, the flood starts and fills its queue, the
 * sender starts writing, and the receiver counts the bytes it reads in a fixed window. */

import { join } from 'node:path';
import { QosError } from '../errors.js';
import { installed, run, start, type Child } from '../exec.js';
import { PACKAGE_ROOT } from '../paths.js';
import { NetChain } from './netchain.js';
import { must, removeStale } from '../demo/net.js';

const TRAFFIC = join(PACKAGE_ROOT, 'dist/bench/tcp-cheat-traffic.js');
const QOS = join(PACKAGE_ROOT, 'dist/cli/main.js');
const RECEIVER_PORT = 5001;
const FLOOD_PORT = 9999;

export interface CheatNetOptions {
  /** the forward (reserved) rate, bits/s */
  forwardBits: number;
  /** the reverse path's rate, bits/s, and its queue, bytes */
  reverseBits: number;
  reverseQueue: number;
  /** the UDP cross traffic offered to the reverse path, bytes/s */
  floodBytes: number;
  /** the sender's TCP congestion control (default: the machine's) */
  congestionControl?: string;
}

export const DEFAULT_NET: CheatNetOptions = { forwardBits: 20e6, reverseBits: 256e3, reverseQueue: 16_000, floodBytes: 1e6 };

export interface RoundOptions {
  cheat: boolean;
  /** the measured window, seconds */
  seconds: number;
  /** the sender's TCP port (a new one each round: the 5-tuple the cheat is told) */
  senderPort: number;
  /** W_R, bytes */
  window: number;
  /** start the cheat after the connection has opened, with --wscale (read from the sender's
   * TCP), instead of before its handshake */
  joinOpen?: boolean;
  /** called once the connection is open, before the flood and the data (a test starts its
   * captures here) */
  opened?: () => Promise<void>;
  /** called once the window is measured, while the cheat (if any) still runs (a test stops
   * its captures here: after the cheat, what waits in the reverse queue reaches the sender);
   * with the cheat, the sender has stopped writing and everything it wrote is acknowledged */
  measured?: () => Promise<void>;
}

/** What the cheat printed when it stopped (`qos rsvp cheat --json`). */
export interface CheatReport {
  segments: number; ackable: number; beforeStart: number; fakeAcks: number; sendErrors: number;
  inOrderBytes: number; wscale: number; timestamps: boolean; realAcksDropped: number; table: string;
}

export interface RoundResult {
  cheat: boolean;
  bytes: number;
  seconds: number;
  /** goodput at the receiver, bits/s */
  bits: number;
  /** the sender's TCP view at the end of the window (ss -ti): its smoothed and its lowest
   * round trip time, ms (with the cheat: to A, the sender's own queue included) */
  senderRttMs: number;
  senderMinRttMs: number;
  report?: CheatReport;
}

/** Why the experiment cannot run here, or null. */
export function cheatNetUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'the TCP cheating experiment needs root: it creates network namespaces, queueing disciplines and an nftables table';
  for (const [tool, pkg] of [['ip', 'iproute2'], ['tc', 'iproute2'], ['ss', 'iproute2'], ['nft', 'nftables'], ['sysctl', 'procps']] as const) {
    if (!installed(tool)) return `the TCP cheating experiment needs \`${tool}\`: install the Debian package ${pkg}`;
  }
  return null;
}

export class CheatNet {
  readonly chain: NetChain;
  private sink: Child | null = null;

  constructor(prefix: string, readonly o: CheatNetOptions = DEFAULT_NET) {
    const why = cheatNetUnavailable();
    if (why) throw new QosError('QOS_ERR_ENVIRONMENT', why);
    removeStale(prefix);
    this.chain = new NetChain(prefix, ['sender', 'a', 'receiver']);
    try {
      const tbf = (ns: string, dev: string, bits: number, burst: number, limit: number) =>
        must(['tc', '-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${bits}bit`, 'burst', String(burst), 'limit', String(limit)]);
      // the sender's own queue holds what W_R lets it have in flight: long enough never to drop
      tbf(this.sender.ns, this.sender.right!.dev, o.forwardBits, 32_768, 1 << 20);
      tbf(this.receiver.ns, this.receiver.left!.dev, o.reverseBits, 3_000, o.reverseQueue);
      if (o.congestionControl) must(['ip', 'netns', 'exec', this.sender.ns, 'sysctl', '-qw', `net.ipv4.tcp_congestion_control=${o.congestionControl}`]);
    } catch (e) {
      this.chain.destroy();
      throw e;
    }
  }

  get sender() { return this.chain.node('sender'); }
  get a() { return this.chain.node('a'); }
  get receiver() { return this.chain.node('receiver'); }
  get senderIp(): string { return this.sender.right!.ip; }
  get receiverIp(): string { return this.receiver.left!.ip; }
  /** A's interface toward the sender: where the cheat watches and answers */
  get aDev(): string { return this.a.left!.dev; }
  get receiverPort(): number { return RECEIVER_PORT; }

  /** Bytes waiting in the reverse path's queue. */
  async reverseBacklog(): Promise<number> {
    const r = await run(['tc', '-s', '-j', 'qdisc', 'show', 'dev', this.receiver.left!.dev, 'root'], { netns: this.receiver.ns, pkg: 'iproute2' });
    return (JSON.parse(r.stdout) as { backlog?: number }[])[0]?.backlog ?? 0;
  }

  /** The sender's congestion control (the namespace's default, from the machine's). */
  async congestionControl(): Promise<string> {
    const r = await run(['sysctl', '-n', 'net.ipv4.tcp_congestion_control'], { netns: this.sender.ns, pkg: 'procps' });
    return r.stdout.trim();
  }

  /** The round trip times the sender's TCP keeps for its connection from port. */
  private async senderRtt(port: number): Promise<{ rtt: number; minrtt: number }> {
    const r = await run(['ss', '-tinH', 'state', 'established', `sport = :${port}`], { netns: this.sender.ns, pkg: 'iproute2' });
    const rtt = /\brtt:([\d.]+)\//.exec(r.stdout), min = /\bminrtt:([\d.]+)/.exec(r.stdout);
    if (!rtt || !min) throw new QosError('QOS_ERR_BENCH', `ss shows no round trip time for the sender's connection: ${r.stdout.trim() || '(none)'}`);
    return { rtt: Number(rtt[1]), minrtt: Number(min[1]) };
  }

  /** The bytes the sender's connection from port has not had acknowledged or not sent (Send-Q). */
  private async senderUnsent(port: number): Promise<number> {
    const r = await run(['ss', '-tnH', 'state', 'established', `sport = :${port}`], { netns: this.sender.ns, pkg: 'iproute2' });
    const f = r.stdout.trim().split(/\s+/);
    if (f.length < 2) throw new QosError('QOS_ERR_BENCH', 'the sender\'s connection is gone');
    return Number(f[1]);
  }

  /** The window scale the sender's connection from port applies to the receiver's windows
   * (ss: wscale:<the peer's>,<its own>). */
  private async senderWscale(port: number): Promise<number> {
    const r = await run(['ss', '-tinH', 'state', 'established', `sport = :${port}`], { netns: this.sender.ns, pkg: 'iproute2' });
    const m = /\bwscale:(\d+),\d+/.exec(r.stdout);
    if (!m) throw new QosError('QOS_ERR_BENCH', `ss shows no window scale for the sender's connection: ${r.stdout.trim() || '(none)'}`);
    return Number(m[1]);
  }

  /** One connection, measured at the receiver over o.seconds. */
  async round(o: RoundOptions): Promise<RoundResult> {
    const children: Child[] = [];
    const begin = (argv: string[], ns: string, name: string, stdin: 'pipe' | 'ignore' = 'ignore') => {
      const c = start(argv, { netns: ns, name, keepStdout: true, stdio: [stdin, 'pipe', 'pipe'] });
      children.push(c);
      return c;
    };
    const node = (...args: string[]) => [process.execPath, TRAFFIC, ...args];
    try {
      // the last round's flood drained: the handshake must not meet a full queue
      for (let i = 0; (await this.reverseBacklog()) > 0; i++) {
        if (i > 100) throw new QosError('QOS_ERR_BENCH', 'the reverse path\'s queue did not drain in 10 s');
        await sleep(100);
      }
      if (!this.sink) {
        this.sink = start(node('udpsink', '--port', String(FLOOD_PORT)), { netns: this.sender.ns, name: 'udp sink' });
        await this.sink.until('ready', 30_000, 'stdout');
      }
      let cheat: Child | null = null;
      const startCheat = async (wscale?: number): Promise<Child> => {
        const c = begin([process.execPath, QOS, 'rsvp', 'cheat', '--json', '--dev', this.aDev, '--sender', `${this.senderIp}:${o.senderPort}`,
          '--receiver', `${this.receiverIp}:${RECEIVER_PORT}`, '--window', String(o.window), ...(wscale === undefined ? [] : ['--wscale', String(wscale)])], this.a.ns, 'qos rsvp cheat');
        await c.until('"ready"', 30_000, 'stdout');
        return c;
      };
      if (o.cheat && !o.joinOpen) cheat = await startCheat();
      const recv = begin(node('recv', '--port', String(RECEIVER_PORT), '--seconds', String(o.seconds)), this.receiver.ns, 'receiver');
      await recv.until('ready', 30_000, 'stdout');
      const send = begin(node('send', '--to', `${this.receiverIp}:${RECEIVER_PORT}`, '--from-port', String(o.senderPort)), this.sender.ns, 'sender', 'pipe');
      await send.until('connected', 30_000, 'stdout');
      // joining an open connection: the receiver's window scale as the sender's TCP has it
      if (o.cheat && o.joinOpen) cheat = await startCheat(await this.senderWscale(o.senderPort));
      await o.opened?.();
      const flood = begin(node('flood', '--to', `${this.senderIp}:${FLOOD_PORT}`, '--rate', String(this.o.floodBytes)), this.receiver.ns, 'flood');
      await flood.until('ready', 30_000, 'stdout');
      // the reverse queue full before the first byte
      for (let i = 0; (await this.reverseBacklog()) < this.o.reverseQueue / 2; i++) {
        if (i > 100) throw new QosError('QOS_ERR_BENCH', 'the cross traffic did not fill the reverse path\'s queue in 10 s');
        await sleep(100);
      }
      send.proc.stdin!.write('go\n');
      await recv.until('"bytes"', (o.seconds + 60) * 1000, 'stdout');
      const m = JSON.parse(lastLine(recv.stdout)) as { bytes: number; seconds: number };
      const rtt = await this.senderRtt(o.senderPort);
      if (o.cheat) {
        // the sender stops writing and its queue drains: every fake ACK is sent before measured()
        send.proc.stdin!.write('stop\n');
        for (let i = 0; (await this.senderUnsent(o.senderPort)) > 0; i++) {
          if (i > 100) throw new QosError('QOS_ERR_BENCH', 'the sender\'s queue did not drain in 10 s with the cheat on');
          await sleep(100);
        }
      }
      await o.measured?.();
      flood.kill();
      send.kill();
      let report: CheatReport | undefined;
      if (cheat) {
        await cheat.stop('SIGTERM', 10_000);
        const ready = JSON.parse(cheat.stdout.split('\n')[0]!) as { table: string };
        const stopped = JSON.parse(lastLine(cheat.stdout)) as CheatReport & { kind: string };
        if (stopped.kind !== 'stopped') throw new QosError('QOS_ERR_BENCH', `qos rsvp cheat did not report its counts: ${cheat.stderr.trim()}`);
        const { kind: _k, ...counts } = stopped;
        report = { ...counts, table: ready.table };
      }
      return { cheat: o.cheat, bytes: m.bytes, seconds: m.seconds, bits: (m.bytes * 8) / m.seconds, senderRttMs: rtt.rtt, senderMinRttMs: rtt.minrtt, ...(report ? { report } : {}) };
    } finally {
      for (const c of children) c.kill();
      await Promise.all(children.map((c) => c.exited));
    }
  }

  destroy(): void {
    this.sink?.kill();
    this.chain.destroy();
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
