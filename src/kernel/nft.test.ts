/* The two transactions of a change (nft.ts) against the fake nftables (nft-fake.ts): over a
 * sequence of rule sets (random edits of generated sets, big enough for chunked layers),
 * every command is valid where it runs, the prepare step leaves everything live rules reach
 * as it was, the switch step touches no interval map, and afterwards the rules reach exactly
 * the planned table. The real kernel is exercised by src/e2e/kernel-rules.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateRules } from '../bench/rules-gen.js';
import { ctMark, DEFAULT_CT_MASK, type CtMark } from './ctmark.js';
import { elemData, elemVal, planTable, type TablePlan } from './plan.js';
import { NftTable, type NftRunner } from './nft.js';
import { NftFake, reach, type FakeMap, type FakeTable } from './nft-fake.js';
import { kernelAction, ruleAtoms, type KernelRuleDoc, type KRule } from './rules.js';

/** A reached table with each map reference replaced by the map's contents: equal for the
 * model and for the plan exactly when they classify alike. */
function canonical(chains: Map<string, string[]>, contents: (name: string) => Map<string, string>): string {
  const out: string[] = [];
  for (const [name, rules] of [...chains].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`${name}: ${rules.map((r) => r.replace(/"@([^"]+)"/g, (_, m: string) => JSON.stringify([...contents(m)].sort()))).join(' ; ')}`);
  }
  return out.join('\n');
}

/** A map's elements as key → data (comments are not compared). */
const contents = (m: FakeMap) => new Map([...m.elems].map(([k, e]) => [k, e.data]));

type Cmd = Record<string, Record<string, Record<string, unknown>>>;

function planContents(plan: TablePlan, name: string): Map<string, string> {
  const m = plan.maps.get(name);
  if (!m) return new Map();
  return new Map([...m.elems.values()].map((e) => [JSON.stringify(elemVal(m, e)), JSON.stringify(elemData(m, e))]));
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = Math.imul(a ^ (a >>> 15), a | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

// the whole mark (layers write numbers into it), the default mask, and one not in one run of
// bits with few generation bits (24 changes wrap it round): layers go to one chain per number
const MARKS: [string, CtMark][] = [['the whole mark', ctMark(0xffffffff)], ['the default mask', ctMark(DEFAULT_CT_MASK)], ['mask 0x0ff0ff0f, 4 generation bits', ctMark(0x0ff0ff0f, 4)]];

for (const [label, mark] of MARKS) test(`${label}: each change: prepare leaves what live rules reach as it was, switch touches no interval map, the result is the plan`, async () => {
  const names = { users: new Map([['root', 0]]), groups: new Map<string, number>() };
  const r = rng(5);
  const fake = new NftFake('t');
  // the table after each transaction, to look between prepare and switch
  const states: FakeTable[] = [];
  const runner: NftRunner = { apply: async (d) => { await fake.apply(d); states.push(fake.table); }, list: (k, t, n) => fake.list(k, t, n), unavailable: () => fake.unavailable() };
  const table = new NftTable('t', runner);
  let docs: (KernelRuleDoc & { id: number })[] = [];
  let nextId = 1, nextNum = 1, gen = 0;
  const nums = new Map<string, number>();
  let prev: TablePlan | undefined;
  for (let step = 0; step < 24; step++) {
    // an edit: a new generated set now and then, otherwise moves, deletes, inserts, override flips
    if (step % 8 === 0) docs = generateRules(step === 8 ? 1_500 : 150 + Math.floor(r() * 300), step + 1).map((d) => ({ ...d, id: nextId++ }));
    else {
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) {
        const i = Math.floor(r() * docs.length);
        const what = r();
        if (what < 0.4) { const [x] = docs.splice(i, 1); docs.splice(Math.floor(r() * docs.length), 0, x!); }
        else if (what < 0.6) docs.splice(i, 1);
        else if (what < 0.8) docs.splice(i, 0, { ...generateRules(3, step * 100 + k, false)[Math.floor(r() * 3)]!, id: nextId++ });
        else docs[i] = { ...docs[i]!, action: { ...docs[i]!.action, override: !docs[i]!.action.override }, id: nextId++ };
      }
    }
    const rules: KRule[] = docs.map((d) => ({ id: `r${d.id}`, origin: 'rules', atoms: ruleAtoms(d.match, names), action: kernelAction(d.action) }));
    for (const x of rules) if (!nums.has(x.id)) nums.set(x.id, nextNum++);
    const plan = planTable('t', rules, nums, (gen = (gen % mark.maxGeneration) + 1), mark);
    const before = reach(fake.table);
    const c = table.change(plan);
    for (const x of c.switch as Cmd[]) assert.ok(Object.keys(Object.values(x)[0]!)[0] !== 'map', `step ${step}: switch adds or deletes a map`);
    states.length = 0;
    await table.apply(c);
    if (c.prepare.length) {
      const mid = reach(states[0]!);
      assert.deepEqual([...mid.chains], [...before.chains], `step ${step}: prepare changed a live chain`);
      for (const [name, m] of before.maps) if (m.interval) assert.deepEqual(mid.maps.get(name), m, `step ${step}: prepare changed live map ${name}`);
      for (const x of c.switch as Cmd[]) {
        const [verb, obj] = Object.entries(x)[0]!;
        const [what, o] = Object.entries(obj)[0]!;
        if (what === 'element') assert.ok(!states[0]!.maps.get(o.name as string)!.interval, `step ${step}: switch ${verb}s elements of interval map ${String(o.name)}`);
      }
    }
    const sim = fake.table;
    const after = reach(sim);
    const planChains = new Map([...plan.chains].map(([n]) => [n, [] as string[]]));
    // hash maps may still hold elements of the change before (numbers no flow of this
    // generation carries; the next change deletes them): only the plan's are compared
    const got = canonical(after.chains, (m) => {
      const sm = contents(sim.maps.get(m)!);
      if (sim.maps.get(m)!.interval) return sm;
      const want = planContents(plan, m);
      return new Map([...sm].filter(([k]) => want.has(k)));
    });
    // the plan rendered the same way: its rules with plan map names
    for (const [n, ch] of plan.chains) planChains.set(n, ch.rules.map((x) => JSON.stringify({ expr: x.expr, ...(x.comment ? { comment: x.comment } : {}) })));
    assert.equal(got, canonical(planChains, (m) => planContents(plan, m)), `step ${step}: the rules reach another table than the plan`);
    // a hash map holds no more than this change's elements and the previous one's
    for (const name of ['byid4', 'byid6']) {
      const allowed = new Set([...(prev ? planContents(prev, name).keys() : []), ...planContents(plan, name).keys()]);
      for (const k of sim.maps.get(name)?.elems.keys() ?? []) assert.ok(allowed.has(k), `step ${step}: ${name} keeps ${k} from an older change`);
    }
    // and no chain outlives the change after the one that last used it (a rule's number chain)
    for (const name of sim.chains.keys()) assert.ok(plan.chains.has(name) || prev?.chains.has(name), `step ${step}: chain ${name} left from an older change`);
    prev = plan;
  }
});
