/* Documents that would exhaust the daemon (issue 15) are refused with a clear message and
 * their position, as QOS_ERR_POLICY_INVALID or QOS_ERR_RULES_INVALID, never an internal
 * error: YAML alias bombs, aliases that loop or lead nowhere, nesting, too many keys, values or
 * problems, documents over the size limit; the largest supported sets still load. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from './errors.js';
import { parseRuleSet } from './kernel/manager.js';
import { generatePolicy } from './bench/policy-gen.js';
import { generateRules } from './bench/rules-gen.js';
import { ruleSetText } from './kernel/manager.js';
import { parsePolicy } from './policy/load.js';

const KINDS = [
  { name: 'policy', code: 'QOS_ERR_POLICY_INVALID', head: '', parse: (t: string) => parsePolicy(t, 'doc.yaml') },
  { name: 'rule set', code: 'QOS_ERR_RULES_INVALID', head: 'qosd_rules: 1\n', parse: (t: string) => parseRuleSet(t, 'doc.yaml') },
] as const;

/** The problems of a refused document, as "line:col message"; fails unless it is refused with
 * the kind's code. */
function refused(kind: (typeof KINDS)[number], text: string): string[] {
  try {
    kind.parse(text);
  } catch (e) {
    assert.ok(e instanceof QosError, `a QosError, not ${(e as Error)?.stack}`);
    assert.equal(e.code, kind.code);
    return e.problems.map((p) => `${p.line ?? '-'}:${p.col ?? '-'} ${p.path ? `${p.path}: ` : ''}${p.message}`);
  }
  assert.fail(`${kind.name} accepted`);
}

// the billion laughs: nine levels of nine aliases each, 387 million strings once expanded
const BOMB = `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
rules: []
`;

for (const kind of KINDS) {
  test(`${kind.name}: a YAML alias bomb is refused at the alias that passes the bound, as invalid input`, () => {
    const p = refused(kind, kind.head + BOMB);
    assert.equal(p.length, 1, p.join('\n'));
    assert.match(p[0]!, /^\d+:\d+ .*more than \d+ values in the .*YAML alias/);
  });

  test(`${kind.name}: an alias inside what it names, and one before its anchor, are problems with positions`, () => {
    assert.match(refused(kind, `${kind.head}rules: &r [*r]\n`)[0]!, new RegExp(`^${kind.head ? 2 : 1}:12 alias \\*r is inside the collection it names`));
    assert.match(refused(kind, `${kind.head}rules: *nowhere\n`)[0]!, /^\d+:8 alias \*nowhere before any anchor/);
  });

  test(`${kind.name}: anchors and aliases used as intended are taken, more than a hundred times; more than a thousand are refused`, () => {
    const rules = Array.from({ length: 150 }, (_, i) => `  - { name: r${i + 1}, match: *m, action: *a }`).join('\n');
    const doc = kind.parse(`${kind.head}rules:\n  - { name: r0, match: &m { remote_port: 443 }, action: &a { dscp: AF21 } }\n${rules}\n`);
    assert.equal(doc.rules.length, 151);
    // resolving n aliases costs n² in the yaml package: past a thousand they are refused
    const many = Array.from({ length: 1001 }, (_, i) => `  - { name: r${i + 1}, match: *m, action: { dscp: EF } }`).join('\n');
    const p = refused(kind, `${kind.head}rules:\n  - { name: r0, match: &m { remote_port: 443 }, action: { dscp: EF } }\n${many}\n`);
    assert.equal(p.length, 1);
    assert.match(p[0]!, new RegExp(`^${kind.head ? 1003 : 1002}:\\d+ more than 1000 anchors and aliases$`));
  });

  test(`${kind.name}: nesting ten thousand deep is refused, not a crash`, () => {
    const depth = 10_000;
    for (const text of [`${kind.head}rules: ${'['.repeat(depth)}${']'.repeat(depth)}\n`, `{${kind.head ? '"qosd_rules": 1, ' : ''}"rules": ${'['.repeat(depth)}${']'.repeat(depth)}}`]) {
      const p = refused(kind, text);
      assert.equal(p.length, 1);
      assert.match(p[0]!, /^1:\d+ nested more than \d+ levels deep|^2:\d+ nested more than \d+ levels deep/);
    }
  });

  test(`${kind.name}: a map of a hundred thousand keys is refused (YAML's own check of unique keys is quadratic)`, () => {
    const keys = Array.from({ length: 100_000 }, (_, i) => `"k${i}": 1`).join(', ');
    assert.match(refused(kind, `{${kind.head ? '"qosd_rules": 1, ' : ''}"rules": [], "x": {${keys}}}`)[0]!, /more than \d+ keys in one map/);
  });

  test(`${kind.name}: a million bad values make a bounded list of problems, the last saying more were not listed`, () => {
    const p = refused(kind, `${kind.head}rules: [${'{},'.repeat(30_000)}{}]\n`);
    assert.ok(p.length <= 101, `${p.length} problems`);
    assert.match(p[p.length - 1]!, /more problems not listed/);
    assert.match(refused(kind, `{${kind.head ? '"qosd_rules": 1, ' : ''}"rules": [${'1,'.repeat(1_000_000)}1]}`)[0]!, /more than \d+ values/);
  });

  test(`${kind.name}: one rule of more than 10,000 values is refused at the rule`, () => {
    const ports = Array.from({ length: 10_001 }, (_, i) => i).join(', ');
    assert.match(refused(kind, `${kind.head}rules:\n  - { name: ok, match: { remote_port: 1 }, action: { dscp: EF } }\n  - { match: { remote_port: [${ports}] }, action: { dscp: EF } }\n`)[0]!, /^\d+:5 rules\[1\]: more than 10000 values .* in one rule/);
  });

  test(`${kind.name}: a document over the size limit is refused before it is parsed, saying the limit`, () => {
    const big = `${kind.head}rules: []\n${'#'.repeat(20 * 2 ** 20)}\n`;
    const p = refused(kind, big);
    assert.equal(p.length, 1);
    assert.match(p[0]!, /bytes: a (policy|rule set) may have at most \d+ MiB as JSON, \d+ KiB as YAML \(docs\//);
    assert.match(refused(kind, `${kind.head}rules: []\n${'#'.repeat(2 ** 20)}\n`)[0]!, /bytes of YAML: .* may have at most \d+ KiB, in JSON \d+ MiB/);
  });

  test(`${kind.name}: a large JSON document with a mistake is reported with its line and column, or its path`, () => {
    const rules = kind.name === 'policy' ? generatePolicy(5_000).rules : generateRules(5_000);
    const text = JSON.stringify({ ...(kind.head ? { qosd_rules: 1 } : {}), rules }, null, 2);
    assert.ok(text.length > 512 * 1024);
    const dup = text.replace(/\n}$/, ',\n  "rules": []\n}');
    assert.match(refused(kind, dup)[0]!, new RegExp(`^${dup.split('\n').length - 1}:3 Map keys must be unique`));
    const bad = text.replace(/\n}$/, '\n}}');
    assert.match(refused(kind, bad)[0]!, new RegExp(`^${bad.split('\n').length}:2 not JSON`));
    const wrong = JSON.stringify({ ...(kind.head ? { qosd_rules: 1 } : {}), rules: rules.map((r, i) => (i === 4_321 ? { ...r, action: { dscp: 'XX' } } : r)) });
    assert.deepEqual(refused(kind, wrong), ['-:- rules[4321].action.dscp: expected a DSCP name (EF, AF11..AF43, CS0..CS7, LE, VA) or a number 0-63']);
  });
}

test('rule set: lists making more than 262,144 atoms in the whole set are refused, without making them', () => {
  const wide = { match: { remote: Array.from({ length: 64 }, (_, k) => `10.0.${k}.0/24`), proto: 'tcp', remote_port: Array.from({ length: 64 }, (_, k) => 1000 + k) }, action: { dscp: 'EF' } };
  const p = refused(KINDS[1], JSON.stringify({ qosd_rules: 1, rules: Array.from({ length: 65 }, () => wide) }));
  assert.deepEqual(p, ['1:25 rules: the rules\' lists make 266240 combinations (atoms) in all; a rule set may make at most 262144 (docs/kernel-rules.md, "Limits")']);
});

test('the largest supported sets load: 10,000 policy rules and 65,535 kernel rules as a program writes them (JSON)', () => {
  assert.equal(parsePolicy(JSON.stringify(generatePolicy(10_000), null, 2), 'p.json').rules.length, 10_000);
  const set = { qosd_rules: 1 as const, enabled: true, rules: generateRules(65_535) };
  assert.equal(parseRuleSet(ruleSetText(set), 'r.json').rules.length, 65_535);
});
