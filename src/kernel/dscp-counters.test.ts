/* The DSCP counters' pure parts: the table's document (one rule per family, replacing a
 * predecessor's table) and the reading of `nft -j -n list table` output, IPv6 keys shifted back.
 * The kernel's own counts are checked in src/e2e/dscp-counters.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NftDoc } from './nft.js';
import { DscpCounters, dscpTableDoc, parseDscpTable, type DscpRunner } from './dscp-counters.js';

test('the table: replaced whole, two counting sets, one rule per family in postrouting', () => {
  const cmds = dscpTableDoc('qosd_dscp').nftables.slice(1) as Record<string, Record<string, Record<string, unknown>>>[];
  assert.deepEqual(cmds.slice(0, 3).map((c) => Object.keys(c)[0]), ['add', 'delete', 'add'], 'a killed daemon\'s table is replaced');
  const sets = cmds.filter((c) => c.add?.set).map((c) => c.add!.set!);
  assert.deepEqual(sets.map((s) => [s.name, s.stmt]), [['d4', [{ counter: null }]], ['d6', [{ counter: null }]]], 'a counter on each element');
  const chain = cmds.find((c) => c.add?.chain)!.add!.chain!;
  assert.equal(chain.hook, 'postrouting');
  const rules = cmds.filter((c) => c.add?.rule);
  assert.equal(rules.length, 2);
});

test('reading the sets: both families summed per DSCP, the IPv6 key (dscp << 6) shifted back', async () => {
  const set = (name: string, elems: [number, number, number][]) => ({ set: { name, elem: elems.map(([val, packets, bytes]) => ({ elem: { val, counter: { packets, bytes } } })) } });
  const applied: NftDoc[] = [];
  const runner: DscpRunner = {
    apply: async (d) => { applied.push(d); },
    listTable: async () => JSON.stringify({ nftables: [{ metainfo: {} }, { table: { name: 't_dscp' } }, set('d4', [[46, 7, 896], [0, 2, 200]]), set('d6', [[46 << 6, 3, 444], [34 << 6, 2, 296]]), { chain: { name: 'count' } }] }),
  };
  const c = new DscpCounters('t_dscp', runner);
  await c.install();
  const got = await c.read();
  assert.deepEqual(Object.fromEntries(got), { 0: { packets: 2, bytes: 200 }, 34: { packets: 2, bytes: 296 }, 46: { packets: 10, bytes: 1340 } });
  await c.remove();
  assert.equal(applied.length, 2);
  assert.deepEqual(parseDscpTable('{"nftables":[{"set":{"name":"d4"}},{"set":{"name":"d6"}}]}'), new Map(), 'sets with no element yet');
});
