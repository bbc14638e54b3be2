/* The two transactions of a change (nft.ts) against a model of the kernel's table: over a
 * sequence of rule sets (random edits of generated sets, big enough for chunked layers),
 * every command is valid where it runs, the prepare step leaves everything live rules reach
 * as it was, the switch step touches no interval map, and afterwards the rules reach exactly
 * the planned table. The real kernel is exercised by src/e2e/kernel-rules.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateRules } from '../bench/rules-gen.js';
import { ctMark, DEFAULT_CT_MASK, type CtMark } from './ctmark.js';
import { elemData, elemVal, planTable, type TablePlan } from './plan.js';
import { NftTable } from './nft.js';
import { kernelAction, ruleAtoms, type KernelRuleDoc, type KRule } from './rules.js';

interface SimMap { interval: boolean; elems: Map<string, string> }
interface Sim { maps: Map<string, SimMap>; chains: Map<string, string[]> }

type Cmd = Record<string, Record<string, Record<string, unknown>>>;

/** The chains and maps a rule names. */
function refs(rule: string): { chains: string[]; maps: string[] } {
  return {
    chains: [...rule.matchAll(/"target":"([^"]+)"/g)].map((m) => m[1]!),
    maps: [...rule.matchAll(/"@([^"]+)"/g)].map((m) => m[1]!),
  };
}

/** Runs one transaction on the model; throws where the kernel would refuse. */
function run(sim: Sim, cmds: unknown[]): void {
  const referenced = (kind: 'chains' | 'maps', name: string) => {
    for (const rules of sim.chains.values()) for (const r of rules) if (refs(r)[kind].includes(name)) return true;
    if (kind === 'chains') for (const m of sim.maps.values()) for (const d of m.elems.values()) if (refs(d).chains.includes(name)) return true;
    return false;
  };
  for (const c of cmds as Cmd[]) {
    const [verb, obj] = Object.entries(c)[0]!;
    const [what, o] = Object.entries(obj)[0]!;
    const name = (o.name ?? o.chain) as string;
    const key = `${verb} ${what}`;
    switch (key) {
      case 'add table': break;
      case 'delete table': sim.maps.clear(); sim.chains.clear(); break;
      case 'add chain': if (!sim.chains.has(name)) sim.chains.set(name, []); break;
      case 'flush chain': assert.ok(sim.chains.has(name), `flush of missing chain ${name}`); sim.chains.set(name, []); break;
      case 'delete chain':
        assert.equal(sim.chains.get(name)?.length, 0, `delete of missing or full chain ${name}`);
        assert.ok(!referenced('chains', name), `delete of referenced chain ${name}`);
        sim.chains.delete(name);
        break;
      case 'add rule': {
        const text = JSON.stringify({ expr: o.expr, ...(o.comment ? { comment: o.comment } : {}) });
        for (const ch of refs(text).chains) assert.ok(sim.chains.has(ch), `rule names missing chain ${ch}`);
        for (const m of refs(text).maps) assert.ok(sim.maps.has(m), `rule names missing map ${m}`);
        sim.chains.get(name)!.push(text);
        break;
      }
      case 'add map': assert.ok(!sim.maps.has(name), `map ${name} exists`); sim.maps.set(name, { interval: ((o.flags as string[] | undefined) ?? []).includes('interval'), elems: new Map() }); break;
      case 'delete map': assert.ok(sim.maps.has(name), `delete of missing map ${name}`); assert.ok(!referenced('maps', name), `delete of referenced map ${name}`); sim.maps.delete(name); break;
      case 'add element': case 'delete element': {
        const m = sim.maps.get(name);
        assert.ok(m, `elements of missing map ${name}`);
        for (const e of o.elem as unknown[]) {
          if (verb === 'delete') { const k = JSON.stringify(e); assert.ok(m.elems.delete(k), `delete of missing element ${k} from ${name}`); continue; }
          const [kv, data] = e as [unknown, unknown];
          const k = JSON.stringify((kv as { elem?: { val: unknown } }).elem?.val ?? kv);
          assert.ok(!m.elems.has(k), `element ${k} already in ${name}`);
          const d = JSON.stringify(data);
          for (const ch of refs(d).chains) assert.ok(sim.chains.has(ch), `element jumps to missing chain ${ch}`);
          m.elems.set(k, d);
        }
        break;
      }
      default: assert.fail(`unexpected command ${key}`);
    }
  }
}

/** What the rules reach from the base chain: chains and maps, with map contents. */
function reach(sim: Sim): { chains: Map<string, string[]>; maps: Map<string, SimMap> } {
  const chains = new Map<string, string[]>(), maps = new Map<string, SimMap>();
  const todo = ['output'];
  while (todo.length) {
    const c = todo.pop()!;
    if (chains.has(c) || !sim.chains.has(c)) continue;
    chains.set(c, [...sim.chains.get(c)!]);
    for (const r of sim.chains.get(c)!) {
      const { chains: cs, maps: ms } = refs(r);
      todo.push(...cs);
      for (const m of ms) {
        const mm = sim.maps.get(m)!;
        maps.set(m, { interval: mm.interval, elems: new Map(mm.elems) });
        for (const d of mm.elems.values()) todo.push(...refs(d).chains);
      }
    }
  }
  return { chains, maps };
}

/** A reached table with each map reference replaced by the map's contents: equal for the
 * model and for the plan exactly when they classify alike. */
function canonical(chains: Map<string, string[]>, contents: (name: string) => Map<string, string>): string {
  const out: string[] = [];
  for (const [name, rules] of [...chains].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`${name}: ${rules.map((r) => r.replace(/"@([^"]+)"/g, (_, m: string) => JSON.stringify([...contents(m)].sort()))).join(' ; ')}`);
  }
  return out.join('\n');
}

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

for (const [label, mark] of MARKS) test(`${label}: each change: prepare leaves what live rules reach as it was, switch touches no interval map, the result is the plan`, () => {
  const names = { users: new Map([['root', 0]]), groups: new Map<string, number>() };
  const r = rng(5);
  const table = new NftTable('t');
  const sim: Sim = { maps: new Map(), chains: new Map() };
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
    const before = reach(sim);
    const c = table.change(plan);
    run(sim, c.prepare);
    const mid = reach(sim);
    assert.deepEqual([...mid.chains], [...before.chains], `step ${step}: prepare changed a live chain`);
    for (const [name, m] of before.maps) {
      const now = mid.maps.get(name)!;
      if (m.interval) assert.deepEqual(now, m, `step ${step}: prepare changed live map ${name}`);
    }
    for (const x of c.switch as Cmd[]) {
      const [verb, obj] = Object.entries(x)[0]!;
      const [what, o] = Object.entries(obj)[0]!;
      if (what === 'element') assert.ok(!sim.maps.get(o.name as string)!.interval, `step ${step}: switch ${verb}s elements of interval map ${String(o.name)}`);
      assert.ok(what !== 'map', `step ${step}: switch ${verb}s a map`);
    }
    run(sim, c.switch);
    // the table's private state follows only a change that was applied
    (table as unknown as { kernel: unknown; live: unknown }).kernel = c.afterSwitch;
    (table as unknown as { kernel: unknown; live: unknown }).live = c.live;
    const after = reach(sim);
    const planChains = new Map([...plan.chains].map(([n]) => [n, [] as string[]]));
    // hash maps may still hold elements of the change before (numbers no flow of this
    // generation carries; the next change deletes them): only the plan's are compared
    const got = canonical(after.chains, (m) => {
      const sm = sim.maps.get(m)!;
      if (sm.interval) return sm.elems;
      const want = planContents(plan, m);
      return new Map([...sm.elems].filter(([k]) => want.has(k)));
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
