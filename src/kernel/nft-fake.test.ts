/* The fake nftables refuses what the kernel would refuse, and what nft.ts's two transactions
 * exist to avoid, whole: a refused document leaves the table as it was. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NftFake } from './nft-fake.js';

const t = { family: 'inet', table: 'q' };
const doc = (...cmds: unknown[]) => ({ nftables: [{ metainfo: { json_schema_version: 1 } }, ...cmds] });
const intervalMap = (name: string) => ({ add: { map: { ...t, name, type: 'ipv4_addr', map: 'verdict', flags: ['interval'] } } });
const elem = (name: string, addr: string, chain: string) => ({ add: { element: { ...t, name, elem: [[{ prefix: { addr, len: 32 } }, { goto: { target: chain } }]] } } });
const lookup = (chain: string, map: string) => ({ add: { rule: { ...t, chain, expr: [{ vmap: { key: { payload: { protocol: 'ip', field: 'daddr' } }, data: `@${map}` } }] } } });
const base = { add: { chain: { ...t, name: 'output', type: 'filter', hook: 'output', prio: -150, policy: 'accept' } } };

async function live(): Promise<NftFake> {
  const f = new NftFake('q');
  await f.apply(doc({ add: { table: { family: 'inet', name: 'q' } } }, { add: { chain: { ...t, name: 'a' } } }, intervalMap('m_v1'), elem('m_v1', '10.0.0.1', 'a')));
  await f.apply(doc(base, lookup('output', 'm_v1')));
  return f;
}

test('a rule naming a missing map or chain is refused, and the document changes nothing', async () => {
  const f = await live();
  const before = f.table;
  await assert.rejects(f.apply(doc({ add: { chain: { ...t, name: 'b' } } }, lookup('b', 'nope'))), (e: Error & { code?: string }) => e.code === 'QOS_ERR_KERNEL' && /missing map nope/.test(e.message));
  assert.equal(f.table, before);
  assert.ok(!f.table.chains.has('b'));
  await assert.rejects(f.apply(doc(elem('m_v1', '10.0.0.2', 'gone'))), /missing chain gone/);
});

test('an element or map added twice, and deleting what is referred to, are refused', async () => {
  const f = await live();
  await assert.rejects(f.apply(doc(intervalMap('m_v1'))), /map m_v1 exists/);
  await assert.rejects(f.apply(doc({ delete: { map: { ...t, name: 'm_v1' } } })), /m_v1, which is referred to/);
  await assert.rejects(f.apply(doc({ delete: { chain: { ...t, name: 'a' } } })), /a, which is referred to/);
  const g = new NftFake('q');
  await g.apply(doc({ add: { chain: { ...t, name: 'a' } } }, { add: { map: { ...t, name: 'h', type: 'mark', map: 'verdict' } } }));
  const add = { add: { element: { ...t, name: 'h', elem: [[1, { goto: { target: 'a' } }]] } } };
  await g.apply(doc(add));
  await assert.rejects(g.apply(doc(add)), /element 1 already in h/);
});

test('the elements of an interval map the rules reach, or will reach after the transaction, cannot change', async () => {
  const f = await live();
  await assert.rejects(f.apply(doc(elem('m_v1', '10.0.0.2', 'a'))), /interval map m_v1 change while the rules reach it \(before/);
  // a new map filled in the transaction that points a live chain at it: swapped in too late
  await assert.rejects(f.apply(doc(intervalMap('m_v2'), elem('m_v2', '10.0.0.2', 'a'), { flush: { chain: { ...t, name: 'output' } } }, lookup('output', 'm_v2'))), /m_v2 change while the rules reach it \(after/);
  // filled first, switched to in a second transaction: accepted
  await f.apply(doc(intervalMap('m_v2'), elem('m_v2', '10.0.0.2', 'a')));
  await f.apply(doc({ flush: { chain: { ...t, name: 'output' } } }, lookup('output', 'm_v2')));
  assert.deepEqual(f.table.chains.get('output'), [JSON.stringify({ expr: [{ vmap: { key: { payload: { protocol: 'ip', field: 'daddr' } }, data: '@m_v2' } }] })]);
});

test('counters are listed as the test set them, by comment', async () => {
  const f = new NftFake('q');
  await f.apply(doc({ add: { chain: { ...t, name: 'a' } } }, { add: { map: { ...t, name: 'h', type: 'mark', map: 'verdict' } } },
    { add: { element: { ...t, name: 'h', elem: [[{ elem: { val: 1, comment: 'r1' } }, { goto: { target: 'a' } }]] } } }));
  f.hits.set('r1', { packets: 3, bytes: 180 });
  const listed = JSON.parse(await f.list('map', 'q', 'h')) as { nftables: { map?: { elem: [{ elem: { counter: unknown; comment: string } }, unknown][] } }[] };
  assert.deepEqual(listed.nftables[1]!.map!.elem[0]![0].elem, { val: 1, counter: { packets: 3, bytes: 180 }, comment: 'r1' });
});
