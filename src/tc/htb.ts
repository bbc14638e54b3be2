/* The tc backend's plans: output queueing in eight HTB classes by the IP precedence bits of
 * the DS field (IPv4's TOS byte, IPv6's traffic class: RFC 2474 §3 puts the same DS field in
 * both), as tc argument vectors (pure, so tests read the plan), and the
 * per-class byte counters read back from `tc -s -j qdisc show`.
 *
 * Why HTB approximates the paper's WFQ: each precedence p gets an HTB class whose assured
 * rate is the link rate times w_p / sum(w), with ceil = link rate. A class under its assured
 * rate is served first (HTB serves classes that need not borrow before those that do), so
 * every class keeps at least its share whatever the others send; idle bandwidth is lent to
 * the backlogged classes by deficit round robin with quanta proportional to the weights, so
 * it is shared in proportion to the weights too. That is the WFQ service guarantee at the
 * granularity of one quantum per round, not WFQ's per-packet finishing-time order.
 * `qos demo` queues its router this way (paper section 5). */

import { QosError } from '../errors.js';

export type SchedulerKind = 'wfq' | 'priority';

export interface SchedulerOptions {
  kind: SchedulerKind;
  /** bottleneck rate, bits per second */
  linkBps: number;
  /** weight of precedence 0..7 (wfq); ignored by priority */
  weights: readonly number[];
  /** packets each class queue holds before it drops (drop-tail) */
  queuePackets: number;
}

/** Default weights: precedence p weighs p + 1 (higher precedence, higher weight). */
export const DEFAULT_WEIGHTS: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8];

const MTU_FRAME = 1514;
/** The assured rate of each class under strict priority: a token amount, so precedence alone decides. */
const PRIORITY_CLASS_BPS = 8_000;

/** HTB class id of precedence p: 1:10 .. 1:17. */
export function classOf(p: number): string {
  return `1:${10 + p}`;
}

/** Checks the options; throws QOS_ERR_USAGE naming the bad one. */
export function checkScheduler(o: SchedulerOptions): void {
  if (o.weights.length !== 8 || o.weights.some((w) => !Number.isInteger(w) || w < 1 || w > 1000)) {
    throw new QosError('QOS_ERR_USAGE', `weights must be eight whole numbers 1..1000 (precedence 0 first), not "${o.weights.join(',')}"`);
  }
  if (!(o.linkBps >= 64_000)) throw new QosError('QOS_ERR_USAGE', `the bottleneck rate must be at least 64 kbit/s, not ${o.linkBps}`);
  if (!Number.isInteger(o.queuePackets) || o.queuePackets < 2 || o.queuePackets > 100_000) throw new QosError('QOS_ERR_USAGE', `queue length must be 2..100000 packets, not ${o.queuePackets}`);
}

/** The assured rate (bits/s) of each precedence under these options. */
export function assuredRates(o: SchedulerOptions): number[] {
  if (o.kind === 'priority') return o.weights.map(() => PRIORITY_CLASS_BPS);
  const sum = o.weights.reduce((a, b) => a + b, 0);
  return o.weights.map((w) => Math.max(PRIORITY_CLASS_BPS, Math.floor((o.linkBps * w) / sum)));
}

/** tc argument vectors (without the leading `tc`) that install the scheduler as the root
 * qdisc of dev. IPv4 and IPv6 are classified alike; what is neither (ARP) goes to
 * precedence 0. */
export function schedulerPlan(dev: string, o: SchedulerOptions): string[][] {
  checkScheduler(o);
  const link = `${Math.round(o.linkBps)}bit`;
  const rates = assuredRates(o);
  const minW = Math.min(...o.weights);
  const plan: string[][] = [
    ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '10'],
    ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', link, 'ceil', link, 'quantum', String(MTU_FRAME)],
  ];
  for (let p = 0; p < 8; p++) {
    // wfq: all classes at one HTB priority, quanta in proportion to the weights;
    // priority: precedence 7 at HTB prio 0 (served first) down to precedence 0 at prio 7.
    const quantum = o.kind === 'wfq' ? Math.round((MTU_FRAME * o.weights[p]!) / minW) : MTU_FRAME;
    const prio = o.kind === 'wfq' ? 0 : 7 - p;
    plan.push(['class', 'add', 'dev', dev, 'parent', '1:1', 'classid', classOf(p), 'htb', 'rate', `${rates[p]}bit`, 'ceil', link,
      'quantum', String(quantum), 'prio', String(prio)]);
    plan.push(['qdisc', 'add', 'dev', dev, 'parent', classOf(p), 'handle', `${10 + p}:`, 'pfifo', 'limit', String(o.queuePackets)]);
    const bits = `0x${(p << 5).toString(16)}`;
    plan.push(['filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'tos', bits, '0xe0', 'flowid', classOf(p)]);
    // u32's `ip6 priority` is the traffic class byte (bits 4..11 of the header's first word).
    plan.push(['filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ipv6', 'prio', '2', 'u32', 'match', 'ip6', 'priority', bits, '0xe0', 'flowid', classOf(p)]);
  }
  return plan;
}

/** A plain link of rateBps on dev's egress: how a veth, which has no speed of its own, is
 * made a 100 Mb/s or 10 Mb/s link. The queue is the device's (1,000 packets). */
export function linkPlan(dev: string, rateBps: number): string[][] {
  const rate = `${Math.round(rateBps)}bit`;
  return [
    ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '1'],
    ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', rate, 'ceil', rate, 'quantum', '60000'],
  ];
}

export interface ClassCounters { bytes: number[]; drops: number[] }

/** Bytes sent and packets dropped so far by each precedence class, from the class queues in
 * `tc -s -j qdisc show dev D` (this tc prints HTB classes as text only). */
export function classCounters(json: string): ClassCounters {
  const out: ClassCounters = { bytes: new Array<number>(8).fill(0), drops: new Array<number>(8).fill(0) };
  const qdiscs = JSON.parse(json) as Array<{ parent?: string; bytes?: number; drops?: number }>;
  if (!Array.isArray(qdiscs)) throw new Error('tc qdisc show: not a JSON array');
  for (const q of qdiscs) {
    const m = /^1:1([0-7])$/.exec(q.parent ?? '');
    if (!m) continue;
    out.bytes[Number(m[1])] = q.bytes ?? 0;
    out.drops[Number(m[1])] = q.drops ?? 0;
  }
  return out;
}
