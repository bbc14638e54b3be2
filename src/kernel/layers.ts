/* Compiles ordered first-match kernel rules into one nftables table whose per-packet cost
 * does not grow with the number of rules: the rules' atoms are stacked into a few *layers*,
 * each one interval map (a set lookup: nft's pipapo for concatenated ranges) from the
 * packet's 5-tuple (and socket uid/gid) to the rule's action. Within a layer no two atoms
 * overlap, so the map may find them in any order; an atom goes into the first layer after
 * every layer holding an earlier atom it overlaps, so that whenever two rules can both match
 * a packet the earlier one is looked up first. A packet costs one lookup per layer: with the
 * rules administrators write (hosts and ports, some prefixes and ranges that cover them), a
 * handful of layers hold thousands of rules. docs/kernel-rules.md.
 *
 * Everything here is pure: a TablePlan is the whole desired table; nft.ts diffs two plans
 * into the two transactions of a change. */

import type { AddrRange, Atom, KAction, KRule, Range } from './rules.js';

export type Field = 'saddr' | 'daddr' | 'proto' | 'sport' | 'dport' | 'uid' | 'gid';
const TUPLE: Field[] = ['saddr', 'daddr', 'proto', 'sport', 'dport'];
/** nftables keeps the types of a concatenated key in 32 bits: at most five fields. */
export const MAX_KEY_FIELDS = 5;

/** A packet's value for each field, as nftables expressions and data types. */
function fieldExpr(f: Field, fam: 4 | 6): unknown {
  const ip = fam === 4 ? 'ip' : 'ip6';
  switch (f) {
    case 'saddr': return { payload: { protocol: ip, field: 'saddr' } };
    case 'daddr': return { payload: { protocol: ip, field: 'daddr' } };
    case 'proto': return { meta: { key: 'l4proto' } };
    case 'sport': return { payload: { protocol: 'th', field: 'sport' } };
    case 'dport': return { payload: { protocol: 'th', field: 'dport' } };
    case 'uid': return { meta: { key: 'skuid' } };
    case 'gid': return { meta: { key: 'skgid' } };
  }
}
function fieldType(f: Field, fam: 4 | 6): string {
  switch (f) {
    case 'saddr': case 'daddr': return fam === 4 ? 'ipv4_addr' : 'ipv6_addr';
    case 'proto': return 'inet_proto';
    case 'sport': case 'dport': return 'inet_service';
    case 'uid': return 'uid';
    case 'gid': return 'gid';
  }
}
const FIELD_CODE: Record<Field, string> = { saddr: 's', daddr: 'd', proto: 'p', sport: 'x', dport: 'y', uid: 'u', gid: 'g' };

const full = (r: Range, max: number) => r[0] === 0 && r[1] === max;

/** The fields an atom's layer is keyed on: the whole 5-tuple for atoms without ids (one
 * shape for nearly everything, so few layers), the constrained fields plus uid/gid for the
 * others (a packet without a socket has no uid, so only rules that name one may need it);
 * none for an atom that matches every packet of its family (the seed's default rule). */
export function shapeOf(a: Atom): Field[] {
  return shapeEntry(a).fields;
}
/** An atom's shape and its name ("plain" for none), computed once per atom. */
function shapeEntry(a: Atom): { fields: Field[]; name: string } {
  let e = shapes.get(a);
  if (!e) { const fields = shape(a); shapes.set(a, (e = { fields, name: fields.length ? fields.join('.') : 'plain' })); }
  return e;
}
const shapes = new WeakMap<Atom, { fields: Field[]; name: string }>();
function shape(a: Atom): Field[] {
  const constrained: Field[] = [];
  if (a.src.len > 0) constrained.push('saddr');
  if (a.dst.len > 0) constrained.push('daddr');
  if (!full(a.proto, 255)) constrained.push('proto');
  if (!full(a.sport, 65535)) constrained.push('sport');
  if (!full(a.dport, 65535)) constrained.push('dport');
  if (!a.uid && !a.gid) return constrained.length ? TUPLE : [];
  if (a.uid) constrained.push('uid');
  if (a.gid) constrained.push('gid');
  return constrained;
}

/** Whether some packet falls in both atoms (same family). */
export function overlap(a: Atom, b: Atom): boolean {
  return a.dport[0] <= b.dport[1] && b.dport[0] <= a.dport[1]
    && a.proto[0] <= b.proto[1] && b.proto[0] <= a.proto[1]
    && a.dst.lo <= b.dst.hi && b.dst.lo <= a.dst.hi
    && a.sport[0] <= b.sport[1] && b.sport[0] <= a.sport[1]
    && a.src.lo <= b.src.hi && b.src.lo <= a.src.hi
    && (!a.uid || !b.uid || (a.uid[0] <= b.uid[1] && b.uid[0] <= a.uid[1]))
    && (!a.gid || !b.gid || (a.gid[0] <= b.gid[1] && b.gid[0] <= a.gid[1]));
}

export interface Placed { atom: Atom; rule: KRule }
export interface Layer { fields: Field[]; members: Placed[] }

function hitList(a: Atom, l: Placed[] | undefined): boolean {
  if (l) for (let i = 0; i < l.length; i++) if (overlap(a, l[i]!.atom)) return true;
  return false;
}

/** Atoms indexed by protocol and destination port, so that finding what an atom overlaps
 * does not visit every earlier atom: most rules name one protocol and one service port. */
class PortIndex {
  /** one protocol, one port: by protocol × 65536 + port */
  private readonly exact = new Map<number, Placed[]>();
  /** one protocol, a port range */
  private readonly byProto = new Map<number, Placed[]>();
  /** several protocols */
  private readonly wide: Placed[] = [];
  private size = 0;
  add(p: Placed): void {
    this.size++;
    const a = p.atom;
    if (a.proto[0] !== a.proto[1]) { this.wide.push(p); return; }
    const one = a.dport[0] === a.dport[1];
    const m = one ? this.exact : this.byProto, k = one ? a.proto[0] * 65536 + a.dport[0] : a.proto[0];
    const l = m.get(k);
    if (l) l.push(p); else m.set(k, [p]);
  }
  overlaps(a: Atom): boolean {
    if (this.size === 0) return false;
    if (hitList(a, this.wide)) return true;
    const [p0, p1] = a.proto, [d0, d1] = a.dport;
    if (p0 === p1) { if (hitList(a, this.byProto.get(p0))) return true; } else for (const [pr, l] of this.byProto) if (pr >= p0 && pr <= p1 && hitList(a, l)) return true;
    if (p0 === p1 && d0 === d1) return hitList(a, this.exact.get(p0 * 65536 + d0));
    if ((p1 - p0 + 1) * (d1 - d0 + 1) < this.exact.size) {
      for (let pr = p0; pr <= p1; pr++) for (let d = d0; d <= d1; d++) if (hitList(a, this.exact.get(pr * 65536 + d))) return true;
      return false;
    }
    for (const [k, l] of this.exact) {
      const pr = Math.floor(k / 65536), d = k % 65536;
      if (pr >= p0 && pr <= p1 && d >= d0 && d <= d1 && hitList(a, l)) return true;
    }
    return false;
  }
}

/** The /16 (IPv4) or /32 (IPv6) holding a whole destination range, as hex; undefined for a
 * wider range. */
function dstBucket(d: AddrRange): string | undefined {
  const n = d.lo.length === 8 ? 4 : 8;
  const b = d.lo.slice(0, n);
  return d.hi.startsWith(b) ? b : undefined;
}

/** A layer's members indexed by destination: hosts by address, prefixes by the /16 (/32 for
 * IPv6) holding them, each then by protocol and port. Hosts and small prefixes (what most
 * rules name) are compared only with their neighbours. */
class LayerIndex {
  private readonly buckets = new Map<string, { nets: PortIndex; hosts: Map<string, Placed[]> }>();
  private readonly wideDst = new PortIndex();
  /** everything, by protocol and port: for atoms whose destination spans many buckets */
  private readonly all = new PortIndex();
  /** `b`: dstBucket of the atom's destination */
  add(p: Placed, b: string | undefined): void {
    this.all.add(p);
    if (b === undefined) { this.wideDst.add(p); return; }
    let e = this.buckets.get(b);
    if (!e) this.buckets.set(b, (e = { nets: new PortIndex(), hosts: new Map() }));
    const d = p.atom.dst;
    if (d.lo !== d.hi) { e.nets.add(p); return; }
    const l = e.hosts.get(d.lo);
    if (l) l.push(p); else e.hosts.set(d.lo, [p]);
  }
  overlaps(a: Atom, b: string | undefined): boolean {
    if (b === undefined) return this.all.overlaps(a);
    if (this.wideDst.overlaps(a)) return true;
    const e = this.buckets.get(b);
    return !!e && this.inBucket(e, a);
  }
  private inBucket(e: { nets: PortIndex; hosts: Map<string, Placed[]> }, a: Atom): boolean {
    if (e.nets.overlaps(a)) return true;
    if (a.dst.lo === a.dst.hi) return hitList(a, e.hosts.get(a.dst.lo));
    for (const [h, l] of e.hosts) if (h >= a.dst.lo && h <= a.dst.hi && hitList(a, l)) return true;
    return false;
  }
}

/** Stacks atoms (in rule order) into layers, preserving first-match order (see top). */
export function layer(atoms: Placed[]): Layer[] {
  const layers: (Layer & { shape: string; index: LayerIndex })[] = [];
  for (const x of atoms) {
    const { fields, name: shape } = shapeEntry(x.atom);
    const b = dstBucket(x.atom.dst);
    let after = -1;
    for (let L = layers.length - 1; L >= 0; L--) if (layers[L]!.index.overlaps(x.atom, b)) { after = L; break; }
    let target = -1;
    if (shape !== 'plain') for (let L = after + 1; L < layers.length; L++) if (layers[L]!.shape === shape) { target = L; break; }
    if (target < 0) { layers.push({ fields, shape, members: [], index: new LayerIndex() }); target = layers.length - 1; }
    layers[target]!.members.push(x);
    layers[target]!.index.add(x, b);
  }
  return layers.map(({ fields, members }) => ({ fields, members }));
}

/** The first rule (in order) matching a packet, by scanning: the reference the layered
 * table must agree with (layers.test.ts). */
export interface PacketKey { fam: 4 | 6; src: string; dst: string; proto: number; sport: number; dport: number; uid?: number; gid?: number }
export function firstMatch(rules: KRule[], p: PacketKey): KRule | undefined {
  const inR = (v: number | undefined, r: Range | undefined) => r === undefined || (v !== undefined && r[0] <= v && v <= r[1]);
  return rules.find((r) => r.atoms.some((a) => a.fam === p.fam && a.src.lo <= p.src && p.src <= a.src.hi && a.dst.lo <= p.dst && p.dst <= a.dst.hi
    && inR(p.proto, a.proto) && inR(p.sport, a.sport) && inR(p.dport, a.dport) && inR(p.uid, a.uid) && inR(p.gid, a.gid)));
}

// ---- the table -------------------------------------------------------------------------

/** One element: its key as text (unique within its map), what nftables is given as the key
 * (from the atom, made when rendered), the data (a rule number, or the action chain a
 * verdict jumps to) and the rule's id as comment (counters are read back by it). */
export interface ElemPlan { key: string; atom?: Atom; val?: unknown; data: number | string; comment?: string }
export interface MapPlan {
  fam: 4 | 6;
  fields: Field[];
  type: string[];
  data: 'verdict' | 'mark';
  counter: boolean;
  /** interval maps (ranges, prefixes) are nft's pipapo/rbtree sets; the others hash sets */
  interval: boolean;
  elems: Map<string, ElemPlan>;
}
/** A rule; `@name` in its expressions names a map of the plan (nft.ts renders the name the
 * map has in the kernel). */
export interface RulePlan { expr: unknown[]; comment?: string }
export interface ChainPlan { base?: boolean; rules: RulePlan[] }
export interface TablePlan {
  table: string;
  maps: Map<string, MapPlan>;
  chains: Map<string, ChainPlan>;
  /** per sequence (m4, m6: DSCP 0; o4, o6: override rules for marked packets): layers */
  layers: Record<string, number>;
}

/** The connection mark: the upper 16 bits hold the generation of the rules that classified
 * the flow, the lower 16 bits the number of the rule that decided it (0: none). */
const GEN_MASK = 0xffff0000, NUM_MASK = 0xffff;
export const MAX_RULE_NUM = NUM_MASK;

/** A layer with more atoms than this is split into chunks (by a hash of each atom), so that a
 * change rebuilds a chunk of a few hundred elements, not the layer (nft.ts). */
export const CHUNK_MAX = 256;
const CHUNK_AIM = 192;
export const chunksFor = (n: number): number => (n <= CHUNK_MAX ? 1 : 2 ** Math.ceil(Math.log2(n / CHUNK_AIM)));

/** FNV-1a of a string: which chunk an element goes to. */
export function fnv1a(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The chain applying an action to one family; its name says what it does. */
function actionChain(a: KAction, fam: 4 | 6): { name: string; rules: RulePlan[] } {
  const expr: unknown[] = [];
  let name = `a${fam}`;
  if (a.dscp !== undefined) {
    name += `_d${a.dscp}`;
    expr.push({ mangle: { key: { payload: { protocol: fam === 4 ? 'ip' : 'ip6', field: 'dscp' } }, value: a.dscp } });
  }
  if (a.priority !== undefined) {
    name += `_p${a.priority}`;
    expr.push({ mangle: { key: { meta: { key: 'priority' } }, value: `0:${a.priority}` } });
  }
  expr.push({ accept: null });
  return { name, rules: [{ expr }] };
}

function value(a: Atom, f: Field): unknown {
  const range = (r: Range) => (r[0] === r[1] ? r[0] : { range: [r[0], r[1]] });
  switch (f) {
    case 'saddr': case 'daddr': {
      const x = f === 'saddr' ? a.src : a.dst;
      return x.len === (a.fam === 4 ? 32 : 128) ? x.addr : { prefix: { addr: x.addr, len: x.len } };
    }
    case 'proto': return range(a.proto);
    case 'sport': return range(a.sport);
    case 'dport': return range(a.dport);
    case 'uid': return range(a.uid!);
    case 'gid': return range(a.gid!);
  }
}

/** An element's key as nftables is given it. */
export function elemVal(m: MapPlan, e: ElemPlan): unknown {
  if (!e.atom) return e.val;
  return m.fields.length === 1 ? value(e.atom, m.fields[0]!) : { concat: m.fields.map((f) => value(e.atom!, f)) };
}

/** An element's data as nftables is given it: a verdict (go to an action chain, or accept)
 * or a mark. */
export function elemData(m: MapPlan, e: ElemPlan): unknown {
  if (m.data !== 'verdict') return e.data;
  return e.data === ACCEPT ? { accept: null } : { goto: { target: e.data } };
}

/** An atom's key as text, from the fields of its layer (its shape), and the key's hash. */
function atomKey(a: Atom, fields: Field[]): { key: string; hash: number } {
  let k = keys.get(a);
  if (!k) { const key = keyText(a, fields); keys.set(a, (k = { key, hash: fnv1a(key) })); }
  return k;
}
const keys = new WeakMap<Atom, { key: string; hash: number }>();
function keyText(a: Atom, fields: Field[]): string {
  let s = '';
  for (const f of fields) {
    switch (f) {
      case 'saddr': s += `${a.src.lo}-${a.src.hi} `; break;
      case 'daddr': s += `${a.dst.lo}-${a.dst.hi} `; break;
      case 'proto': s += `${a.proto[0]}-${a.proto[1]} `; break;
      case 'sport': s += `${a.sport[0]}-${a.sport[1]} `; break;
      case 'dport': s += `${a.dport[0]}-${a.dport[1]} `; break;
      case 'uid': s += `${a.uid![0]}-${a.uid![1]} `; break;
      case 'gid': s += `${a.gid![0]}-${a.gid![1]} `; break;
    }
  }
  return s;
}

const isFamily = (fam: 4 | 6) => ({ match: { op: '==', left: { meta: { key: 'nfproto' } }, right: fam === 4 ? 'ipv4' : 'ipv6' } });
const dscpOf = (fam: 4 | 6) => ({ payload: { protocol: fam === 4 ? 'ip' : 'ip6', field: 'dscp' } });
const ctMark = { ct: { key: 'mark' } };
/** verdict-map data meaning "accept" rather than a chain to go to */
export const ACCEPT = '<accept>';
const setCtMark = (v: unknown) => ({ mangle: { key: ctMark, value: v } });

/** A layer's maps (one, or its chunks) and the packet key they are looked up with. */
function layerMaps(seq: string, i: number, l: Layer, fam: 4 | 6, data: 'verdict' | 'mark', elemData: (p: Placed) => number | string):
  { key: unknown; maps: [string, MapPlan][] } {
  const code = l.fields.map((f) => FIELD_CODE[f]).join('');
  const key = l.fields.length === 1 ? fieldExpr(l.fields[0]!, fam) : { concat: l.fields.map((f) => fieldExpr(f, fam)) };
  const type = l.fields.map((f) => fieldType(f, fam));
  const n = chunksFor(l.members.length);
  const maps: [string, MapPlan][] = [];
  for (let c = 0; c < n; c++) {
    maps.push([n === 1 ? `${seq}_${i}_${code}` : `${seq}_${i}_${code}_${c}of${n}`,
      { fam, fields: l.fields, type, data, counter: data === 'verdict', interval: true, elems: new Map() }]);
  }
  for (const p of l.members) {
    const { key: k, hash } = atomKey(p.atom, l.fields);
    maps[hash % n]![1].elems.set(k, { key: k, atom: p.atom, data: elemData(p), comment: data === 'verdict' ? p.rule.id : undefined });
  }
  return { key, maps };
}

/** The whole table for rules in first-match order (each with a number 1..65535, `nums`),
 * tagged with generation `gen` (1..65535, a new one for every change).
 *
 * Packets at DSCP 0 (sequence m4/m6): a flow is classified once, by its first packet, and
 * remembered in its connection mark (generation, rule number); its later packets cost one
 * comparison and one hash lookup (byid4/6, whose element counters count each rule's
 * packets), whatever the number of rules. Classifying looks the packet up in every layer,
 * last to first, each match overwriting the mark: the earliest matching rule is left.
 * A change of rules bumps the generation, so every flow is classified again.
 *
 * Packets already carrying a DSCP (the application's or the agent's choice; sequence o4/o6)
 * are looked up among `override` rules only, in verdict maps, without the cache. */
export function planTable(table: string, rules: KRule[], nums: Map<string, number>, gen: number): TablePlan {
  const maps = new Map<string, MapPlan>();
  const chains = new Map<string, ChainPlan>();
  const layers: Record<string, number> = {};
  const base: RulePlan[] = [];
  const useAction = (a: KAction, fam: 4 | 6) => {
    const ac = actionChain(a, fam);
    if (!chains.has(ac.name)) chains.set(ac.name, { rules: ac.rules });
    return ac.name;
  };
  const placedOf = (fam: 4 | 6, override: boolean) => {
    const placed: Placed[] = [];
    for (const r of rules) if (!override || r.action.override) for (const atom of r.atoms) if (atom.fam === fam) placed.push({ atom, rule: r });
    return placed;
  };
  for (const fam of [4, 6] as const) {
    // Each family's packets go to f4/f6: a packet already carrying a DSCP to the override
    // rules (o4/o6, uncached), a packet of a flow classified under this generation straight
    // to its rule's action (byid4/6), any other to classification (c4/c6).
    const entry: RulePlan[] = [];
    const marked = { match: { op: '!=', left: dscpOf(fam), right: 0 } };
    const oseq = `o${fam}`;
    const ols = layer(placedOf(fam, true));
    layers[oseq] = ols.length;
    if (!ols.length) entry.push({ expr: [marked, { accept: null }] });
    else {
      entry.push({ expr: [marked, { goto: { target: oseq } }] });
      const rs: RulePlan[] = [];
      ols.forEach((l, i) => {
        if (!l.fields.length) {
          const p = l.members[0]!;
          rs.push({ expr: [{ counter: null }, { goto: { target: useAction(p.rule.action, fam) } }], comment: p.rule.id });
          return;
        }
        const { key, maps: ms } = layerMaps(oseq, i, l, fam, 'verdict', (p) => useAction(p.rule.action, fam));
        for (const [name, m] of ms) { maps.set(name, m); rs.push({ expr: [{ vmap: { key, data: `@${name}` } }] }); }
      });
      chains.set(oseq, { rules: rs });
    }

    const seq = `m${fam}`;
    const placed = placedOf(fam, false);
    const ls = layer(placed);
    layers[seq] = ls.length;
    if (ls.length) {
      const byid = `byid${fam}`;
      // number 0 (no rule matched) is an element too: a flow no rule takes is not classified again
      const ids = new Map<string, ElemPlan>([['0', { key: '0', val: 0, data: ACCEPT }]]);
      for (const { rule } of placed) {
        const num = nums.get(rule.id)!;
        const k = String(num);
        if (!ids.has(k)) ids.set(k, { key: k, val: num, data: useAction(rule.action, fam), comment: rule.id });
      }
      maps.set(byid, { fam, fields: [], type: ['mark'], data: 'verdict', counter: true, interval: false, elems: ids });
      // each layer its own chain: a change rewrites the chains of the layers it changed
      const classify: RulePlan[] = [{ expr: [setCtMark(0)] }];
      for (let i = ls.length - 1; i >= 0; i--) {
        const l = ls[i]!;
        if (!l.fields.length) { classify.push({ expr: [setCtMark(nums.get(l.members[0]!.rule.id)!)] }); continue; }
        const { key, maps: ms } = layerMaps(seq, i, l, fam, 'mark', (p) => nums.get(p.rule.id)!);
        const lookups: RulePlan[] = [];
        for (const [name, m] of ms) { maps.set(name, m); lookups.push({ expr: [setCtMark({ map: { key, data: `@${name}` } })] }); }
        chains.set(`${seq}_${i}`, { rules: lookups });
        classify.push({ expr: [{ jump: { target: `${seq}_${i}` } }] });
      }
      const tag = (gen << 16) >>> 0;
      const lookup = { vmap: { key: { '&': [ctMark, NUM_MASK] }, data: `@${byid}` } };
      classify.push({ expr: [{ goto: { target: `g${fam}` } }] });
      chains.set(`c${fam}`, { rules: classify });
      chains.set(`g${fam}`, { rules: [{ expr: [setCtMark({ '|': [ctMark, tag] })] }, { expr: [lookup] }] });
      entry.push(
        { expr: [{ match: { op: '==', left: { '&': [ctMark, GEN_MASK] }, right: tag } }, lookup] },
        { expr: [{ goto: { target: `c${fam}` } }] },
      );
    }
    chains.set(`f${fam}`, { rules: entry });
    base.push({ expr: [isFamily(fam), { goto: { target: `f${fam}` } }] });
  }
  chains.set('output', { base: true, rules: base });
  return { table, maps, chains, layers };
}
