/* The daemon's kernel rules over the nftables backend with the fake nft (nft-fake.ts): an
 * edit is applied, saved and counted; a dry run prints exactly what the edit then applies and
 * changes nothing; a stale or refused edit changes nothing. The real kernel:
 * src/e2e/kernel-rules.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '../policy/load.js';
import { ctMark, DEFAULT_CT_MASK } from './ctmark.js';
import { KernelRules } from './manager.js';
import { NftBackend } from './nft-backend.js';
import { NftFake, reach } from './nft-fake.js';
import type { KernelRuleDoc } from './rules.js';

const NO_KERNEL_RULES = parsePolicy('rules: []\n');
const rule = (name: string, port: number): KernelRuleDoc => ({ name, match: { remote: '192.0.2.0/24', proto: 'tcp', remote_port: port }, action: { dscp: 'AF21' } });
const quiet = { info() {}, warn() {}, error() {} };

async function rulesWithFake(t: { after(fn: () => void): void }): Promise<{ k: KernelRules; fake: NftFake; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-manager-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fake = new NftFake('qosd_test');
  const mark = ctMark(DEFAULT_CT_MASK);
  const file = join(dir, 'rules.json');
  const k = new KernelRules({ rulesFile: file, table: 'qosd_test', mode: 'on', ctMark: mark, log: quiet, backend: new NftBackend({ table: 'qosd_test', ctMark: mark, runner: fake }) });
  await k.start(NO_KERNEL_RULES);
  return { k, fake, file };
}

const listed = async (k: KernelRules) => ((await k.list()).rules as { name: string; packets: number }[]).map((r) => `${r.name}:${r.packets}`);

test('add, move and delete: applied by the backend, saved with the next revision, counters follow a moved rule', async (t) => {
  const { k, fake, file } = await rulesWithFake(t);
  assert.deepEqual(fake.applied.map((d) => d.nftables.slice(1)), [[{ add: { table: { family: 'inet', name: 'qosd_test' } } }, { delete: { table: { family: 'inet', name: 'qosd_test' } } }]],
    'no rules at start: only what a crashed daemon left is removed');
  let r = await k.edit(undefined, false, { op: 'add', rule: rule('web', 443) });
  assert.deepEqual([r.revision, r.applied], [1, true]);
  assert.ok(fake.applied.length >= 2, 'prepare and switch ran');
  assert.ok(fake.table.base.has('output'));
  await k.edit(1, false, { op: 'add', rule: rule('ssh', 22), position: 1 });
  fake.hits.set('r1', { packets: 7, bytes: 700 });
  assert.deepEqual(await listed(k), ['ssh:0', 'web:7']);
  r = await k.edit(2, false, { op: 'move', from: 'web', to: 1 });
  assert.equal(r.revision, 3);
  assert.deepEqual(await listed(k), ['web:7', 'ssh:0'], 'the moved rule keeps its id and counters');
  await k.edit(3, false, { op: 'delete', ref: 1 });
  assert.deepEqual(await listed(k), ['ssh:0']);
  const stored = JSON.parse(readFileSync(file, 'utf8')) as { revision: number; rules: KernelRuleDoc[] };
  assert.deepEqual([stored.revision, stored.rules.map((x) => x.name)], [4, ['ssh']]);
  await k.edit(4, false, { op: 'delete', ref: 'ssh' });
  assert.equal(fake.table.chains.size, 0, 'no rules: the table is removed');
  assert.equal(k.status().installed, false);
});

test('a dry run changes nothing and shows exactly the documents the edit then applies', async (t) => {
  const { k, fake, file } = await rulesWithFake(t);
  await k.edit(undefined, false, { op: 'add', rule: rule('web', 443) });
  const saved = readFileSync(file, 'utf8');
  const applied = fake.applied.length, table = fake.table, status = k.status();
  const edit = { op: 'add', rule: rule('dns', 53), position: 1 } as const;
  const dry = await k.edit(1, true, edit);
  assert.deepEqual([dry.revision, dry.applied, k.storedRevision, k.ruleSet.rules.length], [1, false, 1, 1]);
  assert.deepEqual([fake.applied.length, fake.table, readFileSync(file, 'utf8'), k.status()], [applied, table, saved, status]);
  const again = await k.edit(1, true, edit);
  assert.deepEqual(again.dry_run, dry.dry_run, 'a second dry run plans the same');
  // the same as nft text: the switch gives the new rule (r2, AF21) its number in byid4
  assert.match(dry.nft!, /^# transaction 2 of 2: switch/m);
  assert.match(dry.nft!, /^add element inet qosd_test byid4 \{ 0x00000200 comment "r2" : goto a4_d18 \}$/m);
  await k.edit(1, false, edit);
  const ran = fake.applied.slice(applied);
  assert.deepEqual(ran, (dry.dry_run as { nftables: unknown[] }[]).filter((d) => d.nftables.length > 1), 'the edit ran what the dry run showed');
});

test('a disabled rule keeps its place in the set and leaves the kernel; enabled again, it is back', async (t) => {
  const { k, fake } = await rulesWithFake(t);
  await k.edit(undefined, false, { op: 'add', rule: rule('web', 443) });
  await k.edit(1, false, { op: 'add', rule: rule('dns', 53) });
  // the rules the classification maps the table reaches hold (byid keeps a number until the
  // change after, for flows classified before)
  const inKernel = () => [...reach(fake.table).maps.values()].filter((m) => m.interval).flatMap((m) => [...m.elems.values()].map((e) => e.comment)).filter((c) => c !== undefined).sort();
  assert.deepEqual([...new Set(inKernel())], ['r1', 'r2']);
  await k.edit(2, false, { op: 'disable', ref: 'web' });
  assert.deepEqual([...new Set(inKernel())], ['r2'], 'web is no longer in any map');
  const listedNow = (await k.list()).rules as { name: string; position: number; enabled?: boolean }[];
  assert.deepEqual(listedNow.map((r) => [r.position, r.name, r.enabled]), [[1, 'web', false], [2, 'dns', undefined]]);
  assert.equal(k.status().rule_set_in_kernel, 1);
  await k.edit(3, false, { op: 'enable', ref: 1 });
  assert.deepEqual([...new Set(inKernel())], ['r1', 'r2'], 'back, under its own id');
});

test('an edit on a stale revision, and one the kernel refuses, change nothing', async (t) => {
  const { k, fake, file } = await rulesWithFake(t);
  await k.edit(undefined, false, { op: 'add', rule: rule('web', 443) });
  const saved = readFileSync(file, 'utf8');
  await assert.rejects(k.edit(0, false, { op: 'delete', ref: 1 }), (e: Error & { code?: string }) => e.code === 'QOS_ERR_RULES_STALE' && /at revision 1, not 0/.test(e.message));
  const apply = fake.apply.bind(fake);
  fake.apply = () => Promise.reject(new Error('nft failed (exit 1): refused'));
  await assert.rejects(k.edit(1, false, { op: 'add', rule: rule('ssh', 22) }), /refused/);
  fake.apply = apply;
  assert.deepEqual([k.storedRevision, k.ruleSet.rules.map((r) => r.name), readFileSync(file, 'utf8')], [1, ['web'], saved]);
  await assert.rejects(k.edit(1, false, { op: 'move', from: 'nope', to: 1 }), (e: Error & { code?: string }) => e.code === 'QOS_ERR_NOT_FOUND');
  const r = await k.edit(1, false, { op: 'add', rule: rule('ssh', 22) });
  assert.equal(r.revision, 2, 'the next edit goes through');
  assert.deepEqual(await listed(k), ['web:0', 'ssh:0']);
});
