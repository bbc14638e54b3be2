/* Packets and bytes per DSCP leaving this host, counted by the kernel for the dashboard's
 * Metrics page (daemon/metrics-history.ts): a table of its own (`inet <table>_dscp`, beside
 * the rules' table, which comes and goes with the rules) holding one dynamic set per family,
 * keyed by the DS field, whose elements carry counters. One rule per family in postrouting,
 * after every chain that may set the DS field (the rules' table at output -150, traffic
 * control's at postrouting -150), adds each packet to its DSCP's element: one hash update
 * per packet. User space reads the sets (one `nft -j -n list table`) once per sampling interval,
 * never per packet. docs/kernel-rules.md, "DSCP counters". */

import type { Counter } from './backend.js';
import { nft, nftJson, type NftDoc } from './nft.js';

/** The chain's place: postrouting, after the mangle (-150) and NAT (100) priorities. */
export const DSCP_HOOK = { hook: 'postrouting', priority: 300 } as const;

/** How the counters reach nftables: a document applied whole, the table listed as JSON with
 * numeric values (both sets in one nft run). The real one runs nft (in a network namespace if
 * given). */
export interface DscpRunner {
  apply(doc: NftDoc): Promise<void>;
  listTable(table: string): Promise<string>;
}

export function dscpRunner(netns?: string): DscpRunner {
  return {
    apply: (doc) => nftJson(doc, netns),
    listTable: (table) => nft(['-j', '-n', 'list', 'table', 'inet', table], netns),
  };
}

const V4 = 'd4';
const V6 = 'd6';
/** IPv6's traffic class sits across a byte boundary (bits 4-11). nft 1.0.6 computes `ip6 dscp`
 * as a set key with a shift in host byte order, which gives 0 for every packet on a
 * little-endian machine; so the key is the first 16 bits masked to the DSCP's six, a 16-bit
 * integer whose value is dscp << 6 (the mask in network order, applied byte by byte). */
const V6_MASK = 0x0fc0;
const V6_SHIFT = 6;

/** The document that (re)creates the table: replaces what a killed daemon left. Pure. */
export function dscpTableDoc(table: string): NftDoc {
  const t = { family: 'inet', table };
  // (no flags: nft's JSON takes no "dynamic", and gives it to a set an update statement fills)
  const set = (name: string, type: string) => ({ add: { set: { ...t, name, type, size: 64, stmt: [{ counter: null }] } } });
  const family = (f: 'ipv4' | 'ipv6') => ({ match: { op: '==', left: { meta: { key: 'nfproto' } }, right: f } });
  return {
    nftables: [
      { metainfo: { json_schema_version: 1 } },
      { add: { table: { family: 'inet', name: table } } },
      { delete: { table: { family: 'inet', name: table } } },
      { add: { table: { family: 'inet', name: table } } },
      set(V4, 'dscp'),
      set(V6, 'inet_service'),
      { add: { chain: { ...t, name: 'count', type: 'filter', hook: DSCP_HOOK.hook, prio: DSCP_HOOK.priority, policy: 'accept' } } },
      { add: { rule: { ...t, chain: 'count', expr: [family('ipv4'), { set: { op: 'update', elem: { payload: { protocol: 'ip', field: 'dscp' } }, set: `@${V4}` } }] } } },
      { add: { rule: { ...t, chain: 'count', expr: [family('ipv6'), { set: { op: 'update', elem: { '&': [{ payload: { base: 'nh', offset: 0, len: 16 } }, V6_MASK] }, set: `@${V6}` } }] } } },
    ],
  };
}

/** The document removing the table (adding it first makes the delete succeed when absent). */
export function dscpRemovalDoc(table: string): NftDoc {
  return { nftables: [{ metainfo: { json_schema_version: 1 } }, { add: { table: { family: 'inet', name: table } } }, { delete: { table: { family: 'inet', name: table } } }] };
}

/** The elements of the table's two sets (`nft -j -n list table`) as DSCP → counter, both
 * families summed; the IPv6 set's keys are shifted back (V6_SHIFT). Pure. */
export function parseDscpTable(json: string): Map<number, Counter> {
  const into = new Map<number, Counter>();
  const doc = JSON.parse(json) as { nftables?: { set?: { name?: string; elem?: unknown[] } }[] };
  for (const o of doc.nftables ?? []) {
    if (o.set?.name !== V4 && o.set?.name !== V6) continue;
    const v6 = o.set.name === V6;
    for (const e of o.set.elem ?? []) {
      const el = (e as { elem?: { val?: unknown; counter?: Counter } }).elem;
      if (typeof el?.val !== 'number' || !el.counter) continue;
      const dscp = v6 ? el.val >> V6_SHIFT : el.val;
      if (!(dscp >= 0 && dscp <= 63)) continue;
      const had = into.get(dscp) ?? { packets: 0, bytes: 0 };
      into.set(dscp, { packets: had.packets + el.counter.packets, bytes: had.bytes + el.counter.bytes });
    }
  }
  return into;
}

/** The table of DSCP counters: installed, read, removed. */
export class DscpCounters {
  constructor(readonly table: string, private readonly runner: DscpRunner = dscpRunner()) {}

  /** Creates the table anew (counters from zero). */
  install(): Promise<void> {
    return this.runner.apply(dscpTableDoc(this.table));
  }

  /** Packets and bytes sent so far at each DSCP seen, both families together. */
  async read(): Promise<Map<number, Counter>> {
    return parseDscpTable(await this.runner.listTable(this.table));
  }

  /** Removes the table; fine if it is not there. */
  remove(): Promise<void> {
    return this.runner.apply(dscpRemovalDoc(this.table));
  }
}
