/* Kernel rule sets of the kind administrators write, for `qos bench rules` and the tests:
 * mostly exact hosts and services, with prefixes and port ranges that cover some of them
 * (so first-match order decides), per-user rules, a few IPv6 hosts, and a default at the
 * end. Deterministic for a seed. None of them matches 10.250.0.0/16 or fd00:250::/32, where
 * benchmarks put the hosts whose traffic must fall through to the default. */

import type { KernelRuleDoc } from '../kernel/rules.js';

const DSCPS = ['EF', 'AF41', 'AF31', 'AF21', 'AF11', 'CS1', 'CS2', 'CS5'];
const PORTS = [22, 25, 53, 80, 123, 443, 993, 1194, 1935, 3306, 3478, 5060, 5061, 5432, 8080, 8443];

/** A small deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = (i: number) => KernelRuleDoc['match'];

/** n rules in blocks of one kind each (as rule sets grow: a list of hosts, then a few
 * prefixes, then servers...), kinds in random order; prefixes and port ranges cover hosts of
 * other blocks, before and after them. The last rule is the default unless withDefault is
 * false. */
export function generateRules(n: number, seed = 1, withDefault = true): KernelRuleDoc[] {
  const r = rng(seed);
  const int = (k: number) => Math.floor(r() * k);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const host = () => `10.${int(200)}.${int(256)}.${1 + int(254)}`;
  /** one of k blocks of 100 ports from base: "5300-5399" */
  const range = (base: number, k: number) => { const lo = base + int(k) * 100; return `${lo}-${lo + 99}`; };
  // kind, and its share of the rules
  const kinds: [Kind, number][] = [
    [() => ({ remote: host(), proto: pick(['tcp', 'udp'] as const), remote_port: pick(PORTS) }), 0.55],
    [() => ({ remote: host() }), 0.08],
    [() => ({ remote: `10.${int(200)}.${int(256)}.0/24`, remote_port: range(5000, 50) }), 0.07],
    [() => ({ remote: `10.${int(200)}.0.0/16` }), 0.04],
    [() => ({ local: `10.${int(200)}.${int(256)}.${1 + int(254)}`, proto: 'tcp', local_port: pick(PORTS) }), 0.06],
    [() => ({ proto: 'udp', remote_port: range(10000, 500) }), 0.05],
    [() => ({ uid: 1000 + int(500), remote_port: pick(PORTS) }), 0.05],
    [() => ({ remote: `fd00:${int(200).toString(16)}::${(1 + int(65534)).toString(16)}`, remote_port: pick(PORTS) }), 0.07],
    [() => ({ remote: `fd00:${int(200).toString(16)}::/48` }), 0.03],
  ];
  const out: KernelRuleDoc[] = [];
  const body = withDefault ? n - 1 : n;
  const blockOf = (share: number) => Math.max(1, Math.round(body * share / 4));
  while (out.length < body) {
    const [kind, share] = kinds[int(kinds.length)]!;
    const len = Math.min(body - out.length, 1 + int(blockOf(share)));
    for (let i = 0; i < len; i++) out.push({ name: `g${out.length + 1}`, match: kind(out.length), action: { dscp: pick(DSCPS) } });
  }
  if (withDefault) out.push({ name: 'default', match: {}, action: { dscp: 'CS1' } });
  return out;
}
