/* Host traffic control as seed 003's traffic control API has it: flows on an interface, each
 * with a FLOWSPEC (seed 002), a mode (shape, borrow, discard) and marks; filters attaching
 * packets to a flow by 5-tuple with prefixes and ranges. This file is the data and its checks
 * (pure); plan.ts turns it into tc and nft text, control.ts keeps it and applies it.
 * docs/traffic-control.md. */

import { isIPv4, isIPv6 } from 'node:net';
import { QosError } from '../errors.js';
import type { FlowSpec, ServiceType } from '../flowspec/model.js';
import { actualTokenRate, layer3Overhead, type Framing } from '../flowspec/overhead.js';
import { parseCidr } from '../policy/net.js';

export type TcMode = 'shape' | 'borrow' | 'discard';
export const MODES: readonly TcMode[] = ['shape', 'borrow', 'discard'];

/** A mark: the DS field's DSCP and the 802.1p user priority (PCP). */
export interface Mark { dscp: number; pcp: number }

/** What a service type gets by default (seed 003, "Scheduling" and "Marking"): a mode, a
 * sequencing priority (HTB prio: 0 is served first) and the conforming mark. The seed prints
 * the DSCPs in hex: 0x30 = 48 (CS6), 0x28 = 40 (CS5), 0x18 = 24 (CS3). */
export interface ServiceDefault { mode: TcMode; prio: number; mark: Mark }
export const SERVICE_DEFAULTS: Readonly<Record<ServiceType, ServiceDefault>> = {
  NetworkControl: { mode: 'borrow', prio: 0, mark: { dscp: 48, pcp: 7 } },
  Guaranteed: { mode: 'shape', prio: 1, mark: { dscp: 40, pcp: 5 } },
  ControlledLoad: { mode: 'borrow', prio: 2, mark: { dscp: 24, pcp: 3 } },
  Qualitative: { mode: 'borrow', prio: 3, mark: { dscp: 0, pcp: 0 } },
  BestEffort: { mode: 'borrow', prio: 4, mark: { dscp: 0, pcp: 0 } },
  NotSpecified: { mode: 'borrow', prio: 4, mark: { dscp: 0, pcp: 0 } },
  NoTraffic: { mode: 'borrow', prio: 4, mark: { dscp: 0, pcp: 0 } },
};
/** The HTB prio of the interface's best-effort (unfiltered) traffic, and of demoted packets:
 * below every service (seed 003, note 2: "demoted in priority to a level lower than that of
 * best-effort traffic"). */
export const BEST_EFFORT_PRIO = 4;
export const DEMOTED_PRIO = 7;
/** Non-conforming packets by default: CS1 (RFC 3662's lower effort) and 802.1p 1 (background,
 * below 0 in IEEE 802.1Q's order): both below best effort. */
export const DEFAULT_NONCONFORMING: Mark = { dscp: 8, pcp: 1 };

/** An interface under traffic control: its rate (a veth has none worth using), and the marks
 * it gives conforming packets by service type and non-conforming packets (seed 003: "defined
 * on a per-interface basis ... both for conforming and non-conforming packets"). */
export interface TcInterface {
  dev: string;
  /** the link rate, bytes/s: the root class's rate and ceiling */
  rate: number;
  /** conforming marks overriding SERVICE_DEFAULTS, by service type */
  marks: Partial<Record<ServiceType, Mark>>;
  nonconforming: Mark;
  /** its number among the interfaces under control: names its maps (x4_N...) and demote chain */
  slot: number;
  /** a VLAN device: 802.1p is written in its tag, from the packet's priority (egress-qos-map) */
  vlan: boolean;
  /** on another device, 802.1p goes in a priority tag (VLAN id 0) a BPF program pushes: only
   * when asked (`--dot1p on`), since it changes every frame of the flows */
  dot1p: boolean;
  /** the kernel's index of the device it is installed on, when known: a rename (same index)
   * moves the configuration, a device of this name with another index is a new one */
  ifindex?: number;
  /** not in the kernel: the interface went (or came back with a root qdisc not ours); its
   * configuration, flows and filters are kept and installed again when an interface of this
   * name appears (docs/traffic-control.md, "Interfaces that come and go") */
  absent?: { since: string; why: string };
}

export interface TcFlow {
  id: number;
  dev: string;
  name: string | null;
  spec: FlowSpec;
  mode: TcMode;
  /** the headers counted with each packet for the actual token rate (flowspec/overhead.ts) */
  framing: Framing;
  /** per-flow overrides of the conforming marks (seed 003's DCLASS and TCLASS) */
  dscp: number | null;
  pcp: number | null;
  /** who made it: an administrator, the policy for a socket (pid, fd), or an RSVP reservation (its key) */
  owner: { kind: 'admin' } | { kind: 'policy'; pid: number; fd: number; rule: string } | { kind: 'rsvp'; reservation: string };
}

/** One dimension of a filter: an inclusive range. Addresses are bigints (v4 as 32 bits). */
export interface Span<T> { lo: T; hi: T }

export interface TcFilter {
  id: number;
  flow: number;
  family: 4 | 6;
  src: Span<bigint>;
  dst: Span<bigint>;
  proto: Span<number>;
  sport: Span<number>;
  dport: Span<number>;
  /** as given, for listing */
  text: { src: string; dst: string; proto: string; sport: string; dport: string };
}

/** Everything under control: what plan.ts compares and control.ts keeps. */
export interface TcState {
  devs: ReadonlyMap<string, TcInterface>;
  flows: ReadonlyMap<number, TcFlow>;
  filters: ReadonlyMap<number, TcFilter>;
  /** the nftables table (family inet) it lives in: each daemon has its own (default qosd_tc) */
  table?: string;
}
export const emptyState = (table?: string): TcState => ({ devs: new Map(), flows: new Map(), filters: new Map(), ...(table ? { table } : {}) });

/** Ids of flows and filters, and minor class numbers: a flow's HTB class is HANDLE:(0x10+id). */
export const MAX_FLOW_ID = 0xffff - 0x10;
export const MAX_FILTER_ID = 1_000_000;
export const MAX_FLOWS = 20_000;
export const MAX_FILTERS = 100_000;

/** The rate the kernel enforces for a flow, bytes/s: the actual token rate with each packet's
 * headers when MinimumPolicedSize is given (seed 002), else TokenRate. */
export function kernelRate(f: Pick<TcFlow, 'spec' | 'framing'>): number {
  return actualTokenRate(f.spec, f.framing) ?? f.spec.TokenRate!;
}

/** The token bucket the kernel uses, bytes: TokenBucketSize, at least one full-size frame
 * (HTB and nft cannot pass a packet bigger than their bucket), 1514 bytes when not given. */
export function kernelBucket(f: Pick<TcFlow, 'spec'>): number {
  return Math.max(f.spec.TokenBucketSize ?? 0, 1514, (f.spec.MaxSduSize ?? 0) + 60);
}

/** The policer's token bucket, in packets (`nft limit rate over N/second burst K packets`):
 * nftables' byte-mode limit always holds a second of its rate on top of its burst (its bucket
 * is rate x 1 s + burst, net/netfilter/nft_limit.c), far more than a FLOWSPEC's bucket, so the
 * bucket is counted in packets of the flow's size: MaxSduSize (the largest) or else
 * MinimumPolicedSize, with the headers, or a full 1500-byte packet. Exact for packets of that
 * size; a smaller packet costs a whole packet's tokens, as MinimumPolicedSize means.
 * docs/traffic-control.md, "Conformance". */
export function policer(f: Pick<TcFlow, 'spec' | 'framing'>): { size: number; pps: number; burst: number } {
  const size = f.spec.MaxSduSize !== null ? f.spec.MaxSduSize + layer3Overhead(f.framing)
    : f.spec.MinimumPolicedSize !== null ? f.spec.MinimumPolicedSize + layer3Overhead(f.framing) : 1500;
  return { size, pps: Math.max(1, Math.round(kernelRate(f) / size)), burst: Math.max(1, Math.floor(kernelBucket(f) / size)) };
}

/** What a flow's packets get: its mode's sequencing priority and its conforming mark. */
export function flowMarks(f: TcFlow, i: TcInterface): { prio: number; conforming: Mark; nonconforming: Mark } {
  const d = SERVICE_DEFAULTS[f.spec.ServiceType];
  const m = i.marks[f.spec.ServiceType] ?? d.mark;
  return { prio: d.prio, conforming: { dscp: f.dscp ?? m.dscp, pcp: f.pcp ?? m.pcp }, nonconforming: i.nonconforming };
}

/** The problems of a flow a user asked for (beyond the FLOWSPEC's own rules, parse.ts). */
export function flowProblems(f: Pick<TcFlow, 'spec' | 'mode' | 'dscp' | 'pcp'>): string[] {
  const p: string[] = [];
  if (f.spec.TokenRate === null) p.push('a flow needs a TokenRate: the rate the kernel shapes, guarantees or polices');
  else if (f.spec.TokenRate < 1000) p.push(`TokenRate ${f.spec.TokenRate} bytes/s is below the kernel's resolution; give at least 1000 bytes/s (8kbit)`);
  if (f.spec.ServiceType === 'NoTraffic') p.push('ServiceType NoTraffic sends nothing: delete the flow instead');
  if (!MODES.includes(f.mode)) p.push(`mode must be ${MODES.join(', ')}, not "${f.mode}"`);
  if (f.dscp !== null && !(Number.isInteger(f.dscp) && f.dscp >= 0 && f.dscp <= 63)) p.push(`dscp must be 0-63, not ${f.dscp}`);
  if (f.pcp !== null && !(Number.isInteger(f.pcp) && f.pcp >= 0 && f.pcp <= 7)) p.push(`pcp (802.1p) must be 0-7, not ${f.pcp}`);
  return p;
}

/** A mark as written: { dscp, pcp } with dscp 0-63 and pcp 0-7. */
export function checkMark(m: unknown, what: string): Mark {
  const o = m as Mark;
  if (!o || typeof o !== 'object' || !Number.isInteger(o.dscp) || o.dscp < 0 || o.dscp > 63 || !Number.isInteger(o.pcp) || o.pcp < 0 || o.pcp > 7) {
    throw new QosError('QOS_ERR_USAGE', `${what} is { dscp: 0-63, pcp: 0-7 }, not ${JSON.stringify(m)}`);
  }
  return { dscp: o.dscp, pcp: o.pcp };
}

/** Whether dev is an interface name the kernel could hold (IFNAMSIZ, no '/', ':' or blanks):
 * it goes into tc and nft text. */
export function isDevName(dev: unknown): dev is string {
  return typeof dev === 'string' && /^[A-Za-z0-9_.@-]{1,15}$/.test(dev) && dev !== '.' && dev !== '..';
}

export function checkDev(dev: unknown): string {
  if (!isDevName(dev)) {
    throw new QosError('QOS_ERR_USAGE', `an interface name is 1-15 letters, digits, '_', '.', '@' or '-', not ${JSON.stringify(dev)}`);
  }
  return dev;
}

const PROTOS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, sctp: 132, udplite: 136 };
const ANY = new Set(['', '*', 'any']);

/** An address dimension: any (`*`), an address, a CIDR prefix, or address/dotted-mask with a
 * contiguous mask (nftables matches prefixes and ranges, not arbitrary masks). */
function addrSpan(text: string, family: 4 | 6, what: string): Span<bigint> {
  const bits = family === 4 ? 32 : 128;
  const all = (1n << BigInt(bits)) - 1n;
  if (ANY.has(text)) return { lo: 0n, hi: all };
  let spec = text;
  const m = /^([^/]+)\/(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (m && family === 4) {
    const mask = m[2]!.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
    const len = mask.toString(2).replace(/0+$/, '').length;
    if (!/^1*0*$/.test(mask.toString(2).padStart(32, '0')) || m[2]!.split('.').some((o) => Number(o) > 255)) {
      throw new QosError('QOS_ERR_USAGE', `${what} ${text}: the mask must be contiguous (a prefix); nftables matches prefixes and ranges`);
    }
    spec = `${m[1]}/${mask === 0n ? 0 : len}`;
  }
  const host = spec.split('/')[0]!;
  const c = parseCidr(spec);
  if (!c || (family === 4 ? !isIPv4(host) : !isIPv6(host))) throw new QosError('QOS_ERR_USAGE', `${what} ${JSON.stringify(text)}: not an IPv${family} address or prefix (a.b.c.d[/n], a.b.c.d/m.m.m.m${family === 6 ? ', or v6/n' : ''}), or * for any`);
  let v = 0n;
  for (const w of c.addr) v = (v << 32n) | BigInt(w);
  v &= all;
  const len = family === 4 ? c.bits - 96 : c.bits;
  const hostBits = BigInt(bits - len);
  const lo = (v >> hostBits) << hostBits;
  return { lo, hi: lo | ((1n << hostBits) - 1n) };
}

function portSpan(text: string, what: string): Span<number> {
  if (ANY.has(text)) return { lo: 0, hi: 65535 };
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const lo = m ? Number(m[1]) : NaN, hi = m?.[2] !== undefined ? Number(m[2]) : lo;
  if (!m || !(lo <= hi && hi <= 65535)) throw new QosError('QOS_ERR_USAGE', `${what} ${JSON.stringify(text)}: a port 0-65535, a range a-b, or * for any`);
  return { lo, hi };
}

function protoSpan(text: string): Span<number> {
  if (ANY.has(text)) return { lo: 0, hi: 255 };
  const n = PROTOS[text.toLowerCase()] ?? (/^\d{1,3}$/.test(text) ? Number(text) : NaN);
  if (!(n >= 0 && n <= 255)) throw new QosError('QOS_ERR_USAGE', `proto ${JSON.stringify(text)}: ${Object.keys(PROTOS).join(', ')}, a number 0-255, or * for any`);
  return { lo: n, hi: n };
}

/** The fields of a filter as a user writes them (CLI, API); absent means any. */
export interface FilterInput { flow: unknown; family?: unknown; src?: unknown; dst?: unknown; proto?: unknown; sport?: unknown; dport?: unknown }

/** A filter from what a user wrote, or QOS_ERR_USAGE naming the field. The family is given,
 * or that of the addresses (IPv4 when neither says). Ports need TCP, UDP, SCTP or UDP-Lite
 * (or any protocol, when they match any port). */
export function parseFilter(input: FilterInput, id: number): TcFilter {
  const str = (v: unknown, what: string): string => {
    if (v === undefined || v === null) return '*';
    if (typeof v === 'number') return String(v);
    if (typeof v !== 'string') throw new QosError('QOS_ERR_USAGE', `${what} must be text or a number, not ${JSON.stringify(v)}`);
    return v.trim();
  };
  const flow = input.flow;
  if (!Number.isInteger(flow) || (flow as number) < 1) throw new QosError('QOS_ERR_USAGE', `a filter names its flow by number (flow: N), not ${JSON.stringify(flow)}`);
  const src = str(input.src, 'src'), dst = str(input.dst, 'dst'), proto = str(input.proto, 'proto'), sport = str(input.sport, 'sport'), dport = str(input.dport, 'dport');
  let family: 4 | 6;
  if (input.family === undefined || input.family === null) family = [src, dst].some((a) => a.includes(':')) ? 6 : 4;
  else if (input.family === 4 || input.family === 'inet' || input.family === '4' || input.family === 'ipv4') family = 4;
  else if (input.family === 6 || input.family === 'inet6' || input.family === '6' || input.family === 'ipv6') family = 6;
  else throw new QosError('QOS_ERR_USAGE', `family must be 4 (inet) or 6 (inet6), not ${JSON.stringify(input.family)}`);
  const f: TcFilter = {
    id, flow: flow as number, family,
    src: addrSpan(src, family, 'src'), dst: addrSpan(dst, family, 'dst'),
    proto: protoSpan(proto), sport: portSpan(sport, 'sport'), dport: portSpan(dport, 'dport'),
    text: { src, dst, proto, sport, dport },
  };
  const anyPort = (s: Span<number>) => s.lo === 0 && s.hi === 65535;
  const ported = f.proto.lo === f.proto.hi && [6, 17, 132, 136].includes(f.proto.lo);
  if ((!anyPort(f.sport) || !anyPort(f.dport)) && !ported) throw new QosError('QOS_ERR_USAGE', 'ports need proto tcp, udp, sctp or udplite: other packets have no ports');
  return f;
}

/** A filter names every field exactly: it goes in the exact (hash) map, looked up before the
 * interval map, so it takes precedence over any filter with wildcards. */
export function isExact(f: TcFilter): boolean {
  return f.src.lo === f.src.hi && f.dst.lo === f.dst.hi && f.proto.lo === f.proto.hi && f.sport.lo === f.sport.hi && f.dport.lo === f.dport.hi;
}

const meets = <T>(a: Span<T>, b: Span<T>) => a.lo <= b.hi && b.lo <= a.hi;

/** Whether some packet matches both filters. Filters with wildcards on one interface must not
 * (nftables' interval maps hold no overlapping elements, and which would win is unclear);
 * exact filters must not be equal. */
export function overlaps(a: TcFilter, b: TcFilter): boolean {
  return a.family === b.family && meets(a.src, b.src) && meets(a.dst, b.dst) && meets(a.proto, b.proto) && meets(a.sport, b.sport) && meets(a.dport, b.dport);
}
