/* Kernel marking rules (seed 004): ordered, first-match rules on what the kernel sees of an
 * outgoing packet — addresses with prefixes, protocol, ports or port ranges, the sending
 * socket's uid/gid — each setting the DS field (and optionally the priority). They cover
 * what the agent cannot reach: static and Go binaries, setuid programs, programs that clear
 * their environment, io_uring. A rule without a match is the seed's default rule.
 *
 * This file holds the format (the same vocabulary as policy rules, restricted to what the
 * kernel can match), its checks, and the normal form (atoms.ts) the layering (layers.ts) and
 * every backend work on: every rule becomes a list of atoms, one per combination of its
 * listed values, each a box of ranges (addresses, protocol, ports, ids). */

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { idEntries } from '../id-names.js';
import { dscpValue } from '../policy/dscp.js';
import { parseCidr, parsePortSpec } from '../policy/net.js';
import { cidr, dscpField, id, list, oneOrMany, port, ruleName, type RuleDoc } from '../policy/schema.js';
import type { AddrRange, Atom, AtomCheck, KAction, Range } from './atoms.js';

export type { AddrRange, Atom, AtomCheck, KAction, KRule, Range } from './atoms.js';

/** Protocols a kernel rule may name; a number 0-255 is accepted too. */
export const PROTOCOLS: Readonly<Record<string, number>> = Object.freeze({ tcp: 6, udp: 17, icmp: 1, icmpv6: 58, sctp: 132, udplite: 136 });
/** Protocols whose header starts with source and destination ports. */
const PORTED = new Set([6, 17, 132, 136]);
/** At most this many atoms (combinations of listed values) per rule. */
export const MAX_ATOMS_PER_RULE = 4096;
/** And in a whole rule set: 65,535 rules of up to four atoms each (a port rule for both
 * families and both protocols); more would cost seconds to check and far more to apply
 * (docs/kernel-rules.md, "Limits"). */
export const MAX_ATOMS_PER_SET = 262_144;

const protoField = z.union([z.enum(Object.keys(PROTOCOLS) as [string, ...string[]]), z.number().int().min(0).max(255)], {
  error: `expected a protocol (${Object.keys(PROTOCOLS).join(', ')}) or a number 0-255`,
});

export const KernelMatchSchema = z.strictObject({
  family: oneOrMany(z.enum(['inet', 'inet6']), 'inet or inet6').optional(),
  proto: oneOrMany(protoField, 'a protocol').optional(),
  remote: oneOrMany(cidr, 'an address or CIDR prefix, e.g. 192.0.2.0/24 or 2001:db8::/32').optional(),
  local: oneOrMany(cidr, 'an address or CIDR prefix').optional(),
  remote_port: oneOrMany(port, 'a port 0-65535 or a range "a-b"').optional(),
  local_port: oneOrMany(port, 'a port 0-65535 or a range "a-b"').optional(),
  uid: oneOrMany(id, 'a numeric uid').optional(),
  gid: oneOrMany(id, 'a numeric gid').optional(),
  user: oneOrMany(z.string().min(1), 'a user name').optional(),
  group: oneOrMany(z.string().min(1), 'a group name').optional(),
});

export const KernelActionSchema = z
  .strictObject({
    dscp: dscpField.optional(),
    tos: z.number().int().min(0).max(255).optional(),
    priority: z.number().int().min(0).max(7).optional(),
    override: z.boolean().optional(),
  })
  .superRefine((a, ctx) => {
    if (a.dscp === undefined && a.tos === undefined && a.priority === undefined) ctx.addIssue({ code: 'custom', message: 'a kernel rule sets dscp (or tos), priority, or both' });
    if (a.dscp !== undefined && a.tos !== undefined) ctx.addIssue({ code: 'custom', message: 'give dscp or tos, not both' });
  });

export const KernelRuleSchema = z.strictObject({
  name: ruleName.optional(),
  match: KernelMatchSchema.default({}),
  action: KernelActionSchema,
  /** false: kept in the set (its place, its name) but not in the kernel */
  enabled: z.boolean().optional(),
});

/** The portable rule-set file (`qos rules export`), prepared centrally and copied to many
 * machines like the seed's .REG files. */
export const RuleSetSchema = z.strictObject({
  qosd_rules: z.literal(1, { error: 'expected qosd_rules: 1 (the format version)' }),
  enabled: z.boolean().default(true),
  rules: z.array(KernelRuleSchema).default([]),
});

export type KernelRuleDoc = z.infer<typeof KernelRuleSchema>;
export type KernelMatchDoc = z.infer<typeof KernelMatchSchema>;
export type RuleSetDoc = z.infer<typeof RuleSetSchema>;

const ANY_PORT: Range = [0, 65535];
const ANY_PROTO: Range = [0, 255];
const ANY_ID: Range = [0, 2 ** 32 - 1];
const ANY4: AddrRange = { lo: '00000000', hi: 'ffffffff', addr: '0.0.0.0', len: 0 };
const ANY6: AddrRange = { lo: '0'.repeat(32), hi: 'f'.repeat(32), addr: '::', len: 0 };

function hex(w: number): string { return (w >>> 0).toString(16).padStart(8, '0'); }

/** A CIDR as a family and an address range. */
export function addrRange(text: string): { fam: 4 | 6; range: AddrRange } {
  const c = parseCidr(text)!;
  const v4 = c.addr[0] === 0 && c.addr[1] === 0 && c.addr[2] === 0xffff && c.bits >= 96 && !text.includes(':');
  const words = v4 ? [c.addr[3]!] : [...c.addr];
  let bits = v4 ? c.bits - 96 : c.bits;
  const lo: number[] = [], hi: number[] = [];
  for (const w of words) {
    const mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    lo.push((w & mask) >>> 0);
    hi.push((w | ~mask) >>> 0);
    bits -= 32;
  }
  const len = v4 ? c.bits - 96 : c.bits;
  const addr = v4 ? lo.map((w) => [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255].join('.'))[0]! : v6text(lo);
  return { fam: v4 ? 4 : 6, range: { lo: lo.map(hex).join(''), hi: hi.map(hex).join(''), addr, len } };
}

/** Four 32-bit words as an IPv6 address (uncompressed groups; nftables accepts it). */
function v6text(w: number[]): string {
  return w.flatMap((x) => [(x >>> 16).toString(16), (x & 0xffff).toString(16)]).join(':');
}

/** Names from /etc/passwd or /etc/group to numeric ids. */
function nameTable(file: '/etc/passwd' | '/etc/group'): Map<string, number> {
  const m = new Map<string, number>();
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return m; }
  for (const [name, id] of idEntries(text)) if (!m.has(name)) m.set(name, id);
  return m;
}

export interface Names { users: Map<string, number>; groups: Map<string, number> }
export const systemNames = (): Names => ({ users: nameTable('/etc/passwd'), groups: nameTable('/etc/group') });

/** Checks that need more than the schema: names that exist, families that agree, ports on
 * protocols that have them, a bounded number of atoms, and what the enforcement backend
 * cannot express (`expressible`, e.g. nftables' key width). Paths are relative to the rule. */
export function ruleProblems(r: KernelRuleDoc, names: Names, expressible: AtomCheck): { path: PropertyKey[]; message: string }[] {
  return checkRuleAtoms(r, names, expressible).problems;
}

/** A rule's problems and, when it has none, its atoms (computed once for both). */
export function checkRuleAtoms(r: KernelRuleDoc, names: Names, expressible: AtomCheck): { problems: { path: PropertyKey[]; message: string }[]; atoms: Atom[] } {
  const out: { path: PropertyKey[]; message: string }[] = [];
  let atoms: Atom[] = [];
  const m = r.match;
  for (const [key, table] of [['user', names.users], ['group', names.groups]] as const) {
    (list(m[key]) ?? []).forEach((n, i) => {
      if (!table.has(n)) out.push({ path: ['match', key, ...(Array.isArray(m[key]) ? [i] : [])], message: `no ${key} "${n}" on this machine (${key === 'user' ? '/etc/passwd' : '/etc/group'})` });
    });
  }
  if (m.uid !== undefined && m.user !== undefined) out.push({ path: ['match', 'user'], message: 'give uid or user, not both' });
  if (m.gid !== undefined && m.group !== undefined) out.push({ path: ['match', 'group'], message: 'give gid or group, not both' });
  const fams = new Set((list(m.family) ?? []).map((f) => (f === 'inet' ? 4 : 6)));
  for (const key of ['remote', 'local'] as const) {
    (list(m[key]) ?? []).forEach((c, i) => {
      const f = addrRange(c).fam;
      if (fams.size && !fams.has(f)) out.push({ path: ['match', key, ...(Array.isArray(m[key]) ? [i] : [])], message: `${c} is IPv${f} but the rule says family ${[...fams].map((x) => (x === 4 ? 'inet' : 'inet6')).join(', ')}` });
    });
  }
  const rf = new Set((list(m.remote) ?? []).map((c) => addrRange(c).fam));
  const lf = new Set((list(m.local) ?? []).map((c) => addrRange(c).fam));
  if (rf.size && lf.size && ![...rf].some((f) => lf.has(f))) out.push({ path: ['match', 'local'], message: 'local and remote addresses are of different families: no packet can match' });
  if ((m.remote_port !== undefined || m.local_port !== undefined) && m.proto !== undefined) {
    const bad = (list(m.proto) ?? []).filter((p) => !PORTED.has(protoNumber(p)));
    if (bad.length) out.push({ path: ['match', 'proto'], message: `ports need a protocol that has them (tcp, udp, sctp, udplite), not ${bad.join(', ')}` });
  }
  if (!out.length) {
    const n = atomCount(m);
    if (n > MAX_ATOMS_PER_RULE) out.push({ path: ['match'], message: `the lists in this match make ${n} combinations; at most ${MAX_ATOMS_PER_RULE} per rule` });
    else {
      atoms = ruleAtoms(m, names);
      for (const message of expressible(atoms)) out.push({ path: ['match'], message });
    }
  }
  return { problems: out, atoms: out.length ? [] : atoms };
}

function protoNumber(p: string | number): number { return typeof p === 'number' ? p : PROTOCOLS[p]!; }

/** How many atoms a match makes, at most (before families are told apart). */
export function atomCount(m: KernelMatchDoc): number {
  const n = (v: unknown) => (v === undefined ? 1 : Array.isArray(v) ? v.length : 1);
  const protos = m.proto === undefined && (m.remote_port !== undefined || m.local_port !== undefined) ? 2 : n(m.proto);
  return n(m.remote) * n(m.local) * protos * n(m.remote_port) * n(m.local_port) * n(m.uid ?? m.user) * n(m.gid ?? m.group);
}

/** The action in kernel terms: tos keeps its DSCP bits (the kernel leaves ECN alone). */
export function kernelAction(a: z.infer<typeof KernelActionSchema>): KAction {
  const k: KAction = { override: a.override === true };
  if (a.dscp !== undefined) k.dscp = dscpValue(a.dscp)!;
  if (a.tos !== undefined) k.dscp = a.tos >> 2;
  if (a.priority !== undefined) k.priority = a.priority;
  return k;
}

/** The atoms of a checked rule (ruleProblems empty). */
export function ruleAtoms(m: KernelMatchDoc, names: Names): Atom[] {
  const fams = list(m.family)?.map((f) => (f === 'inet' ? 4 : 6) as 4 | 6);
  const remotes = list(m.remote)?.map(addrRange);
  const locals = list(m.local)?.map(addrRange);
  const ports = (v: (string | number)[] | undefined): Range[] => (v ?? [undefined]).map((p) => { if (p === undefined) return ANY_PORT; const r = parsePortSpec(p)!; return [r.lo, r.hi] as const; });
  const sports = ports(list(m.local_port)), dports = ports(list(m.remote_port));
  const hasPorts = m.local_port !== undefined || m.remote_port !== undefined;
  const protos: Range[] = m.proto !== undefined ? list(m.proto)!.map((p) => [protoNumber(p), protoNumber(p)] as const) : hasPorts ? [[6, 6], [17, 17]] : [ANY_PROTO];
  const ids = (nums: number[] | undefined, named: string[] | undefined, table: Map<string, number>): (Range | undefined)[] =>
    nums || named ? [...(nums ?? []), ...(named ?? []).map((n) => table.get(n)!)].map((x) => [x, x] as const) : [undefined];
  const uids = ids(list(m.uid), list(m.user), names.users);
  const gids = ids(list(m.gid), list(m.group), names.groups);
  const out: Atom[] = [];
  for (const fam of [4, 6] as const) {
    if (fams && !fams.includes(fam)) continue;
    const any = fam === 4 ? ANY4 : ANY6;
    const srcs = locals ? locals.filter((l) => l.fam === fam).map((l) => l.range) : [any];
    const dsts = remotes ? remotes.filter((r) => r.fam === fam).map((r) => r.range) : [any];
    for (const src of srcs) for (const dst of dsts) for (const proto of protos) for (const sport of sports) for (const dport of dports)
      for (const uid of uids) for (const gid of gids) {
        const a: Atom = { fam, src, dst, proto, sport, dport };
        if (uid) a.uid = uid;
        if (gid) a.gid = gid;
        out.push(a);
      }
  }
  return out;
}

/** Why a policy rule cannot be enforced in the kernel, or its kernel form. */
export function policyRuleInKernel(r: RuleDoc, names: Names, expressible: AtomCheck): { rule: KernelRuleDoc; reason?: undefined } | { rule?: undefined; reason: string } {
  const m = r.match, a = r.action;
  if (m.exe !== undefined || m.cmdline !== undefined) return { reason: 'nftables sees packets, not the program (exe, cmdline): the eBPF path marks by exe' };
  if (m.event !== undefined) return { reason: 'the kernel sees packets, not socket calls (event)' };
  if (m.type !== undefined) return { reason: 'the kernel sees the protocol, not the socket type (use proto)' };
  if (m.unit !== undefined) return { reason: 'systemd units are matched by the agent only (nftables needs the cgroup v2 path at load time, and units come and go)' };
  if (a.deny !== undefined || a.none !== undefined) return { reason: `kernel rules only mark; ${a.deny !== undefined ? 'deny' : 'none'} is the agent's` };
  const match: KernelMatchDoc = {};
  for (const k of ['family', 'proto', 'remote', 'local', 'remote_port', 'local_port', 'uid', 'gid', 'user', 'group'] as const) if (m[k] !== undefined) (match as Record<string, unknown>)[k] = m[k];
  const action: KernelRuleDoc['action'] = {};
  for (const k of ['dscp', 'tos', 'priority', 'override'] as const) if (a[k] !== undefined) (action as Record<string, unknown>)[k] = a[k];
  const rule: KernelRuleDoc = { ...(r.name ? { name: r.name } : {}), match, action };
  const problems = ruleProblems(rule, names, expressible);
  if (problems.length) return { reason: problems.map((p) => p.message).join('; ') };
  return { rule };
}
