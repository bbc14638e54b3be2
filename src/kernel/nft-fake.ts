/* An in-memory nftables for tests: stands in for running `nft` (nft.ts NftRunner) on one
 * table. It takes the same JSON documents, keeps what the table holds, and refuses a document
 * whole, as the kernel does, when a command could not run where it stands: a rule or element
 * naming a missing chain or map, a map or element added twice, deleting what is missing or
 * still referred to. It also refuses what the kernel would take but would apply unsafely (the
 * reason nft.ts changes a table in two transactions): changing the elements of an interval map
 * that a base chain reaches before or after the transaction, since nftables swaps such maps in
 * after the transaction's rules are visible. Counters are answered as the test sets them. */

import { QosError } from '../errors.js';
import type { Counter } from './backend.js';
import type { NftDoc, NftRunner } from './nft.js';

export interface FakeElem { data: string; comment?: string }
export interface FakeMap { interval: boolean; elems: Map<string, FakeElem> }
export interface FakeTable { maps: Map<string, FakeMap>; chains: Map<string, string[]>; base: Set<string> }

type Cmd = Record<string, Record<string, Record<string, unknown>>>;

/** The chains and maps a rule (or an element's data), as JSON text, names. */
export function refs(text: string): { chains: string[]; maps: string[] } {
  return {
    chains: [...text.matchAll(/"target":"([^"]+)"/g)].map((m) => m[1]!),
    maps: [...text.matchAll(/"@([^"]+)"/g)].map((m) => m[1]!),
  };
}

const copy = (t: FakeTable): FakeTable => ({
  maps: new Map([...t.maps].map(([n, m]) => [n, { interval: m.interval, elems: new Map(m.elems) }])),
  chains: new Map([...t.chains].map(([n, r]) => [n, [...r]])),
  base: new Set(t.base),
});

export class NftFake implements NftRunner {
  /** the table as the last accepted document left it */
  table: FakeTable = { maps: new Map(), chains: new Map(), base: new Set() };
  /** every accepted document, in order */
  readonly applied: NftDoc[] = [];
  /** what `nft -j list` reports for the elements and rules with a given comment (a rule id) */
  readonly hits = new Map<string, Counter>();
  /** what unavailable() answers */
  unavailableBecause: string | null = null;

  constructor(readonly name = 'qosd') {}

  async unavailable(): Promise<string | null> { return this.unavailableBecause; }

  /** Runs one document whole or not at all; QOS_ERR_KERNEL naming the refused command. */
  async apply(doc: NftDoc): Promise<void> {
    this.table = this.run(this.table, doc.nftables.slice(1));
    this.applied.push(doc);
  }

  /** The table after cmds, or a throw where the kernel would refuse (the input is kept). */
  run(before: FakeTable, cmds: unknown[]): FakeTable {
    const t = copy(before);
    const changed = new Set<string>();
    const refuse = (why: string): never => { throw new QosError('QOS_ERR_KERNEL', `nft (fake) refused the transaction: ${why}`); };
    const referenced = (kind: 'chains' | 'maps', name: string) => {
      for (const rules of t.chains.values()) for (const r of rules) if (refs(r)[kind].includes(name)) return true;
      if (kind === 'chains') for (const m of t.maps.values()) for (const e of m.elems.values()) if (refs(e.data).chains.includes(name)) return true;
      return false;
    };
    for (const c of cmds as Cmd[]) {
      const [verb, obj] = Object.entries(c)[0]!;
      const [what, o] = Object.entries(obj)[0]!;
      const name = (o.name ?? o.chain) as string;
      if (what !== 'table' && o.table !== this.name) refuse(`${verb} ${what} ${name} in table ${String(o.table)}, not ${this.name}`);
      switch (`${verb} ${what}`) {
        case 'add table': break;
        case 'delete table': t.maps.clear(); t.chains.clear(); t.base.clear(); break;
        case 'add chain':
          if (!t.chains.has(name)) t.chains.set(name, []);
          if (o.hook !== undefined) t.base.add(name);
          break;
        case 'flush chain': if (!t.chains.has(name)) refuse(`flush of missing chain ${name}`); t.chains.set(name, []); break;
        case 'delete chain':
          if (t.chains.get(name)?.length !== 0) refuse(`delete of missing or non-empty chain ${name}`);
          if (referenced('chains', name)) refuse(`delete of chain ${name}, which is referred to`);
          t.chains.delete(name);
          t.base.delete(name);
          break;
        case 'add rule': {
          const text = JSON.stringify({ expr: o.expr, ...(o.comment ? { comment: o.comment } : {}) });
          const r = refs(text);
          for (const ch of r.chains) if (!t.chains.has(ch)) refuse(`rule in ${name} names missing chain ${ch}`);
          for (const m of r.maps) if (!t.maps.has(m)) refuse(`rule in ${name} names missing map ${m}`);
          const rules = t.chains.get(name);
          if (!rules) refuse(`rule in missing chain ${name}`);
          rules!.push(text);
          break;
        }
        case 'add map':
          if (t.maps.has(name)) refuse(`map ${name} exists`);
          t.maps.set(name, { interval: ((o.flags as string[] | undefined) ?? []).includes('interval'), elems: new Map() });
          break;
        case 'delete map':
          if (!t.maps.has(name)) refuse(`delete of missing map ${name}`);
          if (referenced('maps', name)) refuse(`delete of map ${name}, which is referred to`);
          t.maps.delete(name);
          break;
        case 'add element': case 'delete element': {
          const m = t.maps.get(name) ?? refuse(`elements of missing map ${name}`);
          changed.add(name);
          for (const e of o.elem as unknown[]) {
            if (verb === 'delete') { const k = JSON.stringify(e); if (!m.elems.delete(k)) refuse(`delete of missing element ${k} from ${name}`); continue; }
            const [kv, data] = e as [{ elem?: { val: unknown; comment?: string } } | unknown, unknown];
            const inner = (kv as { elem?: { val: unknown; comment?: string } }).elem;
            const k = JSON.stringify(inner?.val ?? kv);
            if (m.elems.has(k)) refuse(`element ${k} already in ${name}`);
            const d = JSON.stringify(data);
            for (const ch of refs(d).chains) if (!t.chains.has(ch)) refuse(`element of ${name} jumps to missing chain ${ch}`);
            m.elems.set(k, { data: d, ...(inner?.comment ? { comment: inner.comment } : {}) });
          }
          break;
        }
        default: refuse(`unexpected command ${verb} ${what}`);
      }
    }
    for (const [when, table] of [['before', before], ['after', t]] as const) {
      const live = reach(table).maps;
      for (const name of changed) if (live.get(name)?.interval) refuse(`elements of interval map ${name} change while the rules reach it (${when} the transaction)`);
    }
    return t;
  }

  /** `nft -j list map|chain inet <table> <name>`: the elements' or rules' counters by comment. */
  async list(kind: 'map' | 'chain', table: string, name: string): Promise<string> {
    const counter = (comment: string | undefined) => (comment && this.hits.get(comment)) || { packets: 0, bytes: 0 };
    if (table !== this.name) throw new QosError('QOS_ERR_KERNEL', `nft (fake): no table inet ${table}`);
    const out: unknown[] = [{ metainfo: { json_schema_version: 1 } }];
    if (kind === 'map') {
      const m = this.table.maps.get(name) ?? null;
      if (!m) throw new QosError('QOS_ERR_KERNEL', `nft (fake): no map ${name}`);
      out.push({ map: { family: 'inet', table, name, elem: [...m.elems].map(([k, e]) => [{ elem: { val: JSON.parse(k) as unknown, counter: counter(e.comment), ...(e.comment ? { comment: e.comment } : {}) } }, JSON.parse(e.data) as unknown]) } });
    } else {
      const rules = this.table.chains.get(name);
      if (!rules) throw new QosError('QOS_ERR_KERNEL', `nft (fake): no chain ${name}`);
      for (const r of rules) {
        const { expr, comment } = JSON.parse(r) as { expr: Record<string, unknown>[]; comment?: string };
        out.push({ rule: { family: 'inet', table, chain: name, expr: expr.map((x) => ('counter' in x ? { counter: counter(comment) } : x)), ...(comment ? { comment } : {}) } });
      }
    }
    return JSON.stringify({ nftables: out });
  }
}

/** What the base chains reach: chains (their rules) and maps, following jumps, gotos and maps'
 * verdicts. */
export function reach(t: FakeTable): { chains: Map<string, string[]>; maps: Map<string, FakeMap> } {
  const chains = new Map<string, string[]>(), maps = new Map<string, FakeMap>();
  const todo = [...t.base];
  while (todo.length) {
    const c = todo.pop()!;
    if (chains.has(c) || !t.chains.has(c)) continue;
    chains.set(c, t.chains.get(c)!);
    for (const r of t.chains.get(c)!) {
      const { chains: cs, maps: ms } = refs(r);
      todo.push(...cs);
      for (const m of ms) {
        const mm = t.maps.get(m)!;
        maps.set(m, mm);
        for (const e of mm.elems.values()) todo.push(...refs(e.data).chains);
      }
    }
  }
  return { chains, maps };
}
