/* The layering against its definition: on random rule sets (small spaces, so that rules
 * overlap a lot) and random packets, looking the layers up in order (the first layer with an
 * atom holding the packet decides) gives the same rule as scanning the rules in order. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstMatch, layer, overlap, type PacketKey, type Placed } from './layers.js';
import { addrRange, kernelAction, ruleAtoms, type KernelMatchDoc, type KRule } from './rules.js';

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const names = { users: new Map([['alice', 1000]]), groups: new Map<string, number>() };

function randomMatch(r: () => number): KernelMatchDoc {
  const m: KernelMatchDoc = {};
  const int = (k: number) => Math.floor(r() * k);
  if (r() < 0.6) m.remote = r() < 0.6 ? `10.0.0.${int(8)}` : `10.0.0.${int(2) * 4}/30`;
  if (r() < 0.3) m.local = r() < 0.5 ? `10.0.1.${int(4)}` : '10.0.1.0/31';
  if (r() < 0.5) m.proto = r() < 0.5 ? 'tcp' : 'udp';
  if (r() < 0.5) m.remote_port = r() < 0.6 ? 1 + int(8) : `${1 + int(4)}-${5 + int(4)}`;
  if (r() < 0.2) m.local_port = 1 + int(4);
  if (r() < 0.15) m.uid = r() < 0.5 ? 1000 : 0;
  return m;
}

/** The rule the layers decide: the first layer holding an atom that contains the packet. */
function layered(layers: ReturnType<typeof layer>, p: PacketKey): KRule | undefined {
  for (const l of layers) for (const x of l.members) if (firstMatch([{ ...x.rule, atoms: [x.atom] }], p)) return x.rule;
  return undefined;
}

test('layers decide as first match does, and no layer holds overlapping atoms', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const r = rng(seed);
    const rules: KRule[] = Array.from({ length: 5 + Math.floor(r() * 40) }, (_, i) => ({
      id: `r${i + 1}`, origin: 'rules', atoms: ruleAtoms(randomMatch(r), names), action: kernelAction({ dscp: i % 64 }),
    }));
    if (r() < 0.5) rules.push({ id: 'default', origin: 'rules', atoms: ruleAtoms({}, names), action: kernelAction({ dscp: 8 }) });
    const placed: Placed[] = [];
    for (const rule of rules) for (const atom of rule.atoms) if (atom.fam === 4) placed.push({ atom, rule });
    const layers = layer(placed);
    for (const l of layers) for (let i = 0; i < l.members.length; i++) for (let j = i + 1; j < l.members.length; j++)
      assert.ok(!overlap(l.members[i]!.atom, l.members[j]!.atom), `seed ${seed}: overlapping atoms in one layer`);
    for (let k = 0; k < 400; k++) {
      const p: PacketKey = {
        fam: 4, src: addrRange(`10.0.1.${Math.floor(r() * 4)}`).range.lo, dst: addrRange(`10.0.0.${Math.floor(r() * 9)}`).range.lo,
        proto: r() < 0.5 ? 6 : r() < 0.8 ? 17 : 1, sport: 1 + Math.floor(r() * 5), dport: 1 + Math.floor(r() * 9),
        ...(r() < 0.9 ? { uid: r() < 0.5 ? 1000 : 0 } : {}), // a tenth without a socket
      };
      assert.equal(layered(layers, p)?.id, firstMatch(rules, p)?.id, `seed ${seed}, packet ${JSON.stringify(p)}`);
    }
  }
});
