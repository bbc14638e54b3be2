/* Which policy rules the eBPF path can enforce (docs/ebpf.md), and each as the kernel checks it:
 * slots (one per combination of its listed uids, gids, remote prefixes and ports), pure.
 *
 * The eBPF programs see, at a connect or an unconnected send: the executable file, the real
 * uid and gid, the family, socket type, protocol and the remote address and port. They do not
 * see the command line, the unit, the local end, the other socket calls (socket, bind, listen,
 * accept, setsockopt), and they only mark or refuse: host traffic control and reservations
 * need the agent's flow. A rule is the eBPF path's when it names an executable (`exe`) and
 * asks only for what they see; a rule without `exe` that they could check is put before the
 * executable rules it precedes (first match wins across them), but by itself is left to the
 * nftables table. */

import { constants } from 'node:os';
import { dscpValue } from '../policy/dscp.js';
import { parseCidr, parsePortSpec, type Cidr } from '../policy/net.js';
import { list, type MatchDoc, type PolicyDoc, type RuleDoc } from '../policy/schema.js';
import type { Names } from '../kernel/rules.js';

/** Slots one executable's entry holds (MAX_SLOTS in bpf/exe-mark.bpf.c). */
export const MAX_SLOTS = 8;

export const EV_CONNECT = 1, EV_SENDTO = 2;
export const F_UID = 1, F_GID = 2, F_NET = 4, F_TOS = 8, F_PRIO = 16, F_OVERRIDE = 32, F_DENY = 64, F_LIMIT = 128;

/** One combination of a rule's conditions, with its action: what a slot of the map holds. */
export interface Slot {
  /** the rule's index in the policy */
  rule: number;
  events: number;
  families: number; // 1 inet, 2 inet6; 0 any
  types: number;    // 1 stream, 2 dgram; 0 any
  protos: number;   // 1 tcp, 2 udp; 0 any
  flags: number;
  uid: number;
  gid: number;
  portLo: number;
  portHi: number;
  /** the whole TOS byte (DSCP << 2) */
  tos: number;
  prio: number;
  errno: number;
  /** with F_LIMIT: the per-application limit's id (ebpf/limits.ts) */
  limit: number;
  /** with F_NET: the remote prefix, as four 32-bit words in network order (IPv4: the first) */
  net: number[];
  mask: number[];
}

/** A policy rule as the eBPF path sees it: its slots, and the exe patterns it applies to
 * (null: every executable, a rule without `exe`). */
export interface EbpfRule { index: number; name: string; exe: string[] | null; slots: Slot[] }

export type EbpfPlacement = { rule: EbpfRule; reason?: undefined } | { rule?: undefined; reason: string };

const UNSEEN: [keyof MatchDoc, string][] = [
  ['cmdline', 'the command line'], ['unit', 'the unit'], ['local', 'the local address'], ['local_port', 'the local port'],
];

/** The rule as the eBPF programs check it, or why they cannot; limitId gives a `limit`'s id
 * (0: none yet, the slot does not limit). */
export function policyRuleInEbpf(r: RuleDoc, index: number, names: Names, limitId: (key: string) => number = () => 0): EbpfPlacement {
  const m = r.match, a = r.action;
  for (const [k, what] of UNSEEN) if (m[k] !== undefined) return { reason: `the eBPF programs do not see ${what} (${k})` };
  if (a.service !== undefined || a.template !== undefined || a.flowspec !== undefined || a.mode !== undefined || a.reserve !== undefined)
    return { reason: 'host traffic control and reservations need the agent\'s flow' };
  const events = list(m.event);
  let ev = EV_CONNECT | EV_SENDTO;
  if (events) {
    ev = (events.includes('connect') ? EV_CONNECT : 0) | (events.includes('sendto') ? EV_SENDTO : 0);
    if (!ev) return { reason: `the eBPF programs see connect and sendto, not ${events.join(', ')}` };
  }
  const types = list(m.type);
  if (types?.includes('raw')) return { reason: 'the eBPF programs see stream and datagram sockets, not raw ones' };
  const uids: (number | undefined)[] = [...(list(m.uid) ?? [])];
  for (const u of list(m.user) ?? []) {
    const n = names.users.get(u);
    if (n === undefined) return { reason: `no user ${u} on this host` };
    uids.push(n);
  }
  const gids: (number | undefined)[] = [...(list(m.gid) ?? [])];
  for (const g of list(m.group) ?? []) {
    const n = names.groups.get(g);
    if (n === undefined) return { reason: `no group ${g} on this host` };
    gids.push(n);
  }
  // uid and user (gid and group) are one condition each in the engine only if both hold: a
  // rule naming both is rare; the kernel takes them as one list of either
  if (m.uid !== undefined && m.user !== undefined) return { reason: 'a rule with both uid and user is the agent\'s' };
  if (m.gid !== undefined && m.group !== undefined) return { reason: 'a rule with both gid and group is the agent\'s' };
  const families = list(m.family);
  const famBits = families ? (families.includes('inet') ? 1 : 0) | (families.includes('inet6') ? 2 : 0) : 0;
  const nets: (Cidr | undefined)[] = list(m.remote)?.map((c) => parseCidr(c)!) ?? [undefined];
  const ports = list(m.remote_port)?.map((p) => parsePortSpec(p)!) ?? [{ lo: 0, hi: 65535 }];
  const act = actionSlot(r, r.action.limit ? limitId(r.name ?? `rule-${index + 1}`) : 0);
  const slots: Slot[] = [];
  const combos = (uids.length || 1) * (gids.length || 1) * nets.length * ports.length;
  if (combos > MAX_SLOTS) return { reason: `its lists make ${combos} combinations; an eBPF entry holds ${MAX_SLOTS}` };
  for (const uid of uids.length ? uids : [undefined]) for (const gid of gids.length ? gids : [undefined]) for (const net of nets) for (const port of ports) {
    const base: Slot = {
      rule: index, events: ev, families: famBits,
      types: list(m.type)?.reduce((b, t) => b | (t === 'stream' ? 1 : 2), 0) ?? 0,
      protos: list(m.proto)?.reduce((b, p) => b | (p === 'tcp' ? 1 : 2), 0) ?? 0,
      flags: act.flags | (uid !== undefined ? F_UID : 0) | (gid !== undefined ? F_GID : 0),
      uid: uid ?? 0, gid: gid ?? 0, portLo: port.lo, portHi: port.hi, tos: act.tos, prio: act.prio, errno: act.errno, limit: act.limit,
      net: [0, 0, 0, 0], mask: [0, 0, 0, 0],
    };
    if (!net) { slots.push(base); continue; }
    const v4 = net.bits >= 96 && net.addr[0] === 0 && net.addr[1] === 0 && net.addr[2] === 0xffff && !net.text.includes(':');
    if (v4) {
      // IPv4: the connect4 programs' address, and the v4-mapped form a dual-stack socket's
      // connect6 sees (the agent's engine matches both)
      if (famBits === 0 || famBits & 1) slots.push({ ...base, families: 1, flags: base.flags | F_NET, net: [net.addr[3]! & maskWord(net.bits - 96, 0), 0, 0, 0].map(htonl), mask: [maskWord(net.bits - 96, 0), 0, 0, 0].map(htonl) });
      if (famBits === 0 || famBits & 2) slots.push({ ...base, families: 2, flags: base.flags | F_NET, ...prefix6(net) });
    } else if (famBits === 0 || famBits & 2) slots.push({ ...base, families: 2, flags: base.flags | F_NET, ...prefix6(net) });
  }
  if (slots.length > MAX_SLOTS) return { reason: `its lists make ${slots.length} combinations; an eBPF entry holds ${MAX_SLOTS}` };
  return { rule: { index, name: r.name ?? `rule-${index + 1}`, exe: list(m.exe) ?? null, slots } };
}

/** The action's part of a slot: mark (TOS, priority, override), limit, refuse (errno) or leave
 * alone. */
function actionSlot(r: RuleDoc, limit: number): { flags: number; tos: number; prio: number; errno: number; limit: number } {
  const a = r.action;
  if (a.deny !== undefined) {
    const errno = (constants.errno as Record<string, number>)[a.deny];
    return { flags: F_DENY, tos: 0, prio: 0, errno: errno ?? constants.errno.EPERM, limit: 0 };
  }
  if (a.none) return { flags: 0, tos: 0, prio: 0, errno: 0, limit: 0 };
  let flags = limit ? F_LIMIT : 0, tos = 0, prio = 0;
  if (a.dscp !== undefined) { flags |= F_TOS; tos = dscpValue(a.dscp)! << 2; }
  if (a.tos !== undefined) { flags |= F_TOS; tos = a.tos; }
  if (a.priority !== undefined) { flags |= F_PRIO; prio = a.priority; }
  if (a.override) flags |= F_OVERRIDE;
  return { flags, tos, prio, errno: 0, limit };
}

function maskWord(bits: number, word: number): number {
  const b = Math.max(0, Math.min(32, bits - word * 32));
  return b === 0 ? 0 : (0xffffffff << (32 - b)) >>> 0;
}

/** A 32-bit word as the kernel stores it in network order, read back as a little-endian word
 * (the slot's words are written little-endian: encode.ts). */
function htonl(w: number): number {
  return (((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24)) >>> 0;
}

function prefix6(c: Cidr): { net: number[]; mask: number[] } {
  const mask = [0, 1, 2, 3].map((i) => maskWord(c.bits, i));
  return { net: mask.map((m, i) => htonl((c.addr[i]! & m) >>> 0)), mask: mask.map(htonl) };
}

/** Each policy rule's eBPF placement, in order. */
export function ebpfPlacements(doc: PolicyDoc, names: Names): EbpfPlacement[] {
  return doc.rules.map((r, i) => {
    const p = policyRuleInEbpf(r, i, names);
    if (p.rule && p.rule.exe === null) return { reason: 'it names no executable (exe): the nftables table enforces it if it can; the eBPF path checks it only before the exe rules it precedes' };
    return p;
  });
}

/** The slots of one executable's entry: the eBPF rules that can match it, in the policy's
 * order (the exe rules whose patterns it matched, and the eBPF-checkable rules without exe
 * before the last of them), at most MAX_SLOTS; `cut`: the rules left out past that. */
export function entrySlots(rules: readonly EbpfRule[], matched: ReadonlySet<number>): { slots: Slot[]; cut: string[] } {
  let last = -1;
  rules.forEach((r, i) => { if (r.exe !== null && matched.has(r.index)) last = i; });
  const slots: Slot[] = [];
  const cut: string[] = [];
  for (let i = 0; i <= last; i++) {
    const r = rules[i]!;
    if (r.exe !== null && !matched.has(r.index)) continue;
    // past the first rule that does not fit, none is checked: a later one would decide a call
    // the one left out comes before
    if (cut.length || slots.length + r.slots.length > MAX_SLOTS) { cut.push(r.name); continue; }
    slots.push(...r.slots);
  }
  return { slots, cut };
}

/** What `qos policy check` says of each rule's eBPF path: whether the programs check it, the
 * files its exe patterns name now (and what stands out about them), or why not. */
export function ebpfEnforcement(doc: PolicyDoc, names: Names, resolve: (patterns: string[]) => Map<string, { files: { path: string }[]; notes: string[] }>): { ebpf: boolean; ebpf_reason?: string; ebpf_files?: string[]; ebpf_notes?: string[] }[] {
  const placements = ebpfPlacements(doc, names);
  // every rule's patterns resolved at once: a pattern without a directory walks the program
  // directories and the running processes, once for all the rules that have one
  const resolved = resolve([...new Set(placements.flatMap((p) => p.rule?.exe ?? []))]);
  return placements.map((p) => {
    if (!p.rule) return { ebpf: false, ebpf_reason: p.reason };
    const r = [...new Set(p.rule.exe!)].map((pattern) => resolved.get(pattern)!);
    const files = [...new Set(r.flatMap((x) => x.files.map((f) => f.path)))].sort();
    return { ebpf: true, ebpf_files: files, ebpf_notes: r.flatMap((x) => x.notes) };
  });
}
