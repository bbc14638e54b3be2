/* What a policy or a kernel rule set costs to load, and what the worst document the limits
 * let through costs (issue 15; docs/policy.md and docs/kernel-rules.md, "Limits"): parse,
 * validate and compile (the policy engine; the rule set's atoms and table plan) of each case
 * in a fresh process (the daemon's first load is cold too), its time and peak RSS.
 *
 *     node dist/bench/documents.js policy|rules [--json] [--case NAME] [--runs N]
 *
 * N runs of each case give the median times and the largest RSS.
 *
 * Cases: the largest sets the project supports (10,000 policy rules; 65,535 kernel rules) as
 * a program writes them (JSON) and as YAML; then hostile shapes at the byte limits: dense
 * lists of bad values, a rule holding its whole allowance of bad values, as many rules as
 * allowed, valid lists as long as allowed, maps of many keys, nesting at the limit, anchors and
 * aliases at the limit, an alias bomb, a document one byte over the limit. */

import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { QosError } from '../errors.js';
import { runSync } from '../exec.js';
import { MAX_ANCHORS, MAX_DEPTH, type DocLimits } from '../document.js';
import { ctMark, DEFAULT_CT_MASK } from '../kernel/ctmark.js';
import { planTable } from '../kernel/plan.js';
import { parseRuleSet, RULE_SET_LIMITS, ruleSetText } from '../kernel/manager.js';
import { kernelAction, ruleAtoms, systemNames, type KRule } from '../kernel/rules.js';
import { PolicyEngine } from '../policy/engine.js';
import { parsePolicy, POLICY_LIMITS } from '../policy/load.js';
import { generatePolicy } from './policy-gen.js';
import { generateRules } from './rules-gen.js';

type Kind = 'policy' | 'rules';

/** `unit` repeated to fill `bytes` between head and tail. */
function fill(bytes: number, head: string, unit: string, tail: string): string {
  return head + unit.repeat(Math.max(0, Math.floor((bytes - head.length - tail.length) / unit.length))) + tail;
}

/** Items joined by `sep` between head and tail, as many as fit in `bytes`. */
function fillItems(bytes: number, head: string, item: (i: number) => string, sep: string, tail: string): string {
  const parts: string[] = [];
  let n = head.length + tail.length;
  for (let i = 0; ; i++) {
    const s = item(i);
    if (n + s.length + sep.length > bytes) break;
    parts.push(s);
    n += s.length + sep.length;
  }
  return head + parts.join(sep) + tail;
}

/** The cases of a kind: name → the document's text. */
function cases(kind: Kind): Record<string, () => string> {
  const l: DocLimits = kind === 'policy' ? POLICY_LIMITS : RULE_SET_LIMITS;
  const head = kind === 'policy' ? '' : '"qosd_rules": 1, ';
  const yhead = kind === 'policy' ? '' : 'qosd_rules: 1\n';
  const doc = (rules: unknown[]) => (kind === 'policy' ? { rules } : { qosd_rules: 1, enabled: true, rules });
  const big = kind === 'policy' ? 10_000 : 65_535;
  const legit = (n: number) => (kind === 'policy' ? generatePolicy(n).rules : generateRules(n));
  const action = kind === 'policy' ? '{"none":true}' : '{"dscp":"EF"}';
  const J = l.bytes, Y = l.yamlBytes;
  // rules of five values each (rule, match, port, action, its value): as many as allowed
  const most = Math.min(l.rules, Math.floor((l.values - 10) / 5));
  const portRules = (n: number) => Array.from({ length: n }, (_, i) => `{"match":{"remote_port":${i % 65536}},"action":${action}}`).join(',');
  const c: Record<string, () => string> = {
    [`legit-${big}-json`]: () => (kind === 'policy' ? JSON.stringify(doc(legit(big)), null, 2) : ruleSetText(doc(legit(big)) as never)),
    'legit-10000-yaml': () => stringify(doc(legit(10_000))),
    'legit-yaml-at-limit': () => { let n = 10_000; let t = stringify(doc(legit(n))); while (Buffer.byteLength(t) > Y) { n = Math.floor(n * Y / Buffer.byteLength(t) * 0.98); t = stringify(doc(legit(n))); } return t; },
    // dense bad values: every one an issue
    'json-bad-rules': () => fill(J, `{${head}"rules":[`, '1,', '1]}'),
    'json-bad-values-one-rule': () => fillItems(J, `{${head}"rules":[{"match":{"remote":[`, () => '1', ',', `]},"action":${action}}]}`),
    'json-bad-rule-allowance': () => fillItems(J, `{${head}"rules":[`, () => `{"match":{"uid":[${'-1,'.repeat(l.ruleValues - 8)}-1]},"action":${action}}`, ',', ']}'),
    // as many rules as allowed, each matching a port: four atoms in the kernel (two families, two protocols)
    'json-most-rules': () => `{${head}"rules":[${portRules(most)}]}`,
    'json-too-many-rules': () => `{${head}"rules":[${portRules(l.rules + 1)}]}`,
    // valid rules with lists of 60 networks and 60 ports, as many as the values allow
    'json-long-valid-lists': () => `{${head}"rules":[${Array.from({ length: Math.floor(l.values / 126) }, (_, i) => `{"match":{"remote":[${Array.from({ length: 60 }, (_, k) => `"10.${i & 255}.${(i >> 8) & 255}.${k}"`).join(',')}],"remote_port":[${Array.from({ length: 60 }, (_, k) => 1000 + k).join(',')}]},"action":${action}}`).join(',')}]}`,
    // 64 rules of 64 networks by 64 ports: the most atoms a rule may make, as many as a set may
    'json-wide-rules': () => `{${head}"rules":[${Array.from({ length: 64 }, (_, i) => `{"match":{"remote":[${Array.from({ length: 64 }, (_, k) => `"10.${i}.${k}.0/24"`).join(',')}],"proto":"tcp","remote_port":[${Array.from({ length: 64 }, (_, k) => 1000 + k).join(',')}]},"action":${action}}`).join(',')}]}`,
    'json-many-keys': () => fillItems(J, `{${head}"rules":[],"x":{`, (i) => `"k${i}":1`, ',', '}}'),
    'json-repeated-key-at-end': () => `{${head}"rules":[${portRules(most)}],"rules":[]}`,
    'json-deep': () => fill(J / 2, `{${head}"rules":`, '[', '') + ']'.repeat(Math.floor((J / 2 - 20))) + '}',
    'json-syntax-error-at-end': () => `{${head}"rules":[${portRules(most)}]]`,
    'json-one-byte-over': () => fill(J + 1, `{${head}"rules":[`, ' ', ']}'),
    'yaml-flow-bad': () => fill(Y, `${yhead}rules: [`, '1,', '1]\n'),
    'yaml-block-bad': () => fill(Y, `${yhead}rules:\n`, '- 1\n', ''),
    'yaml-empty-maps': () => fill(Y, `${yhead}rules: [`, '{},', '{}]\n'),
    'yaml-many-keys': () => fillItems(Y, `${yhead}rules: []\nx:\n`, (i) => ` k${i}: 1`, '\n', '\n'),
    'yaml-deep-at-limit': () => { const d = MAX_DEPTH - 2; return fill(Y, `${yhead}rules: [`, `${'['.repeat(d)}1${']'.repeat(d)},`, '1]\n'); },
    'yaml-deep-over': () => fill(Y / 2, `${yhead}rules: `, '[', '') + ']'.repeat(Y / 2 - 20) + '\n',
    'yaml-aliases-at-limit': () => `${yhead}x: &a [${'1,'.repeat(Math.floor((Y - 100 - MAX_ANCHORS * 3) / 2))}1]\nrules: [${'*a,'.repeat(MAX_ANCHORS - 2)}*a]\n`,
    'yaml-alias-bomb': () => {
      const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
      for (let i = 1; i < 9; i++) { const p = String.fromCharCode(96 + i), n = String.fromCharCode(97 + i); lines.push(`${n}: &${n} [${Array(9).fill(`*${p}`).join(',')}]`); }
      return `${yhead}${lines.join('\n')}\nrules: []\n`;
    },
    'yaml-long-string': () => fill(Y, `${yhead}rules: []\nx: "`, 'a', '"\n'),
    'yaml-one-byte-over': () => fill(Y + 1, `${yhead}rules: []\n`, '#', '\n'),
  };
  return c;
}

/** ms: wall time; cpu_ms: CPU time of this process meanwhile (the figure to judge on a
 * machine others share; it counts the garbage collector's threads too); parse_cpu_ms: of
 * that, parsing and validating (the rest compiles). */
interface Outcome { case: string; bytes: number; ms: number; cpu_ms: number; parse_cpu_ms: number; max_rss_mb: number; result: string }

/** Runs one case in this process: parse, validate, compile. */
function runCase(kind: Kind, name: string): Outcome {
  const text = cases(kind)[name]!();
  const bytes = Buffer.byteLength(text);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let result: string;
  let parsed = c0;
  try {
    if (kind === 'policy') {
      const doc = parsePolicy(text, name);
      parsed = process.cpuUsage();
      new PolicyEngine(doc);
      result = `ok, ${doc.rules.length} rules`;
    } else {
      const names = systemNames();
      const set = parseRuleSet(text, name, names);
      parsed = process.cpuUsage();
      const rules: KRule[] = set.rules.map((r, i) => ({ id: `r${i}`, origin: 'rules', atoms: ruleAtoms(r.match, names), action: kernelAction(r.action) }));
      const plan = planTable('qosd', rules, new Map(rules.map((r, i) => [r.id, i + 1])), 1, ctMark(DEFAULT_CT_MASK));
      result = `ok, ${set.rules.length} rules, ${rules.reduce((n, r) => n + r.atoms.length, 0)} atoms, ${Object.values(plan.layers).reduce((a, b) => a + b, 0)} layers`;
    }
  } catch (e) {
    if (!(e instanceof QosError)) throw e;
    result = `${e.code}: ${e.problems.length} problem(s); ${e.problems[0] ? `${e.problems[0].line ?? '-'}:${e.problems[0].col ?? '-'} ${e.problems[0].path ?? ''} ${e.problems[0].message}`.slice(0, 110) : e.message}`;
  }
  const cpu = process.cpuUsage(c0);
  if (parsed === c0) parsed = process.cpuUsage();
  const parseCpu = (parsed.user + parsed.system - c0.user - c0.system) / 1000;
  return { case: name, bytes, ms: Math.round(performance.now() - t0), cpu_ms: Math.round((cpu.user + cpu.system) / 1000), parse_cpu_ms: Math.round(parseCpu), max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), result };
}

/** Every case of a kind, each in a fresh process, `runs` times: the median time, the
 * largest RSS. */
export function benchDocuments(kind: Kind, o: { only?: string; runs?: number; progress?: (o: Outcome) => void } = {}): Outcome[] {
  const out: Outcome[] = [];
  for (const name of Object.keys(cases(kind))) {
    if (o.only && name !== o.only) continue;
    const runs: Outcome[] = [];
    for (let i = 0; i < (o.runs ?? 1); i++) {
      // a case may crash the child (out of memory): that is its result
      const r = runSync([process.execPath, fileURLToPath(import.meta.url), kind, '--child', name], { maxOutput: 1 << 20, ok: 'any' });
      runs.push(r.code === 0 ? JSON.parse(r.stdout) as Outcome : { case: name, bytes: 0, ms: 0, cpu_ms: 0, parse_cpu_ms: 0, max_rss_mb: 0, result: `crashed (${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}` });
    }
    const median = (f: (x: Outcome) => number) => runs.map(f).sort((a, b) => a - b)[runs.length >> 1]!;
    const one = { ...runs[0]!, ms: median((x) => x.ms), cpu_ms: median((x) => x.cpu_ms), parse_cpu_ms: median((x) => x.parse_cpu_ms), max_rss_mb: Math.max(...runs.map((x) => x.max_rss_mb)) };
    out.push(one);
    o.progress?.(one);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [kind, ...rest] = process.argv.slice(2) as [Kind, ...string[]];
  if (kind !== 'policy' && kind !== 'rules') {
    process.stderr.write('usage: node dist/bench/documents.js policy|rules [--json] [--case NAME] [--runs N]\n');
    process.exit(64);
  }
  const child = rest.indexOf('--child');
  const arg = (name: string) => (rest.includes(name) ? rest[rest.indexOf(name) + 1] : undefined);
  if (child >= 0) process.stdout.write(JSON.stringify(runCase(kind, rest[child + 1]!)));
  else {
    const json = rest.includes('--json');
    const l = kind === 'policy' ? POLICY_LIMITS : RULE_SET_LIMITS;
    if (!json) process.stdout.write(`${kind}: limits ${JSON.stringify(l)}\n${'case'.padEnd(28)} ${'bytes'.padStart(9)} ${'ms'.padStart(7)} ${'cpu ms'.padStart(7)} ${'parse'.padStart(6)} ${'RSS MB'.padStart(7)}  result\n`);
    const all = benchDocuments(kind, {
      only: arg('--case'), runs: Number(arg('--runs') ?? 1),
      progress: json ? undefined : (o) => process.stdout.write(`${o.case.padEnd(28)} ${String(o.bytes).padStart(9)} ${String(o.ms).padStart(7)} ${String(o.cpu_ms).padStart(7)} ${String(o.parse_cpu_ms).padStart(6)} ${String(o.max_rss_mb).padStart(7)}  ${o.result}\n`),
    });
    if (json) process.stdout.write(JSON.stringify({ kind, limits: l, cases: all }, null, 2) + '\n');
  }
}
