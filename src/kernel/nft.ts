/* The nftables backend: owns one table (`inet qosd` unless told otherwise) and nothing else.
 * Every change is one transaction: the desired table (layers.ts) is diffed against the one
 * last applied and the difference — or, the first time, "add table; delete table; add
 * table ..." which replaces whatever a crashed daemon left — goes to `nft -j -f FILE` as one
 * JSON document, which the kernel commits whole or not at all. */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QosError } from '../errors.js';
import type { ChainPlan, ElemPlan, MapPlan, TablePlan } from './layers.js';

export interface Counter { packets: number; bytes: number }

/** Runs nft with arguments; resolves with stdout, rejects with QOS_ERR_KERNEL and stderr. */
export function nft(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('nft', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('error', (e) => reject(new QosError('QOS_ERR_KERNEL', `cannot run nft: ${e.message}`, [], { cause: e })));
    p.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new QosError('QOS_ERR_KERNEL', `nft failed (exit ${code}): ${err.trim().split('\n').slice(0, 6).join(' | ') || 'no message'}`));
    });
  });
}

/** Applies a JSON document (nft cannot read JSON from a pipe when spawned from Node). */
export async function nftJson(doc: { nftables: unknown[] }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-nft-'));
  try {
    const file = join(dir, 'tx.json');
    writeFileSync(file, JSON.stringify(doc));
    await nft(['-j', '-f', file]);
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

export class NftTable {
  private applied: TablePlan | null = null;

  constructor(readonly table: string) {}

  /** The transaction turning the applied table into `next` (all of it the first time). */
  transaction(next: TablePlan): unknown[] {
    const t = { family: FAMILY, table: this.table };
    const cmds: unknown[] = [];
    const prev = this.applied;
    const addChain = (name: string, c: ChainPlan) => cmds.push({ add: { chain: { ...t, name, ...(c.base ? { type: 'filter', hook: 'output', prio: -150, policy: 'accept' } : {}) } } });
    const addRules = (name: string, c: ChainPlan) => { for (const r of c.rules) cmds.push({ add: { rule: { ...t, chain: name, expr: r.expr, ...(r.comment ? { comment: r.comment } : {}) } } }); };
    const elem = (e: ElemPlan) => [e.comment ? { elem: { val: e.val, comment: e.comment } } : e.val, e.data];
    const addElems = (name: string, elems: ElemPlan[]) => { if (elems.length) cmds.push({ add: { element: { ...t, name, elem: elems.map(elem) } } }); };
    const addMap = (name: string, m: MapPlan) => {
      cmds.push({ add: { map: { ...t, name, type: m.type.length === 1 ? m.type[0] : m.type, map: m.data, ...(m.type[0] === 'mark' && m.type.length === 1 ? {} : { flags: ['interval'] }), ...(m.counter ? { stmt: [{ counter: null }] } : {}) } } });
      addElems(name, [...m.elems.values()]);
    };
    const same = (a: ElemPlan, b: ElemPlan) => JSON.stringify(a.data) === JSON.stringify(b.data) && a.comment === b.comment;
    if (!prev) {
      cmds.push({ add: { table: { family: FAMILY, name: this.table } } }, { delete: { table: { family: FAMILY, name: this.table } } }, { add: { table: { family: FAMILY, name: this.table } } });
      for (const [name, c] of next.chains) addChain(name, c);
      for (const [name, m] of next.maps) addMap(name, m);
      for (const [name, c] of next.chains) addRules(name, c);
      return cmds;
    }
    const changedChains: string[] = [];
    for (const [name, c] of next.chains) {
      const old = prev.chains.get(name);
      if (!old) { addChain(name, c); changedChains.push(name); }
      else if (JSON.stringify(old.rules) !== JSON.stringify(c.rules)) changedChains.push(name);
    }
    for (const [name, m] of next.maps) if (!prev.maps.has(name)) addMap(name, m);
    for (const [name, m] of next.maps) {
      const old = prev.maps.get(name);
      if (!old) continue;
      const gone = [...old.elems].filter(([k, e]) => { const n = m.elems.get(k); return !n || !same(n, e); });
      if (gone.length) cmds.push({ delete: { element: { ...t, name, elem: gone.map(([, e]) => e.val) } } });
      addElems(name, [...m.elems].filter(([k, e]) => { const o = old.elems.get(k); return !o || !same(o, e); }).map(([, e]) => e));
    }
    for (const name of changedChains) {
      if (prev.chains.has(name)) cmds.push({ flush: { chain: { ...t, name } } });
      addRules(name, next.chains.get(name)!);
    }
    const goneChains = [...prev.chains.keys()].filter((n) => !next.chains.has(n));
    for (const name of goneChains) cmds.push({ flush: { chain: { ...t, name } } });
    for (const name of prev.maps.keys()) if (!next.maps.has(name)) cmds.push({ delete: { map: { ...t, name } } });
    for (const name of goneChains) cmds.push({ delete: { chain: { ...t, name } } });
    return cmds;
  }

  /** Applies `next` in one transaction; with dryRun, only returns the document. */
  async apply(next: TablePlan, dryRun = false): Promise<{ doc: { nftables: unknown[] }; commands: number }> {
    const cmds = this.transaction(next);
    const doc = { nftables: [{ metainfo: { json_schema_version: 1 } }, ...cmds] };
    if (dryRun || cmds.length === 0) return { doc, commands: cmds.length };
    await nftJson(doc);
    this.applied = next;
    return { doc, commands: cmds.length };
  }

  /** Packets and bytes each rule decided (by rule id), from the kernel's counters: the rule
   * maps of the DSCP-0 sequences and the maps and rules of the override sequences. */
  async counters(): Promise<Map<string, Counter>> {
    const m = new Map<string, Counter>();
    const plan = this.applied;
    if (!plan) return m;
    const add = (rule: string | undefined, c: Counter | undefined) => {
      if (!rule || !c) return;
      const k = m.get(rule) ?? { packets: 0, bytes: 0 };
      m.set(rule, { packets: k.packets + c.packets, bytes: k.bytes + c.bytes });
    };
    const lists = [
      ...[...plan.maps.keys()].filter((n) => /^(byid|o)[46]/.test(n)).map((n) => ['map', n]),
      ...[...plan.chains.keys()].filter((n) => /^o[46]$/.test(n)).map((n) => ['chain', n]),
    ];
    const outs = await Promise.all(lists.map(([kind, name]) => nft(['-j', 'list', kind!, FAMILY, this.table, name!])));
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

  /** Removes the table (and nothing else); fine if it is not there. */
  /** The document removing the table: adding it first makes deleting it succeed when absent. */
  removal(): { nftables: unknown[] } {
    return { nftables: [{ add: { table: { family: FAMILY, name: this.table } } }, { delete: { table: { family: FAMILY, name: this.table } } }] };
  }

  async remove(): Promise<void> {
    this.applied = null;
    await nftJson(this.removal());
  }
}
