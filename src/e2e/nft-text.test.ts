/* The nft text of a dry run (kernel/nft-text.ts) is what the change does: over a sequence of
 * changes (a generated set, moves, deletes, inserts, action and override changes, then no
 * rules), each transaction's JSON document goes to one network namespace (as the daemon
 * applies it) and its text, as `nft -f` commands, to another; after every transaction both
 * namespaces list the same table. Under the whole mark and the default mask. */

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRules } from '../bench/rules-gen.js';
import { runSync } from '../exec.js';
import { ctMark, DEFAULT_CT_MASK } from '../kernel/ctmark.js';
import { NftBackend } from '../kernel/nft-backend.js';
import type { NftDoc, NftRunner } from '../kernel/nft.js';
import { kernelAction, ruleAtoms, type KernelRuleDoc } from '../kernel/rules.js';
import { requireRoot, requireTools } from '../prerequisites.js';

requireRoot('it creates network namespaces');
requireTools('ip', 'nft');

const id = `qt${process.pid % 10000}`;
const [JSON_NS, TEXT_NS] = [`${id}j`, `${id}t`];
const dir = mkdtempSync(join(tmpdir(), 'qosd-nft-text-'));
for (const ns of [JSON_NS, TEXT_NS]) runSync(['ip', 'netns', 'add', ns]);
after(() => {
  for (const ns of [JSON_NS, TEXT_NS]) runSync(['ip', 'netns', 'del', ns], { ok: 'any' });
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
const nftIn = (ns: string, ...args: string[]) => runSync(['nft', ...args], { netns: ns, timeoutMs: 120_000 }).stdout;
const listed = (ns: string, table: string) => runSync(['nft', 'list', 'table', 'inet', table], { netns: ns, ok: 'any' }).stdout;

const names = { users: new Map([['root', 0]]), groups: new Map([['root', 0]]) };
const planRule = (id: string, d: KernelRuleDoc) => ({ rule: { id, origin: 'rules' as const, atoms: ruleAtoms(d.match, names), action: kernelAction(d.action) }, actionKey: JSON.stringify(kernelAction(d.action)) });

/** Rules the generator does not make: priorities, tos, override, gid, icmp. */
const EXTRA: KernelRuleDoc[] = [
  { name: 'x-prio', match: { remote: '192.0.2.0/24', proto: 'tcp', remote_port: '8000-8100' }, action: { dscp: 'AF31', priority: 5 } },
  { name: 'x-over', match: { remote: '2001:db8::/32', proto: 'udp' }, action: { tos: 184, override: true } },
  { name: 'x-gid', match: { gid: 0, remote_port: 9000 }, action: { priority: 2 } },
  { name: 'x-icmp', match: { proto: 'icmp' }, action: { dscp: 'CS2', override: true } },
];

for (const [label, mask] of [['the default mask', DEFAULT_CT_MASK], ['the whole mark', 0xffffffff]] as const) {
  test(`${label}: every transaction's nft text makes the same table as its JSON`, async () => {
    const table = `qt${files++}`;
    // the JSON goes where the backend applies it; then its text, from the dry run, to the other
    const runner: NftRunner = {
      apply: async (doc: NftDoc) => { const f = join(dir, `tx${files++}.json`); writeFileSync(f, JSON.stringify(doc)); nftIn(JSON_NS, '-j', '-f', f); },
      list: async (kind, t, name) => nftIn(JSON_NS, '-j', 'list', kind, 'inet', t, name),
      unavailable: async () => null,
    };
    const backend = new NftBackend({ table, ctMark: ctMark(mask), runner });
    let docs = [...EXTRA, ...generateRules(300, 11)].map((d, i) => ({ d, id: `r${i + 1}` }));
    let next = docs.length + 1;
    const steps: [string, () => void][] = [
      ['a new set', () => {}],
      ['moves', () => { for (const [from, to] of [[3, 250], [120, 0], [299, 40]] as const) { const [x] = docs.splice(from, 1); docs.splice(to, 0, x!); } }],
      ['deletes and inserts', () => { docs.splice(10, 30); docs.splice(5, 0, ...generateRules(20, 12, false).map((d) => ({ d, id: `r${next++}` }))); }],
      ['actions and override changed', () => { docs = docs.map((x, i) => (i % 17 === 0 ? { d: { ...x.d, action: { dscp: 'EF', override: i % 2 === 0 } }, id: `r${next++}` } : x)); }],
      ['no rules', () => { docs = []; }],
    ];
    for (const [step, edit] of steps) {
      edit();
      const plan = backend.plan(docs.map((x) => planRule(x.id, x.d)));
      const { text } = backend.describe(plan);
      const transactions = text.split(/^# transaction .*\n/m).filter((t) => t.trim());
      await backend.apply(plan);
      for (const tx of transactions) {
        const f = join(dir, `tx${files++}.nft`);
        writeFileSync(f, tx);
        nftIn(TEXT_NS, '-f', f);
      }
      const [j, t] = [listed(JSON_NS, table), listed(TEXT_NS, table)];
      assert.equal(t, j, `${step}: the text made another table`);
      if (docs.length) assert.match(j, /vmap @byid4/, `${step}: a table with rules in it`);
      else assert.equal(j, '', `${step}: the table removed`);
    }
  });
}
