/* The nftables table for ordered kernel rules, planned as a value: the layers (layers.ts) as
 * interval maps, the per-flow cache in the connection mark, the action chains. Everything
 * here is pure: a TablePlan is the whole desired table; nft.ts diffs two plans into the two
 * transactions of a change. docs/kernel-rules.md. */

import { deposit, type CtMark } from './ctmark.js';
import type { Atom, KAction, KRule, Range } from './atoms.js';
import { layer, shapeOf, type Field, type Layer, type Placed } from './layers.js';

/** nftables keeps the types of a concatenated key in 32 bits: at most five fields. */
export const MAX_KEY_FIELDS = 5;

/** What nftables cannot express of a rule (the backend's check, rules.ts ruleProblems): an
 * atom whose layer would be keyed on more fields than a key holds. */
export function nftAtomProblems(atoms: readonly Atom[]): string[] {
  return atoms.some((a) => shapeOf(a).length > MAX_KEY_FIELDS)
    ? [`a rule naming a uid or gid is looked up on the fields it constrains plus the ids, at most ${MAX_KEY_FIELDS} (an nftables key): drop a field, or split the rule`]
    : [];
}

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

/** One element: its key as text (unique within its map), what nftables is given as the key
 * (from the atom, made when rendered), the data (a rule number in the mark's bits, or the
 * chain a verdict goes to: an action's, or a rule number's) and the rule's id as comment
 * (counters are read back by it). */
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

/** The whole table for rules in first-match order (each with a number 1..mark.maxRules,
 * `nums`), tagged with generation `gen` (1..mark.maxGeneration, a new one for every change).
 *
 * Packets at DSCP 0 (sequence m4/m6): a flow is classified once, by its first packet, and
 * remembered in the bits of its connection mark that `mark` gives the table (generation, rule
 * number); its later packets cost one comparison and one hash lookup (byid4/6, whose element
 * counters count each rule's packets), whatever the number of rules. A change of rules bumps
 * the generation, so every flow is classified again. Only the bits of the mask are read
 * or written (classifyMasked); when the mask is the whole mark, layers write the number
 * straight into it (classifyWhole), which costs no chain per rule.
 *
 * Packets already carrying a DSCP (the application's or the agent's choice; sequence o4/o6)
 * are looked up among `override` rules only, in verdict maps, without the cache. */
export function planTable(table: string, rules: KRule[], nums: Map<string, number>, gen: number, mark: CtMark): TablePlan {
  const maps = new Map<string, MapPlan>();
  const chains = new Map<string, ChainPlan>();
  const layers: Record<string, number> = {};
  const base: RulePlan[] = [];
  const whole = mark.mask === 0xffffffff;
  const tag = deposit(gen, mark.generationMask);
  const t: Table = { maps, chains, nums, mark };
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
  /** the lookups of the shared tagging chain (masked): per family, its rule map */
  const tagged: RulePlan[] = [];
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
        if (!ids.has(k)) ids.set(k, { key: k, val: deposit(num, mark.numberMask), data: useAction(rule.action, fam), comment: rule.id });
      }
      maps.set(byid, { fam, fields: [], type: ['mark'], data: 'verdict', counter: true, interval: false, elems: ids });
      const lookup = { vmap: { key: { '&': [ctMark, mark.numberMask] }, data: `@${byid}` } };
      if (whole) {
        chains.set(`c${fam}`, { rules: classifyWhole(t, seq, ls, fam) });
        chains.set(`g${fam}`, { rules: [{ expr: [setCtMark({ '|': [ctMark, tag] })] }, { expr: [lookup] }] });
      } else {
        chains.set(`c${fam}`, { rules: classifyMasked(t, seq, ls, fam) });
        tagged.push({ expr: [isFamily(fam), lookup] });
      }
      entry.push(
        { expr: [{ match: { op: '==', left: { '&': [ctMark, mark.generationMask] }, right: tag } }, lookup] },
        { expr: [{ goto: { target: `c${fam}` } }] },
      );
    }
    chains.set(`f${fam}`, { rules: entry });
    base.push({ expr: [isFamily(fam), { goto: { target: `f${fam}` } }] });
  }
  if (tagged.length) chains.set(TAG_CHAIN, { rules: [{ expr: [setCtMark(keepOr(mark.generationMask, tag))] }, ...tagged] });
  chains.set('output', { base: true, rules: base });
  return { table, maps, chains, layers };
}

/** What the classification chains of one plan share. */
interface Table { maps: Map<string, MapPlan>; chains: Map<string, ChainPlan>; nums: Map<string, number>; mark: CtMark }

/** The chain of each layer: a change rewrites the chains of the layers it changed. */
function layerChain(t: Table, seq: string, i: number, l: Layer, fam: 4 | 6, data: 'verdict' | 'mark', elemData: (p: Placed) => number | string,
  lookup: (key: unknown, map: string) => unknown): string {
  const { key, maps: ms } = layerMaps(seq, i, l, fam, data, elemData);
  const lookups: RulePlan[] = [];
  for (const [name, m] of ms) { t.maps.set(name, m); lookups.push({ expr: [lookup(key, `@${name}`)] }); }
  t.chains.set(`${seq}_${i}`, { rules: lookups });
  return `${seq}_${i}`;
}

/** The mark is the table's alone: every layer, last to first, writes the number of the rule
 * it finds over the whole mark (a data map), so the earliest matching rule is left; then
 * g4/g6 add the generation and look the number up. */
function classifyWhole(t: Table, seq: string, ls: Layer[], fam: 4 | 6): RulePlan[] {
  const num = (p: Placed) => deposit(t.nums.get(p.rule.id)!, t.mark.numberMask);
  const classify: RulePlan[] = [{ expr: [setCtMark(0)] }];
  for (let i = ls.length - 1; i >= 0; i--) {
    const l = ls[i]!;
    if (!l.fields.length) { classify.push({ expr: [setCtMark(num(l.members[0]!))] }); continue; }
    const chain = layerChain(t, seq, i, l, fam, 'mark', num, (key, map) => setCtMark({ map: { key, data: map } }));
    classify.push({ expr: [{ jump: { target: chain } }] });
  }
  classify.push({ expr: [{ goto: { target: `g${fam}` } }] });
  return classify;
}

/** Other software owns the bits outside the mask, and nftables (1.0.6) cannot combine the
 * mark with a looked-up value (the right side of | must be a constant). So each layer is a
 * verdict map whose elements go to the chain of their rule's number (n<N>: one constant
 * write of the number bits, shared by both families); layers are looked up first to last and
 * the first match leaves the chain, so the earliest matching rule decides; without a match
 * the number bits are cleared (rule 0). Then the tagging chain writes the generation bits and
 * looks the number up. Every write keeps the bits outside the mask: `ct mark & ~bits | value`. */
function classifyMasked(t: Table, seq: string, ls: Layer[], fam: 4 | 6): RulePlan[] {
  let made = numberChains.get(t.mark);
  if (!made) numberChains.set(t.mark, (made = new Map()));
  const numberChain = (p: Placed) => {
    const num = t.nums.get(p.rule.id)!;
    const name = `n${num}`;
    if (!t.chains.has(name)) {
      let c = made.get(num);
      if (!c) made.set(num, (c = { rules: [{ expr: [setCtMark(keepOr(t.mark.numberMask, deposit(num, t.mark.numberMask))), { goto: { target: TAG_CHAIN } }] }] }));
      t.chains.set(name, c);
    }
    return name;
  };
  const classify: RulePlan[] = [];
  for (let i = 0; i < ls.length; i++) {
    const l = ls[i]!;
    // a layer matching every packet of the family decides all that reach it: none after it can
    if (!l.fields.length) return [...classify, { expr: [{ goto: { target: numberChain(l.members[0]!) } }] }];
    const chain = layerChain(t, seq, i, l, fam, 'verdict', numberChain, (key, map) => ({ vmap: { key, data: map } }));
    classify.push({ expr: [{ jump: { target: chain } }] });
  }
  classify.push({ expr: [setCtMark(keepOr(t.mark.numberMask, 0))] }, { expr: [{ goto: { target: TAG_CHAIN } }] });
  return classify;
}

/** Each number's chain, the same object in every plan of a mask: nft.ts renders and compares a
 * chain it has seen only once (10,000 rules make 10,000 of them; never changed). */
const numberChains = new WeakMap<CtMark, Map<number, ChainPlan>>();

/** The chain that tags a classified flow with the generation (masked plan). */
const TAG_CHAIN = 'g';
/** The mark with `bits` replaced by `value`, the other bits kept. */
const keepOr = (bits: number, value: number) => ({ '|': [{ '&': [ctMark, (~bits) >>> 0] }, value] });
