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
 * into one transaction. */

import type { Atom, KAction, KRule, Range } from './rules.js';

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

/** A layer's members indexed by destination port, so that finding what an atom overlaps
 * does not visit every earlier atom: most rules name one service port. */
class LayerIndex {
  readonly byPort = new Map<number, Placed[]>();
  readonly wide: Placed[] = [];
  add(p: Placed): void {
    const d = p.atom.dport;
    if (d[0] !== d[1]) { this.wide.push(p); return; }
    const l = this.byPort.get(d[0]);
    if (l) l.push(p); else this.byPort.set(d[0], [p]);
  }
  overlaps(a: Atom): boolean {
    const hit = (l: Placed[] | undefined) => { if (l) for (let i = 0; i < l.length; i++) if (overlap(a, l[i]!.atom)) return true; return false; };
    if (hit(this.wide)) return true;
    if (a.dport[0] === a.dport[1]) return hit(this.byPort.get(a.dport[0]));
    if (a.dport[1] - a.dport[0] < this.byPort.size) { for (let p = a.dport[0]; p <= a.dport[1]; p++) if (hit(this.byPort.get(p))) return true; return false; }
    for (const [p, l] of this.byPort) if (p >= a.dport[0] && p <= a.dport[1] && hit(l)) return true;
    return false;
  }
}

/** Stacks atoms (in rule order) into layers, preserving first-match order (see top). */
export function layer(atoms: Placed[]): Layer[] {
  const layers: (Layer & { shape: string; index: LayerIndex })[] = [];
  for (const x of atoms) {
    const fields = shapeOf(x.atom);
    const shape = fields.length ? fields.join('.') : 'plain';
    let after = -1;
    for (let L = layers.length - 1; L >= 0; L--) if (layers[L]!.index.overlaps(x.atom)) { after = L; break; }
    let target = -1;
    if (shape !== 'plain') for (let L = after + 1; L < layers.length; L++) if (layers[L]!.shape === shape) { target = L; break; }
    if (target < 0) { layers.push({ fields, shape, members: [], index: new LayerIndex() }); target = layers.length - 1; }
    layers[target]!.members.push(x);
    layers[target]!.index.add(x);
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

export interface ElemPlan { val: unknown; data: unknown; comment?: string }
export interface MapPlan { type: string[]; data: 'verdict' | 'mark'; counter: boolean; elems: Map<string, ElemPlan> }
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

const isFamily = (fam: 4 | 6) => ({ match: { op: '==', left: { meta: { key: 'nfproto' } }, right: fam === 4 ? 'ipv4' : 'ipv6' } });
const dscpOf = (fam: 4 | 6) => ({ payload: { protocol: fam === 4 ? 'ip' : 'ip6', field: 'dscp' } });
const ctMark = { ct: { key: 'mark' } };
const setCtMark = (v: unknown) => ({ mangle: { key: ctMark, value: v } });

/** A layer's key: the packet's fields, concatenated. */
function layerKey(l: Layer, fam: 4 | 6): { name: string; key: unknown; type: string[] } {
  return {
    name: l.fields.map((f) => FIELD_CODE[f]).join(''),
    key: l.fields.length === 1 ? fieldExpr(l.fields[0]!, fam) : { concat: l.fields.map((f) => fieldExpr(f, fam)) },
    type: l.fields.map((f) => fieldType(f, fam)),
  };
}
const atomVal = (l: Layer, a: Atom) => (l.fields.length === 1 ? value(a, l.fields[0]!) : { concat: l.fields.map((f) => value(a, f)) });

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
    // marked packets: override rules only
    const seq = `o${fam}`;
    const ls = layer(placedOf(fam, true));
    layers[seq] = ls.length;
    const head = [isFamily(fam), { match: { op: '!=', left: dscpOf(fam), right: 0 } }];
    if (!ls.length) { base.push({ expr: [...head, { accept: null }] }); continue; }
    base.push({ expr: [...head, { goto: { target: seq } }] });
    chains.set(seq, {
      rules: ls.map((l, i): RulePlan => {
        if (!l.fields.length) {
          const p = l.members[0]!;
          return { expr: [{ counter: null }, { goto: { target: useAction(p.rule.action, fam) } }], comment: p.rule.id };
        }
        const k = layerKey(l, fam);
        const name = `${seq}_${i}_${k.name}`;
        const elems = new Map<string, ElemPlan>();
        for (const p of l.members) {
          const val = atomVal(l, p.atom);
          elems.set(JSON.stringify(val), { val, data: { goto: { target: useAction(p.rule.action, fam) } }, comment: p.rule.id });
        }
        maps.set(name, { type: k.type, data: 'verdict', counter: true, elems });
        return { expr: [{ vmap: { key: k.key, data: `@${name}` } }] };
      }),
    });
  }
  for (const fam of [4, 6] as const) {
    const seq = `m${fam}`;
    const placed = placedOf(fam, false);
    const ls = layer(placed);
    layers[seq] = ls.length;
    if (!ls.length) continue;
    base.push({ expr: [isFamily(fam), { goto: { target: seq } }] });
    const byid = `byid${fam}`;
    const ids = new Map<string, ElemPlan>();
    for (const { rule } of placed) {
      const num = nums.get(rule.id)!;
      if (!ids.has(String(num))) ids.set(String(num), { val: num, data: { goto: { target: useAction(rule.action, fam) } }, comment: rule.id });
    }
    maps.set(byid, { type: ['mark'], data: 'verdict', counter: true, elems: ids });
    const classify: RulePlan[] = [{ expr: [setCtMark(0)] }];
    for (let i = ls.length - 1; i >= 0; i--) {
      const l = ls[i]!;
      if (!l.fields.length) { classify.push({ expr: [setCtMark(nums.get(l.members[0]!.rule.id)!)] }); continue; }
      const k = layerKey(l, fam);
      const name = `${seq}_${i}_${k.name}`;
      const elems = new Map<string, ElemPlan>();
      for (const p of l.members) {
        const val = atomVal(l, p.atom);
        elems.set(JSON.stringify(val), { val, data: nums.get(p.rule.id)! });
      }
      maps.set(name, { type: k.type, data: 'mark', counter: false, elems });
      classify.push({ expr: [setCtMark({ map: { key: k.key, data: `@${name}` } })] });
    }
    const tag = (gen << 16) >>> 0;
    const lookup = { vmap: { key: { '&': [ctMark, NUM_MASK] }, data: `@${byid}` } };
    classify.push({ expr: [setCtMark({ '|': [ctMark, tag] })] }, { expr: [lookup] });
    chains.set(`c${fam}`, { rules: classify });
    chains.set(`h${fam}`, { rules: [{ expr: [lookup] }] });
    chains.set(seq, {
      rules: [
        { expr: [{ match: { op: '==', left: { '&': [ctMark, GEN_MASK] }, right: tag } }, { goto: { target: `h${fam}` } }] },
        { expr: [{ goto: { target: `c${fam}` } }] },
      ],
    });
  }
  chains.set('output', { base: true, rules: base });
  return { table, maps, chains, layers };
}
