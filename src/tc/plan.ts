/* What the kernel must be told to go from one traffic-control state to another (pure): tc
 * commands (`tc -batch` lines), one nftables transaction (`nft -f` text) and `ip link`
 * argument vectors (802.1p on VLAN devices). `qos tc plan` prints exactly this text.
 *
 * On each interface under control (docs/traffic-control.md, "How it is built"):
 *   - an HTB root qdisc, handle d5c:, whose root class d5c:1 holds the link rate; d5c:2 takes
 *     unfiltered traffic (best effort, HTB prio 4, the rate the flows leave), d5c:3 the
 *     demoted packets of borrowing flows (prio 7, below best effort, seed 003 note 2), d5c:4
 *     the excess of discarding flows (its queue holds nothing: every packet sent there is
 *     dropped, silently, as a policer drops); each
 *     flow is a class d5c:(0x10 + id) with rate = ceil = its token rate and its bucket
 *     (discard: ceil = the link, the policer alone limits it), at its service's prio;
 *     a shaping flow's class queues in a byte FIFO bounded by its Latency (or 100 ms), or in a
 *     TBF with the flow's peak rate when it has one;
 *   - in the nftables table (`inet qosd_tc`, postrouting, after the marking table's output
 *     chain), two lookups per family: the exact filters in a hash map, then the filters with
 *     wildcards in an interval map; each element `goto`s its flow's chain, which polices
 *     (discard: to d5c:4; borrow: goto the interface's demote chain) with `limit rate over`, sets
 *     `meta priority` to the flow's class (HTB classifies by it, no tc filter is scanned) and
 *     the conforming DSCP.
 * The lookups cost the same for 10 or 10,000 filters: no linear scan. */

import { DOT1P_OBJECT } from '../paths.js';
import { kernelBucket, kernelRate, flowMarks, policer, isExact, BEST_EFFORT_PRIO, DEMOTED_PRIO, type TcFilter, type TcFlow, type TcInterface, type TcState } from './model.js';

export const HANDLE = 'd5c';
/** The qdisc's major number as the kernel reports it (`tc -j qdisc show`: "d5c:"). */
export const HANDLE_TEXT = `${HANDLE}:`;
const MTU_FRAME = 1514;
/** Packets the demoted class queues. */
const DEMOTED_QUEUE = 32;
/** A shaping flow's queue holds this long at its rate when its FLOWSPEC gives no Latency. */
const DEFAULT_QUEUE_US = 100_000;

export interface TcPlan {
  /** `tc -batch` lines, in order */
  tc: string[];
  /** one nftables transaction (`nft -f`), empty if nothing changes there */
  nft: string[];
  /** `ip` argument vectors (without `ip`), run after tc */
  ip: string[][];
  /** the 802.1p tagger (bpf/dot1p.bpf.c) on interfaces with --dot1p: attached, its map's
   * entries set (a PCP) or removed (null), detached; run after tc */
  dot1p: Dot1pStep[];
}

export type Dot1pStep =
  | { op: 'attach'; dev: string }
  | { op: 'detach'; dev: string }
  | { op: 'map'; dev: string; entries: Array<[number, number | null]> };

/** The tagger's tc filter on egress: its preference marks it as ours. */
export const DOT1P_PREF = 0xd5c;
/** tc argument vectors that attach the tagger to dev's egress (clsact runs before the root
 * qdisc; one already there, with others' filters, is kept). */
export const dot1pAttach = (dev: string): string[][] => [
  ['qdisc', 'replace', 'dev', dev, 'clsact'],
  ['filter', 'replace', 'dev', dev, 'egress', 'pref', String(DOT1P_PREF), 'handle', '1', 'bpf', 'direct-action', 'object-file', DOT1P_OBJECT, 'section', 'tc'],
];
export const dot1pDetach = (dev: string): string[] => ['filter', 'del', 'dev', dev, 'egress', 'pref', String(DOT1P_PREF)];

export const classOf = (flowId: number): string => `${HANDLE}:${(0x10 + flowId).toString(16)}`;
/** The class id as skb->priority holds it (major << 16 | minor), for egress-qos-map. */
const priorityOf = (minor: number): number => parseInt(HANDLE, 16) * 65536 + minor;
const BEST_EFFORT_CLASS = `${HANDLE}:2`;
const DEMOTED_CLASS = `${HANDLE}:3`;
/** Where discard mode sends the excess: a class whose queue holds nothing. Dropped there, not
 * by nftables, because a packet nftables drops on output fails the program's send with
 * EPERM, while one the qdisc drops is lost silently, as on the wire (for UDP; TCP resends). */
const DISCARD_CLASS = `${HANDLE}:4`;

const bits = (bytesPerS: number) => `${Math.round(bytesPerS * 8)}bit`;

/** The rate each interface's reserved classes keep: a hundredth of the link, at least 1000 B/s. */
export function reservedRate(i: TcInterface): number {
  return Math.max(1000, Math.floor(i.rate / 100));
}

/** What an interface's flows reserve, bytes/s (discard and borrow reserve their token rate too). */
export function reservedBy(state: TcState, dev: string): number {
  let sum = 0;
  for (const f of state.flows.values()) if (f.dev === dev) sum += kernelRate(f);
  return sum;
}

/** The rate unfiltered traffic is assured: what the flows and the demoted class leave. */
function bestEffortRate(state: TcState, i: TcInterface): number {
  return Math.max(reservedRate(i), i.rate - reservedBy(state, i.dev) - reservedRate(i));
}

/** The table's name unless the daemon gives another (qos daemon --nft-table NAME: NAME_tc). */
export const TABLE = 'qosd_tc';
const KEY4 = 'ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service';
const KEY6 = 'ipv6_addr . ipv6_addr . inet_proto . inet_service . inet_service';
const LOOKUP4 = 'ip saddr . ip daddr . meta l4proto . th sport . th dport';
const LOOKUP6 = 'ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport';
const mapName = (i: TcInterface, f: 4 | 6, exact: boolean) => `${exact ? 'x' : 'w'}${f}_${i.slot}`;

function addr(v: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const g: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(((v >> s) & 0xffffn).toString(16));
  return g.join(':');
}
function span(lo: bigint | number, hi: bigint | number, show: (v: never) => string): string {
  return lo === hi ? show(lo as never) : `${show(lo as never)}-${show(hi as never)}`;
}
/** A filter's key in its map: `src . dst . proto . sport . dport`, ranges as lo-hi. */
export function filterKey(f: TcFilter): string {
  const a = (v: bigint) => addr(v, f.family);
  const n = (v: number) => String(v);
  return [span(f.src.lo, f.src.hi, a), span(f.dst.lo, f.dst.hi, a), span(f.proto.lo, f.proto.hi, n), span(f.sport.lo, f.sport.hi, n), span(f.dport.lo, f.dport.hi, n)].join(' . ');
}

function flowClass(f: TcFlow, i: TcInterface, verb: 'add' | 'change'): string[] {
  const rate = kernelRate(f), bucket = kernelBucket(f), { prio } = flowMarks(f, i);
  const ceil = f.mode === 'discard' ? i.rate : rate;
  const out = [`class ${verb} dev ${i.dev} parent ${HANDLE}:1 classid ${classOf(f.id)} htb rate ${bits(rate)} ceil ${bits(ceil)} burst ${bucket} cburst ${bucket} prio ${prio} quantum ${MTU_FRAME}`];
  if (f.mode === 'shape') {
    const queue = Math.max(2 * MTU_FRAME, Math.ceil((rate * (f.spec.Latency ?? DEFAULT_QUEUE_US)) / 1e6));
    const leaf = f.spec.PeakBandwidth !== null && f.spec.PeakBandwidth > rate
      ? `tbf rate ${bits(rate)} burst ${bucket} peakrate ${bits(f.spec.PeakBandwidth)} minburst ${MTU_FRAME} limit ${queue + bucket}`
      : `bfifo limit ${queue + bucket}`;
    out.push(`qdisc replace dev ${i.dev} parent ${classOf(f.id)} ${leaf}`);
  } else if (verb === 'change') {
    // a flow that stops shaping goes back to the default queue
    out.push(`qdisc replace dev ${i.dev} parent ${classOf(f.id)} pfifo`);
  }
  return out;
}

function flowChain(f: TcFlow, i: TcInterface, T: string): string[] {
  const c = `${T} flow_${f.id}`;
  const { conforming } = flowMarks(f, i);
  const p = policer(f);
  const limit = `limit rate over ${p.pps}/second burst ${p.burst} packets`;
  const out: string[] = [];
  if (f.mode === 'borrow') out.push(`add rule ${c} ${limit} goto demote_${i.slot}`);
  if (f.mode === 'discard') out.push(`add rule ${c} ${limit} meta priority set ${DISCARD_CLASS} accept`);
  out.push(`add rule ${c} meta priority set ${classOf(f.id)}`, `add rule ${c} ip dscp set ${conforming.dscp}`, `add rule ${c} ip6 dscp set ${conforming.dscp}`);
  return out;
}

function devInstall(state: TcState, i: TcInterface, T: string): { tc: string[]; nft: string[] } {
  const link = bits(i.rate), res = bits(reservedRate(i));
  const tc = [
    `qdisc add dev ${i.dev} root handle ${HANDLE}: htb default 2`,
    `class add dev ${i.dev} parent ${HANDLE}: classid ${HANDLE}:1 htb rate ${link} ceil ${link} quantum ${MTU_FRAME}`,
    `class add dev ${i.dev} parent ${HANDLE}:1 classid ${BEST_EFFORT_CLASS} htb rate ${bits(bestEffortRate(state, i))} ceil ${link} prio ${BEST_EFFORT_PRIO} quantum ${MTU_FRAME}`,
    `class add dev ${i.dev} parent ${HANDLE}:1 classid ${DEMOTED_CLASS} htb rate ${res} ceil ${link} prio ${DEMOTED_PRIO} quantum ${MTU_FRAME}`,
    // short: a demoted packet waits only while the link is busy, and the program's socket
    // buffer must not fill with them (a blocking sender would then slow to the demoted rate)
    `qdisc add dev ${i.dev} parent ${DEMOTED_CLASS} pfifo limit ${DEMOTED_QUEUE}`,
    `class add dev ${i.dev} parent ${HANDLE}:1 classid ${DISCARD_CLASS} htb rate 8kbit ceil 8kbit prio ${DEMOTED_PRIO} quantum ${MTU_FRAME}`,
    `qdisc add dev ${i.dev} parent ${DISCARD_CLASS} pfifo limit 0`,
  ];
  const d = `${T} demote_${i.slot}`;
  const nft = [
    `add chain ${d}`,
    `add rule ${d} meta priority set ${DEMOTED_CLASS}`,
    `add rule ${d} ip dscp set ${i.nonconforming.dscp}`,
    `add rule ${d} ip6 dscp set ${i.nonconforming.dscp}`,
  ];
  for (const fam of [4, 6] as const) {
    for (const exact of [true, false]) {
      nft.push(`add map ${T} ${mapName(i, fam, exact)} { type ${fam === 4 ? KEY4 : KEY6} : verdict; ${exact ? '' : 'flags interval; '}}`);
    }
  }
  // exact before wildcard; the flow chains are reached by goto, so one lookup decides
  for (const fam of [4, 6] as const) {
    for (const exact of [true, false]) nft.push(`add rule ${T} post oifname "${i.dev}" ${fam === 4 ? LOOKUP4 : LOOKUP6} vmap @${mapName(i, fam, exact)}`);
  }
  return { tc, nft };
}

/** The 802.1p of a VLAN device's classes: conforming per flow, non-conforming on the demoted
 * class (egress-qos-map maps skb->priority, the class id, to the tag's PCP). */
function qosMap(i: TcInterface, entries: Array<[number, number]>): string[][] {
  return entries.length ? [['link', 'set', 'dev', i.dev, 'type', 'vlan', 'egress-qos-map', ...entries.map(([p, c]) => `${p}:${c}`)]] : [];
}

/** What of a state is in the kernel: without the interfaces that are absent (their
 * configuration waits for an interface of their name) and their flows and filters. The
 * same state when none is absent; otherwise the same objects in new maps. */
export function inKernel(s: TcState): TcState {
  if (![...s.devs.values()].some((i) => i.absent)) return s;
  const devs = new Map([...s.devs].filter(([, i]) => !i.absent));
  const flows = new Map([...s.flows].filter(([, f]) => devs.has(f.dev)));
  const filters = new Map([...s.filters].filter(([, f]) => flows.has(f.flow)));
  return { devs, flows, filters, ...(s.table ? { table: s.table } : {}) };
}

/** The commands that take the kernel from `before` to `after`. Both are made by control.ts,
 * which replaces a flow or filter it changes (never edits one in place: the same object means
 * unchanged), never moves a flow to another interface but with the interface's rename, and
 * gives an interface it installs again a new slot. An interface is known by its slot: one
 * renamed keeps it, and only the lookups, which name it (`oifname`), are written again (the
 * kernel keeps its qdisc, classes, tagger and egress map through a rename, and its maps and
 * chains are named by slot). An interface whose device went (absent now, or its name on a
 * device of another index) lost its qdisc, classes, tagger and egress map with the device:
 * only its nftables part is removed. */
export function planChange(beforeAll: TcState, afterAll: TcState): TcPlan {
  const plan: TcPlan = { tc: [], nft: [], ip: [], dot1p: [] };
  const before = inKernel(beforeAll), after = inKernel(afterAll);
  const T = `inet ${after.table ?? before.table ?? TABLE}`;
  const afterBySlot = new Map([...after.devs.values()].map((i) => [i.slot, i]));
  const beforeBySlot = new Map([...before.devs.values()].map((i) => [i.slot, i]));
  const kept = (i: TcInterface) => afterBySlot.has(i.slot);
  /** its device is gone with what the kernel held on it: the name is absent now, or another
   * device (another index) has it */
  const vanished = (i: TcInterface) => {
    const a = afterAll.devs.get(i.dev);
    return !kept(i) && a !== undefined && (a.absent !== undefined || a.ifindex !== i.ifindex);
  };
  if (!after.devs.size) {
    if (before.devs.size) plan.nft.push(`delete table ${T}`);
    for (const i of before.devs.values()) {
      if (vanished(i)) continue;
      plan.tc.push(`qdisc del dev ${i.dev} root`);
      if (tags(i)) plan.dot1p.push({ op: 'detach', dev: i.dev });
    }
    return plan;
  }
  /** a kept interface as it is after (its name may have changed) */
  const now = (i: TcInterface) => afterBySlot.get(i.slot)!;
  const gone = [...before.devs.values()].filter((i) => !kept(i));
  const fresh = [...after.devs.values()].filter((i) => !beforeBySlot.has(i.slot));
  const renamed = [...before.devs.values()].some((i) => kept(i) && now(i).dev !== i.dev);
  const devOf = (s: TcState, flow: number) => s.devs.get(s.flows.get(flow)!.dev)!;
  /** the flow of that id before, if it was on the same interface (slot) */
  const prior = (id: number, i: TcInterface) => { const g = before.flows.get(id); return g && before.devs.get(g.dev)!.slot === i.slot ? g : undefined; };
  const vlan = new Map<TcInterface, Array<[number, number]>>();
  const tagged = new Map<TcInterface, Array<[number, number | null]>>();
  const pcp = (i: TcInterface, minor: number, value: number | null) => {
    if (i.vlan) vlan.set(i, [...(vlan.get(i) ?? []), [priorityOf(minor), value ?? 0]]);
    else if (i.dot1p && (beforeBySlot.has(i.slot) || value !== null)) tagged.set(i, [...(tagged.get(i) ?? []), [priorityOf(minor), value]]);
  };
  const rewritePost = gone.length > 0 || fresh.length > 0 || renamed;
  if (!before.devs.size) plan.nft.push(`add table ${T}`, `add chain ${T} post { type filter hook postrouting priority -150; policy accept; }`);
  // the base chain lets go of maps that go; elements go before the chains they jump to
  else if (rewritePost) plan.nft.push(`flush chain ${T} post`);
  for (const [id, f] of before.filters) {
    const i = devOf(before, f.flow);
    if (kept(i) && after.filters.get(id) !== f) plan.nft.push(`delete element ${T} ${mapName(i, f.family, isExact(f))} { ${filterKey(f)} }`);
  }
  for (const i of gone) for (const fam of [4, 6] as const) for (const exact of [true, false]) plan.nft.push(`delete map ${T} ${mapName(i, fam, exact)}`);
  const changedDevs = new Set<TcInterface>();
  for (const [id, f] of before.flows) {
    const i = before.devs.get(f.dev)!;
    if (kept(i) && after.flows.has(id) && prior(id, devOf(after, id)) === f) continue;
    plan.nft.push(`delete chain ${T} flow_${id}`);
    if (!kept(i)) continue; // its class goes with the root qdisc
    plan.tc.push(`class del dev ${now(i).dev} classid ${classOf(id)}`);
    pcp(now(i), 0x10 + id, null);
    changedDevs.add(now(i));
  }
  for (const i of gone) {
    plan.nft.push(`delete chain ${T} demote_${i.slot}`);
    if (vanished(i)) continue;
    plan.tc.push(`qdisc del dev ${i.dev} root`);
    if (tags(i)) plan.dot1p.push({ op: 'detach', dev: i.dev });
  }
  for (const i of fresh) {
    const d = devInstall(after, i, T);
    plan.tc.push(...d.tc);
    plan.nft.push(...d.nft.filter((l) => !l.startsWith(`add rule ${T} post `)));
    if (tags(i)) plan.dot1p.push({ op: 'attach', dev: i.dev });
    pcp(i, 3, i.nonconforming.pcp);
  }
  /** a flow the kernel holds as it is (the same, or changed only in name with its interface) */
  const unchanged = (f: TcFlow, i: TcInterface) => {
    const g = prior(f.id, i), b = beforeBySlot.get(i.slot);
    return g !== undefined && b !== undefined && ((g === f && b === i) || sameFlow(g, f, b, i));
  };
  for (const i of after.devs.values()) {
    const b = beforeBySlot.get(i.slot);
    if (!b || b === i) continue;
    if (b.rate !== i.rate) {
      const link = bits(i.rate);
      plan.tc.push(`class change dev ${i.dev} parent ${HANDLE}: classid ${HANDLE}:1 htb rate ${link} ceil ${link} quantum ${MTU_FRAME}`);
      plan.tc.push(`class change dev ${i.dev} parent ${HANDLE}:1 classid ${DEMOTED_CLASS} htb rate ${bits(reservedRate(i))} ceil ${link} prio ${DEMOTED_PRIO} quantum ${MTU_FRAME}`);
      changedDevs.add(i);
    }
    if (b.nonconforming.dscp !== i.nonconforming.dscp) {
      const d = `${T} demote_${i.slot}`;
      plan.nft.push(`flush chain ${d}`, `add rule ${d} meta priority set ${DEMOTED_CLASS}`, `add rule ${d} ip dscp set ${i.nonconforming.dscp}`, `add rule ${d} ip6 dscp set ${i.nonconforming.dscp}`);
    }
    if (tags(b) !== tags(i)) {
      plan.dot1p.push(tags(i) ? { op: 'attach', dev: i.dev } : { op: 'detach', dev: i.dev });
      if (tags(i)) { // a fresh tagger: every class's PCP
        pcp(i, 3, i.nonconforming.pcp);
        for (const f of after.flows.values()) if (f.dev === i.dev && unchanged(f, i)) pcp(i, 0x10 + f.id, flowMarks(f, i).conforming.pcp);
      }
    } else if (b.nonconforming.pcp !== i.nonconforming.pcp) pcp(i, 3, i.nonconforming.pcp);
  }
  for (const [id, f] of after.flows) {
    const i = after.devs.get(f.dev)!;
    if (unchanged(f, i)) continue;
    const g = prior(id, i);
    if (!g) {
      plan.tc.push(...flowClass(f, i, 'add'));
      plan.nft.push(`add chain ${T} flow_${id}`, ...flowChain(f, i, T));
    } else {
      plan.tc.push(...flowClass(f, i, 'change'));
      plan.nft.push(`flush chain ${T} flow_${id}`, ...flowChain(f, i, T));
    }
    pcp(i, 0x10 + id, flowMarks(f, i).conforming.pcp);
    changedDevs.add(i);
  }
  // the best-effort class keeps what the flows leave (a fresh interface was installed with it)
  for (const i of changedDevs) {
    if (fresh.includes(i)) continue;
    plan.tc.push(`class change dev ${i.dev} parent ${HANDLE}:1 classid ${BEST_EFFORT_CLASS} htb rate ${bits(bestEffortRate(after, i))} ceil ${bits(i.rate)} prio ${BEST_EFFORT_PRIO} quantum ${MTU_FRAME}`);
  }
  for (const [id, f] of after.filters) {
    const i = devOf(after, f.flow);
    if (before.filters.get(id) === f && !fresh.includes(i)) continue;
    plan.nft.push(`add element ${T} ${mapName(i, f.family, isExact(f))} { ${filterKey(f)} : goto flow_${f.flow} }`);
  }
  if (rewritePost) for (const i of after.devs.values()) plan.nft.push(...devInstall(after, i, T).nft.filter((l) => l.startsWith(`add rule ${T} post `)));
  for (const [i, entries] of vlan) plan.ip.push(...qosMap(i, entries));
  for (const [i, entries] of tagged) if (tags(i)) plan.dot1p.push({ op: 'map', dev: i.dev, entries });
  return plan;
}

/** Whether the tagger runs on an interface (a VLAN device tags by itself). */
const tags = (i: TcInterface) => i.dot1p && !i.vlan;

/** Whether the kernel holds b's flow as a's: same class, chain and marks. */
function sameFlow(a: TcFlow, b: TcFlow, ia: TcInterface, ib: TcInterface): boolean {
  const x = flowMarks(a, ia), y = flowMarks(b, ib);
  return a.mode === b.mode && kernelRate(a) === kernelRate(b) && kernelBucket(a) === kernelBucket(b) && a.spec.Latency === b.spec.Latency
    && a.spec.PeakBandwidth === b.spec.PeakBandwidth && policer(a).pps === policer(b).pps && policer(a).burst === policer(b).burst && x.prio === y.prio && x.conforming.dscp === y.conforming.dscp && x.conforming.pcp === y.conforming.pcp
    && ia.slot === ib.slot && ia.rate === ib.rate;
}

/** The plan's text as `qos tc plan` prints it: the tc batch, the nft transaction, the ip commands. */
export function planText(p: TcPlan): string {
  const out: string[] = [];
  if (p.tc.length) out.push('# tc -batch', ...p.tc);
  if (p.nft.length) out.push('# nft -f', ...p.nft);
  if (p.ip.length) out.push('# ip', ...p.ip.map((a) => `ip ${a.join(' ')}`));
  if (p.dot1p.length) {
    out.push('# 802.1p tagger (bpf/dot1p.bpf.c): tc, then bpftool on the map of the program attached to the interface');
    for (const s of p.dot1p) {
      if (s.op === 'map') for (const [k, v] of s.entries) out.push(v === null ? `bpftool map delete id <${s.dev}'s qosd_pcp> key ${le32(k)}` : `bpftool map update id <${s.dev}'s qosd_pcp> key ${le32(k)} value ${le32(v)}`);
      else if (s.op === 'attach') out.push(...dot1pAttach(s.dev).map((a) => `tc ${a.join(' ')}`));
      else out.push(`tc ${dot1pDetach(s.dev).join(' ')}`);
    }
  }
  return out.length ? out.join('\n') + '\n' : '# nothing to change\n';
}

/** A 32-bit number as bpftool takes a key or value: its four bytes, host (little-endian) order. */
export function le32(v: number): string {
  return [0, 8, 16, 24].map((s) => String((v >>> s) & 255)).join(' ');
}
