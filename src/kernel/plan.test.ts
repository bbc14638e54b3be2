/* The planned table run on packets by a small interpreter of the nftables statements it uses
 * (matches, mark writes, map and verdict-map lookups, jump, goto, accept): for every mask,
 * a packet is marked as first match says, a flow is classified once per generation, and the
 * bits of the connection mark outside the mask, which other software owns and changes between
 * packets, are never changed. The real kernel: src/e2e/kernel-coexist.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ctMark, DEFAULT_CT_MASK, type CtMark } from './ctmark.js';
import { firstMatch, type PacketKey } from './layers.js';
import { ACCEPT, planTable, type MapPlan, type TablePlan } from './plan.js';
import { addrRange, kernelAction, ruleAtoms, type Atom, type KernelMatchDoc, type KRule } from './rules.js';

interface Pkt extends PacketKey { dscp: number; priority: number }
interface Run { dscp: number; priority: number; mark: number; chains: string[] }

/** a statement or expression of the plan, read loosely: the interpreter checks what it meets */
type Expr = Record<string, any>;

const inRange = (v: number | undefined, r: readonly [number, number] | undefined) => r === undefined || (v !== undefined && r[0] <= v && v <= r[1]);
const holds = (a: Atom, p: Pkt) => a.fam === p.fam && a.src.lo <= p.src && p.src <= a.src.hi && a.dst.lo <= p.dst && p.dst <= a.dst.hi
  && inRange(p.proto, a.proto) && inRange(p.sport, a.sport) && inRange(p.dport, a.dport) && inRange(p.uid, a.uid) && inRange(p.gid, a.gid);

/** Runs the table's base chain on one packet of a flow whose connection mark is `mark`. */
function run(plan: TablePlan, p: Pkt, mark: number): Run {
  const out: Run = { dscp: p.dscp, priority: p.priority, mark: mark >>> 0, chains: [] };
  const value = (e: unknown): number => {
    if (typeof e === 'number') return e;
    const x = e as Expr;
    if (x.ct?.key === 'mark') return out.mark;
    if (x['&']) return (value(x['&'][0]) & value(x['&'][1])) >>> 0;
    if (x['|']) return (value(x['|'][0]) | value(x['|'][1])) >>> 0;
    if (x.payload?.field === 'dscp') return out.dscp;
    if (x.map) { const r = lookup(x.map.data, x.map.key); if (r === undefined) throw BREAK; return r as number; }
    throw new Error(`no value for ${JSON.stringify(e)}`);
  };
  /** an element's data, or undefined: layer maps by the atom of each element, hash maps by value */
  const lookup = (name: string, key: unknown): unknown => {
    const m: MapPlan = plan.maps.get(name.slice(1))!;
    if (m.interval) { for (const e of m.elems.values()) if (holds(e.atom!, p)) return e.data; return undefined; }
    const k = value(key);
    for (const e of m.elems.values()) if (e.val === k) return e.data;
    return undefined;
  };
  const BREAK = new Error('break');
  const stack: { chain: string; at: number }[] = [];
  let chain = 'output', at = 0;
  for (let steps = 0; steps < 10_000; steps++) {
    const rules = plan.chains.get(chain)!.rules;
    if (at === 0) out.chains.push(chain);
    if (at >= rules.length) { const r = stack.pop(); if (!r) return out; ({ chain, at } = r); continue; }
    const rule = rules[at++]!;
    let verdict: Expr | undefined;
    try {
      for (const x of rule.expr as Expr[]) {
        if (x.match) {
          const l = x.match.left.meta?.key === 'nfproto' ? (p.fam === 4 ? 'ipv4' : 'ipv6') : value(x.match.left);
          if ((l === x.match.right) !== (x.match.op === '==')) throw BREAK;
        } else if (x.mangle) {
          const k = x.mangle.key;
          if (k.ct?.key === 'mark') out.mark = value(x.mangle.value);
          else if (k.payload?.field === 'dscp') { assert.equal(k.payload.protocol, p.fam === 4 ? 'ip' : 'ip6', 'a DSCP write of the other family'); out.dscp = x.mangle.value; }
          else if (k.meta?.key === 'priority') out.priority = Number(String(x.mangle.value).split(':')[1]);
          else throw new Error(`unknown write ${JSON.stringify(x)}`);
        } else if (x.vmap) {
          const d = lookup(x.vmap.data, x.vmap.key);
          if (d === undefined) throw BREAK;
          verdict = d === ACCEPT ? { accept: null } : { goto: { target: d } };
        } else if (x.counter !== undefined) continue;
        else verdict = x;
      }
    } catch (e) {
      if (e === BREAK) continue;
      throw e;
    }
    if (!verdict) continue;
    if (verdict.accept !== undefined) return out;
    if (verdict.jump) { stack.push({ chain, at }); chain = verdict.jump.target; at = 0; continue; }
    if (verdict.goto) { chain = verdict.goto.target; at = 0; continue; }
    throw new Error(`unknown statement ${JSON.stringify(verdict)}`);
  }
  throw new Error('the chains loop');
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = Math.imul(a ^ (a >>> 15), a | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const names = { users: new Map([['alice', 1000]]), groups: new Map<string, number>() };

function randomRules(r: () => number, n: number): KRule[] {
  const int = (k: number) => Math.floor(r() * k);
  const rules: KRule[] = Array.from({ length: n }, (_, i) => {
    const m: KernelMatchDoc = {};
    if (r() < 0.6) m.remote = r() < 0.6 ? `10.0.0.${int(8)}` : `10.0.0.${int(2) * 4}/30`;
    if (r() < 0.2) m.remote = r() < 0.5 ? `fd00::${int(4)}` : 'fd00::/126';
    if (r() < 0.5) m.proto = r() < 0.5 ? 'tcp' : 'udp';
    if (r() < 0.5) m.remote_port = r() < 0.6 ? 1 + int(8) : `${1 + int(4)}-${5 + int(4)}`;
    if (r() < 0.15) m.uid = r() < 0.5 ? 1000 : 0;
    return { id: `r${i + 1}`, origin: 'rules', atoms: ruleAtoms(m, names), action: kernelAction({ dscp: 1 + (i % 63), ...(r() < 0.3 ? { priority: int(8) } : {}), ...(r() < 0.25 ? { override: true } : {}) }) };
  });
  if (r() < 0.5) rules.push({ id: 'default', origin: 'rules', atoms: ruleAtoms({}, names), action: kernelAction({ dscp: 8 }) });
  return rules;
}

function randomPacket(r: () => number): Pkt {
  const fam = r() < 0.75 ? 4 : 6;
  return {
    fam, src: addrRange(fam === 4 ? '10.0.1.1' : 'fd01::1').range.lo, dst: addrRange(fam === 4 ? `10.0.0.${Math.floor(r() * 9)}` : `fd00::${Math.floor(r() * 5)}`).range.lo,
    proto: r() < 0.45 ? 6 : r() < 0.9 ? 17 : 1, sport: 40000, dport: 1 + Math.floor(r() * 9), ...(r() < 0.9 ? { uid: r() < 0.5 ? 1000 : 0 } : {}),
    dscp: r() < 0.2 ? 10 : 0, priority: 0,
  };
}

/** What the rules say a packet gets: at DSCP 0 the first rule matching, otherwise the first
 * override rule matching; without one, the packet as it was. */
function expected(rules: KRule[], p: Pkt): { dscp: number; priority: number } {
  const r = firstMatch(p.dscp === 0 ? rules : rules.filter((x) => x.action.override), p);
  return { dscp: r?.action.dscp ?? p.dscp, priority: r?.action.priority ?? p.priority };
}

const MARKS: [string, CtMark][] = [
  ['the whole mark', ctMark(0xffffffff)], ['the default mask 0xffffff00', ctMark(DEFAULT_CT_MASK)],
  ['mask 0x0ff0ff0f, 4 generation bits', ctMark(0x0ff0ff0f, 4)], ['mask 0xc03ff000, 4 generation bits (255 rules)', ctMark(0xc03ff000, 4)],
];

for (const [label, mark] of MARKS) {
  test(`${label}: packets are marked as first match says, a flow is classified once per generation, the bits outside the mask are never changed`, () => {
    const others = (~mark.mask) >>> 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const rules = randomRules(r, 5 + Math.floor(r() * 40));
      const nums = new Map(rules.map((x, i) => [x.id, 1 + ((i * 7) % mark.maxRules)]));
      const gen = 1 + Math.floor(r() * mark.maxGeneration);
      const plan = planTable('t', rules, nums, gen, mark);
      // the same rules in reverse order, under the next generation
      const reversed = [...rules].reverse();
      const plan2 = planTable('t', reversed, nums, (gen % mark.maxGeneration) + 1, mark);
      for (let k = 0; k < 150; k++) {
        const p = randomPacket(r);
        const where = `seed ${seed}, packet ${JSON.stringify(p)}`;
        const theirs = Math.floor(r() * 2 ** 32) & others;
        const first = run(plan, p, theirs);
        assert.deepEqual({ dscp: first.dscp, priority: first.priority }, expected(rules, p), `${where}: first packet`);
        assert.equal((first.mark & others) >>> 0, theirs >>> 0, `${where}: the first packet changed bits outside the mask`);
        if (p.dscp !== 0) { assert.equal(first.mark, theirs >>> 0, `${where}: a marked packet changed the mark`); continue; }
        // the other software changes its bits between packets: the flow stays classified
        const flipped = (first.mark ^ (Math.floor(r() * 2 ** 32) & others)) >>> 0;
        const second = run(plan, p, flipped);
        assert.deepEqual({ dscp: second.dscp, priority: second.priority }, expected(rules, p), `${where}: second packet`);
        assert.ok(!second.chains.includes(`c${p.fam}`), `${where}: the second packet was classified again (${second.chains.join(' ')})`);
        assert.equal(second.mark, flipped, `${where}: the second packet changed the mark`);
        // a change of rules: the flow's next packet is classified again, by the new order
        const third = run(plan2, p, flipped);
        assert.ok(third.chains.includes(`c${p.fam}`), `${where}: a new generation did not classify the flow again`);
        assert.deepEqual({ dscp: third.dscp, priority: third.priority }, expected(reversed, p), `${where}: after the change`);
        assert.equal((third.mark & others) >>> 0, (flipped & others) >>> 0, `${where}: the change's classification changed bits outside the mask`);
      }
    }
  });
}

test('the masked table writes the mark only through constant operations that keep the bits outside the mask', () => {
  const mark = ctMark(DEFAULT_CT_MASK);
  const rules = randomRules(rng(3), 30);
  const plan = planTable('t', rules, new Map(rules.map((x, i) => [x.id, i + 1])), 1, mark);
  const writes = [...plan.chains.values()].flatMap((c) => c.rules.flatMap((r) => (r.expr as Expr[]).filter((x) => x.mangle?.key?.ct)));
  assert.ok(writes.length >= 3, 'a write per rule number reached, the tag, the clearing');
  for (const w of writes) {
    const v = w.mangle.value as Expr;
    assert.ok(v['|'] && v['|'][0]['&'] && typeof v['|'][1] === 'number', `not (mark & keep) | constant: ${JSON.stringify(v)}`);
    assert.equal(v['|'][0]['&'][1] & ~mark.mask, ~mark.mask & 0xffffffff, `clears bits outside the mask: ${JSON.stringify(v)}`);
    assert.equal((v['|'][1] & ~mark.mask) >>> 0, 0, `sets bits outside the mask: ${JSON.stringify(v)}`);
  }
  for (const m of plan.maps.values()) assert.notEqual(m.data, 'mark', 'no map writes the mark whole');
});
