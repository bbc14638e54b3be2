/* `qos bench tcp-cheat`: the TCP cheating experiment measured (docs/tcp-cheating.md). On the
 * testbed of tcp-cheat-net.ts (a reserved forward path, a congested reverse path), a TCP
 * transfer's goodput at the receiver with `qos rsvp cheat` on the ingress router and without,
 * in alternating rounds (the order swapped every round, so a drift of the machine's speed
 * falls on both); medians with the lowest and highest. */

import { QosError } from '../errors.js';
import { medianF } from './helpers.js';
import { CheatNet, DEFAULT_NET, type CheatNetOptions, type CheatReport, type RoundResult } from './tcp-cheat-net.js';

const PREFIX = 'qtcb';

export interface TcpCheatBenchOptions {
  /** pairs of rounds, one with and one without the cheat */
  rounds: number;
  /** the measured window of each round, seconds */
  seconds: number;
  /** W_R, bytes */
  window: number;
  net?: CheatNetOptions;
  /** the sender's TCP congestion control (default: the machine's) */
  congestionControl?: string;
  /** the reverse path's rate, bits/s (default: the testbed's, 256 kbit/s) */
  reverseBits?: number;
  progress?: (m: string) => void;
}

/** A median and the range it comes from. */
export interface Spread { median: number; min: number; max: number }

export interface TcpCheatBenchResult {
  setup: {
    forward_mbit: number; reverse_kbit: number; reverse_queue_bytes: number; cross_traffic_mbit: number;
    window_bytes: number; seconds: number; rounds: number; congestion_control: string;
  };
  /** goodput at the receiver, Mbit/s */
  goodput_mbit: { cheating: Spread; plain: Spread };
  /** cheating over plain, per pair of rounds */
  ratio: Spread;
  /** the sender's smoothed round trip time at the end of each window, ms: with the cheat, to A
   * (W_R / the reserved rate: the sender's own queue); without, through the reverse queue */
  sender_rtt_ms: { cheating: Spread; plain: Spread };
  /** its lowest: with the cheat, PRTT itself */
  sender_min_rtt_ms: { cheating: Spread; plain: Spread };
  /** the forward rate reached with cheating (goodput / the reserved rate) */
  cheating_share_of_reserved: Spread;
  /** the cheat's counts, summed over its rounds */
  cheat: { segments: number; fake_acks: number; real_acks_dropped: number; send_errors: number; before_start: number };
  rounds: { cheat: boolean; mbit: number; bytes: number; seconds: number; sender_rtt_ms: number }[];
}

function spread(xs: number[], digits = 2): Spread {
  const r = (x: number) => Number(x.toFixed(digits));
  return { median: r(medianF(xs)), min: r(Math.min(...xs)), max: r(Math.max(...xs)) };
}

export async function benchTcpCheat(o: TcpCheatBenchOptions): Promise<TcpCheatBenchResult> {
  const say = o.progress ?? (() => undefined);
  const netOptions = { ...(o.net ?? DEFAULT_NET), ...(o.congestionControl ? { congestionControl: o.congestionControl } : {}), ...(o.reverseBits ? { reverseBits: o.reverseBits } : {}) };
  const net = new CheatNet(PREFIX, netOptions);
  const results: RoundResult[] = [];
  let congestionControl = '';
  try {
    congestionControl = await net.congestionControl();
    let port = 40_000;
    for (let i = 0; i < o.rounds; i++) {
      for (const cheat of i % 2 ? [true, false] : [false, true]) {
        const r = await net.round({ cheat, seconds: o.seconds, senderPort: port++, window: o.window });
        say(`round ${i + 1}/${o.rounds} ${cheat ? 'cheating' : 'plain   '}: ${(r.bits / 1e6).toFixed(2)} Mbit/s (${r.bytes} bytes in ${r.seconds.toFixed(2)} s)`
          + (r.report ? `; ${r.report.segments} segments, ${r.report.fakeAcks} fake ACKs, ${r.report.realAcksDropped} real ACKs dropped` : ''));
        results.push(r);
      }
    }
  } finally {
    net.destroy();
  }
  const cheating = results.filter((r) => r.cheat);
  const plain = results.filter((r) => !r.cheat);
  const reports = cheating.map((r) => r.report).filter((r): r is CheatReport => r !== undefined);
  if (reports.length !== cheating.length) throw new QosError('QOS_ERR_BENCH', 'a cheating round reported no counts');
  const sum = (f: (r: CheatReport) => number) => reports.reduce((a, r) => a + f(r), 0);
  return {
    setup: {
      forward_mbit: netOptions.forwardBits / 1e6, reverse_kbit: netOptions.reverseBits / 1e3, reverse_queue_bytes: netOptions.reverseQueue,
      cross_traffic_mbit: (netOptions.floodBytes * 8) / 1e6, window_bytes: o.window, seconds: o.seconds, rounds: o.rounds,
      congestion_control: congestionControl,
    },
    goodput_mbit: { cheating: spread(cheating.map((r) => r.bits / 1e6)), plain: spread(plain.map((r) => r.bits / 1e6)) },
    sender_rtt_ms: { cheating: spread(cheating.map((r) => r.senderRttMs), 3), plain: spread(plain.map((r) => r.senderRttMs), 3) },
    sender_min_rtt_ms: { cheating: spread(cheating.map((r) => r.senderMinRttMs), 3), plain: spread(plain.map((r) => r.senderMinRttMs), 3) },
    ratio: spread(cheating.map((r, i) => r.bits / plain[i]!.bits)),
    cheating_share_of_reserved: spread(cheating.map((r) => r.bits / netOptions.forwardBits), 3),
    cheat: {
      segments: sum((r) => r.segments), fake_acks: sum((r) => r.fakeAcks), real_acks_dropped: sum((r) => r.realAcksDropped),
      send_errors: sum((r) => r.sendErrors), before_start: sum((r) => r.beforeStart),
    },
    rounds: results.map((r) => ({ cheat: r.cheat, mbit: Number((r.bits / 1e6).toFixed(3)), bytes: r.bytes, seconds: Number(r.seconds.toFixed(3)), sender_rtt_ms: r.senderRttMs })),
  };
}

/** The result for people: one line per figure. */
export function formatTcpCheatBench(r: TcpCheatBenchResult): string {
  const s = (x: Spread, unit: string) => `${x.median} ${unit} (${x.min}–${x.max})`;
  return [
    `forward ${r.setup.forward_mbit} Mbit/s reserved; reverse ${r.setup.reverse_kbit} kbit/s, ${r.setup.reverse_queue_bytes}-byte queue, ${r.setup.cross_traffic_mbit} Mbit/s of UDP cross traffic`,
    `W_R ${r.setup.window_bytes} bytes; ${r.setup.rounds} pairs of ${r.setup.seconds} s rounds; the sender's congestion control ${r.setup.congestion_control}`,
    `goodput with cheating:    ${s(r.goodput_mbit.cheating, 'Mbit/s')}`,
    `goodput without cheating: ${s(r.goodput_mbit.plain, 'Mbit/s')}`,
    `ratio (per pair):         ${s(r.ratio, 'x')}`,
    `sender's RTT, cheating:   ${s(r.sender_rtt_ms.cheating, 'ms')}, lowest ${s(r.sender_min_rtt_ms.cheating, 'ms')}`,
    `sender's RTT, plain:      ${s(r.sender_rtt_ms.plain, 'ms')}, lowest ${s(r.sender_min_rtt_ms.plain, 'ms')}`,
    `cheating / reserved rate: ${s(r.cheating_share_of_reserved, '')}`,
    `cheat: ${r.cheat.segments} segments seen, ${r.cheat.fake_acks} fake ACKs sent, ${r.cheat.real_acks_dropped} real ACKs dropped, ${r.cheat.send_errors} send errors`,
  ].join('\n');
}
