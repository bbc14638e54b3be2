/* Stacks ordered first-match kernel rules into lookups whose per-packet cost does not grow
 * with the number of rules: the rules' atoms are stacked into a few *layers*, each one
 * non-overlapping interval map (for nftables, a set lookup: pipapo for concatenated ranges) from the
 * packet's 5-tuple (and socket uid/gid) to the rule's action. Within a layer no two atoms
 * overlap, so the map may find them in any order; an atom goes into the first layer after
 * every layer holding an earlier atom it overlaps, so that whenever two rules can both match
 * a packet the earlier one is looked up first. A packet costs one lookup per layer: with the
 * rules administrators write (hosts and ports, some prefixes and ranges that cover them), a
 * handful of layers hold thousands of rules. docs/kernel-rules.md.
 *
 * Pure and backend-neutral (it knows atoms, not nftables): plan.ts turns the layers into an
 * nftables table, nft.ts diffs two tables into the two transactions of a change. */

import type { AddrRange, Atom, KRule, Range } from './atoms.js';

export type Field = 'saddr' | 'daddr' | 'proto' | 'sport' | 'dport' | 'uid' | 'gid';
const TUPLE: Field[] = ['saddr', 'daddr', 'proto', 'sport', 'dport'];

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
