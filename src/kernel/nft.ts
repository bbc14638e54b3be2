/* The nftables backend: owns one table (`inet qosd` unless told otherwise) and nothing else.
 *
 * A change is applied in two transactions, because nftables makes a transaction's rules and
 * hash-set elements visible at once but swaps in the new contents of interval maps (pipapo,
 * rbtree) one map at a time *after* that: a packet meeting new rules over a map not yet
 * swapped would be classified half-configured. So interval maps are never changed in place:
 *   1. prepare: every interval map whose contents change is created anew under a new name
 *      (big layers are split into chunks, layers.ts, so that a small change rebuilds a few
 *      hundred elements), with new chains; nothing live refers to them yet. What the
 *      previous change left unreferenced is deleted here.
 *   2. switch: the live chains are rewritten to refer to the new maps, and elements are added
 *      to the hash maps (byid4/6) — all visible at once, over maps already complete.
 * The first time, step 1 also replaces whatever table a crashed daemon left ("add table;
 * delete table; add table"), and step 2 adds the base chain. Each step is one `nft -j -f`
 * document, committed whole or not at all. */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QosError } from '../errors.js';
import type { Counter } from './backend.js';
import { run } from '../exec.js';
import { elemData, elemVal, fnv1a, type ChainPlan, type ElemPlan, type MapPlan, type RulePlan, type TablePlan } from './plan.js';

export type { Counter } from './backend.js';

/** Runs nft with arguments (in a network namespace if given); resolves with stdout, rejects
 * with QOS_ERR_KERNEL and stderr. */
export function nft(args: string[], netns?: string): Promise<string> {
  return run(['nft', ...args], { code: 'QOS_ERR_KERNEL', pkg: 'nftables', netns }).then((r) => r.stdout);
}

/** Applies a JSON document (nft cannot read JSON from a pipe when spawned from Node). */
export async function nftJson(doc: NftDoc, netns?: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-nft-'));
  try {
    const file = join(dir, 'tx.json');
    writeFileSync(file, JSON.stringify(doc));
    await nft(['-j', '-f', file], netns);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Why nftables cannot be used here, or null. */
export async function nftUnavailable(): Promise<string | null> {
  try {
    await nft(['-j', 'list', 'tables']);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const FAMILY = 'inet';

/** How a table reaches nftables: `nft -j -f` with a document (committed whole or refused),
 * `nft -j list` of one of its maps or chains, and whether nft works here. The real one runs
 * nft; tests give the fake (nft-fake.ts). */
export interface NftRunner {
  apply(doc: NftDoc): Promise<void>;
  list(kind: 'map' | 'chain', table: string, name: string): Promise<string>;
  unavailable(): Promise<string | null>;
}
export const nftRunner: NftRunner = {
  apply: nftJson,
  list: (kind, table, name) => nft(['-j', 'list', kind, FAMILY, table, name]),
  unavailable: nftUnavailable,
};
/** Where the table's base chain sees packets: every locally sent packet, after the routing
 * decision, at the mangle priority (before filter chains at 0). */
export const BASE_CHAIN = { family: FAMILY, hook: 'output', priority: -150 } as const;

/** An nft document: what `nft -j -f` is given. */
export interface NftDoc { nftables: unknown[] }
const doc = (cmds: unknown[]): NftDoc => ({ nftables: [{ metainfo: { json_schema_version: 1 } }, ...cmds] });

/** A chain as rendered for the kernel: its rules as JSON text (maps under their kernel names). */
interface KChain { base: boolean; rules: string[] }

/** What the table holds in the kernel. */
interface Kernel {
  /** every map, by kernel name; for hash maps, the elements the kernel holds */
  maps: Map<string, MapPlan>;
  /** interval maps' signatures, to find one with given contents */
  sigs: Map<string, string>;
  chains: Map<string, KChain>;
}
const emptyKernel = (): Kernel => ({ maps: new Map(), sigs: new Map(), chains: new Map() });

/** What live rules use: the plan's map names → kernel names, chains, hash-map elements. */
interface Live { names: Map<string, string>; chains: Set<string>; maps: Map<string, MapPlan> }

/** A map's contents as a short text: equal contents give equal signatures whatever the
 * order of elements (a sum of hashes); equality is then checked element by element. */
function signature(m: MapPlan): string {
  let a = 0, b = 0;
  for (const e of m.elems.values()) {
    const t = `${e.key}>${e.data}#${e.comment ?? ''}`;
    a = (a + fnv1a(t)) >>> 0;
    b = (b + fnv1a(t, 0x2545f491)) >>> 0;
  }
  return `${m.fam}|${m.type.join('.')}|${m.data}|${m.counter}|${m.elems.size}|${a.toString(36)}|${b.toString(36)}`;
}
const sameElem = (x: ElemPlan | undefined, y: ElemPlan) => !!x && x.data === y.data && x.comment === y.comment;
function sameContents(x: MapPlan, y: MapPlan): boolean {
  if (x.elems.size !== y.elems.size || x.fields.join() !== y.fields.join()) return false;
  for (const [k, e] of y.elems) if (!sameElem(x.elems.get(k), e)) return false;
  return true;
}

/** The two transactions of one change (see the top), and what the table holds after each. */
export interface Change { prepare: unknown[]; switch: unknown[]; afterPrepare: Kernel; afterSwitch: Kernel; live: Live; version: number }

export class NftTable {
  private kernel: Kernel | null = null;
  private live: Live = { names: new Map(), chains: new Set(), maps: new Map() };
  private version = 0;
  /** chains of earlier plans rendered, for plans that reuse them (plan.ts: a rule number's) */
  private readonly rendered = new WeakMap<ChainPlan, KChain>();

  constructor(readonly table: string, private readonly runner: NftRunner = nftRunner) {}

  /** The commands turning the table into `next`, in two transactions. Changes nothing: the
   * counter naming new maps moves on when the change is applied. */
  change(next: TablePlan): Change {
    let version = this.version;
    const t = { family: FAMILY, table: this.table };
    const first = this.kernel === null;
    const K = this.kernel ?? emptyKernel();
    const live = this.live;
    const prepare: unknown[] = [], sw: unknown[] = [];
    const elem = (m: MapPlan, e: ElemPlan) => {
      const val = elemVal(m, e);
      const data = elemData(m, e);
      return [e.comment ? { elem: { val, comment: e.comment } } : val, data];
    };
    const addElems = (to: unknown[], name: string, m: MapPlan, elems: ElemPlan[]) => {
      if (elems.length) to.push({ add: { element: { ...t, name, elem: elems.map((e) => elem(m, e)) } } });
    };
    const delElems = (to: unknown[], name: string, m: MapPlan, elems: ElemPlan[]) => {
      if (elems.length) to.push({ delete: { element: { ...t, name, elem: elems.map((e) => elemVal(m, e)) } } });
    };

    // Kernel names for the plan's maps: an interval map with the same contents as one in the
    // kernel is that map; otherwise it is created under a new name. Hash maps keep their
    // names and gain elements.
    const names = new Map<string, string>();
    const created = new Map<string, MapPlan>();
    const sigs = new Map<string, string>();
    const bySig = new Map([...K.sigs].map(([n, sig]) => [sig, n]));
    const grow = new Map<string, ElemPlan[]>();
    for (const [name, m] of next.maps) {
      if (!m.interval) {
        names.set(name, name);
        const k = K.maps.get(name);
        if (!k) created.set(name, m);
        else {
          const add = [...m.elems.values()].filter((e) => !sameElem(k.elems.get(e.key), e));
          if (add.length) grow.set(name, add);
        }
        continue;
      }
      const same = live.names.get(name);
      if (same !== undefined && K.maps.has(same) && sameContents(K.maps.get(same)!, m)) { names.set(name, same); continue; }
      const sig = signature(m);
      const have = bySig.get(sig);
      if (have !== undefined && sameContents(K.maps.get(have) ?? created.get(have)!, m)) { names.set(name, have); continue; }
      const kname = `${name}_v${++version}`;
      names.set(name, kname);
      created.set(kname, m);
      sigs.set(kname, sig);
      bySig.set(sig, kname);
    }
    const render = (r: RulePlan) => JSON.stringify({ expr: r.expr, ...(r.comment ? { comment: r.comment } : {}) })
      .replace(/"@([A-Za-z0-9_]+)"/g, (_, n: string) => `"@${names.get(n) ?? n}"`);
    const chains = new Map<string, KChain>();
    for (const [name, c] of next.chains) {
      let k = this.rendered.get(c);
      if (!k) {
        k = { base: !!c.base, rules: c.rules.map(render) };
        // a chain naming no map renders the same whatever the maps are called
        if (!k.rules.some((r) => r.includes('"@'))) this.rendered.set(c, k);
      }
      chains.set(name, k);
    }
    const addRules = (to: unknown[], name: string, c: KChain) => {
      for (const r of c.rules) to.push({ add: { rule: { ...t, chain: name, ...(JSON.parse(r) as object) } } });
    };
    const addChain = (to: unknown[], name: string, c: KChain) =>
      to.push({ add: { chain: { ...t, name, ...(c.base ? { type: 'filter', hook: BASE_CHAIN.hook, prio: BASE_CHAIN.priority, policy: 'accept' } : {}) } } });

    // 1. prepare: delete what neither the live rules nor the next ones refer to (left by the
    // change before); create the new maps and chains, which nothing live refers to yet.
    // Chains no live rule reaches are emptied first, so that nothing holds what is deleted,
    // and those the next rules use are filled anew here.
    const A: Kernel = { maps: new Map(K.maps), sigs: new Map(K.sigs), chains: new Map(K.chains) };
    if (first) prepare.push({ add: { table: { family: FAMILY, name: this.table } } }, { delete: { table: { family: FAMILY, name: this.table } } }, { add: { table: { family: FAMILY, name: this.table } } });
    const needed = new Set([...live.names.values(), ...names.values()]);
    const staleMaps = [...K.maps.keys()].filter((n) => !needed.has(n));
    const dead = [...K.chains.keys()].filter((n) => !live.chains.has(n));
    for (const name of dead) prepare.push({ flush: { chain: { ...t, name } } });
    for (const [name, k] of K.maps) {
      if (k.interval || !needed.has(name)) continue;
      const keep = (key: string) => !!(live.maps.get(name)?.elems.has(key) || next.maps.get(name)?.elems.has(key));
      const gone = [...k.elems.values()].filter((e) => !keep(e.key));
      delElems(prepare, name, k, gone);
      if (gone.length) A.maps.set(name, { ...k, elems: new Map([...k.elems].filter(([key]) => keep(key))) });
    }
    for (const name of staleMaps) { prepare.push({ delete: { map: { ...t, name } } }); A.maps.delete(name); A.sigs.delete(name); }
    for (const name of dead) {
      A.chains.delete(name);
      if (!chains.has(name)) prepare.push({ delete: { chain: { ...t, name } } });
    }
    const fill = [...chains].filter(([name, c]) => !A.chains.has(name) && !c.base);
    for (const [name] of fill) if (!K.chains.has(name)) prepare.push({ add: { chain: { ...t, name } } });
    for (const [name, m] of created) {
      prepare.push({ add: { map: { ...t, name, type: m.type.length === 1 ? m.type[0] : m.type, map: m.data, ...(m.interval ? { flags: ['interval'] } : {}), ...(m.counter ? { stmt: [{ counter: null }] } : {}) } } });
      addElems(prepare, name, m, [...m.elems.values()]);
      A.maps.set(name, m.interval ? m : { ...m, elems: new Map(m.elems) });
      if (m.interval) A.sigs.set(name, sigs.get(name)!);
    }
    for (const [name, c] of fill) { addRules(prepare, name, c); A.chains.set(name, c); }

    // 2. switch: hash-map elements, and the live chains rewritten, visible at once
    const B: Kernel = { maps: new Map(A.maps), sigs: A.sigs, chains: new Map(A.chains) };
    for (const [name, add] of grow) {
      const k = A.maps.get(name)!;
      delElems(sw, name, k, add.filter((e) => k.elems.has(e.key)));
      addElems(sw, name, k, add);
      const elems = new Map(k.elems);
      for (const e of add) elems.set(e.key, e);
      B.maps.set(name, { ...k, elems });
    }
    for (const [name, c] of chains) {
      const old = A.chains.get(name);
      B.chains.set(name, c);
      if (!old) { addChain(sw, name, c); addRules(sw, name, c); continue; }
      if (old === c) continue;
      if (old.rules.length === c.rules.length && old.rules.every((r, i) => r === c.rules[i])) continue;
      sw.push({ flush: { chain: { ...t, name } } });
      addRules(sw, name, c);
    }
    const liveMaps = new Map<string, MapPlan>();
    for (const [name, m] of next.maps) if (!m.interval) liveMaps.set(name, m);
    return { prepare, switch: sw, afterPrepare: A, afterSwitch: B, live: { names, chains: new Set(chains.keys()), maps: liveMaps }, version };
  }

  /** The two documents of a change (prepare, switch) and how many commands they hold. */
  static documents(c: Change): { docs: NftDoc[]; commands: number } {
    return { docs: [doc(c.prepare), doc(c.switch)], commands: c.prepare.length + c.switch.length };
  }

  /** Applies a change made by `change` from the table as it is now. `meanwhile` runs once,
   * while the first nft process works. */
  async apply(c: Change, meanwhile?: () => void): Promise<{ docs: NftDoc[]; commands: number }> {
    const { docs, commands } = NftTable.documents(c);
    const run = async (d: NftDoc) => { const p = this.runner.apply(d); meanwhile?.(); meanwhile = undefined; await p; };
    this.version = c.version; // maps of a change that fails half-way keep their names taken
    if (c.prepare.length) {
      await run(docs[0]!);
      this.kernel = c.afterPrepare; // the switch may fail: the next change deletes what this one made
    }
    if (c.switch.length) await run(docs[1]!);
    meanwhile?.();
    this.kernel = c.afterSwitch;
    this.live = c.live;
    return { docs, commands };
  }

  /** Packets and bytes each rule decided (by rule id), from the kernel's counters: the rule
   * maps of the DSCP-0 sequences and the maps and rules of the override sequences. */
  async counters(): Promise<Map<string, Counter>> {
    const m = new Map<string, Counter>();
    if (!this.kernel) return m;
    const add = (rule: string | undefined, c: Counter | undefined) => {
      if (!rule || !c) return;
      const k = m.get(rule) ?? { packets: 0, bytes: 0 };
      m.set(rule, { packets: k.packets + c.packets, bytes: k.bytes + c.bytes });
    };
    const lists = [
      ...[...this.live.names].filter(([n]) => /^(byid|o)[46]/.test(n)).map(([, k]) => ['map', k]),
      ...[...this.live.chains].filter((n) => /^o[46]$/.test(n)).map((n) => ['chain', n]),
    ];
    const outs = await Promise.all(lists.map(([kind, name]) => this.runner.list(kind as 'map' | 'chain', this.table, name!)));
    for (const out of outs) {
      for (const o of (JSON.parse(out) as { nftables: Record<string, unknown>[] }).nftables) {
        for (const pair of (o.map as { elem?: unknown[] } | undefined)?.elem ?? []) {
          const e = (pair as [{ elem?: { comment?: string; counter?: Counter } }])[0]?.elem;
          add(e?.comment, e?.counter);
        }
        const rule = o.rule as { comment?: string; expr: { counter?: Counter }[] } | undefined;
        if (rule?.comment) add(rule.comment, rule.expr.find((x) => x.counter)?.counter);
      }
    }
    return m;
  }

  /** The document removing the table: adding it first makes deleting it succeed when absent. */
  removal(): NftDoc {
    return doc([{ add: { table: { family: FAMILY, name: this.table } } }, { delete: { table: { family: FAMILY, name: this.table } } }]);
  }

  /** Removes the table (and nothing else); fine if it is not there. */
  async remove(): Promise<void> {
    this.kernel = null;
    this.live = { names: new Map(), chains: new Set(), maps: new Map() };
    await this.runner.apply(this.removal());
  }
}
