import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { DEFAULT_POLICY_TEXT } from './default-policy.js';
import { jsonFastPath } from '../document.js';
import { parsePolicy } from './load.js';

function problems(text: string): string[] {
  try {
    parsePolicy(text, 'p.yaml');
  } catch (e) {
    assert.ok(e instanceof QosError);
    assert.equal(e.code, 'QOS_ERR_POLICY_INVALID');
    return e.problems.map((p) => `${p.line}:${p.col} ${p.path ?? ''} ${p.message}`);
  }
  return [];
}

test('the issue\'s example policy is valid', () => {
  const doc = parsePolicy(`default: { dscp: CS0 }
rules:
  - name: media-udp
    match: { cmdline: "*conf.exe*", type: dgram }
    action: { tos: 48 }
  - name: to-host
    match: { event: connect, proto: tcp, remote: 192.0.2.10/32 }
    action: { dscp: AF41 }
`);
  assert.equal(doc.rules.length, 2);
});

test('JSON is accepted too', () => {
  assert.equal(parsePolicy('{"rules":[{"match":{"proto":"udp"},"action":{"dscp":"EF"}}]}').rules.length, 1);
});

test('the built-in policy is valid', () => {
  assert.ok(parsePolicy(DEFAULT_POLICY_TEXT).rules.length > 5);
});

test('every error is reported at once, with line and column', () => {
  const p = problems(`rules:
  - name: a
    match: { event: conect, remote: 300.1.1.1 }
    action: { dscp: XX }
  - name: a
    match: { remote_port: "9-1", colour: red }
    action: { tos: 300, deny: NOPE }
`);
  assert.deepEqual(p.map((x) => x.split(' ')[0]), ['3:21', '3:37', '4:21', '5:11', '6:12', '6:27', '7:13', '7:20', '7:31']);
  assert.ok(p.some((x) => /duplicate rule name "a"/.test(x)));
  assert.ok(p.some((x) => /Unrecognized key.*colour|colour/.test(x)));
});

test('YAML syntax errors carry positions', () => {
  const p = problems('rules:\n  - match: { proto: udp\n');
  assert.ok(p.length >= 1);
  assert.match(p[0]!, /^\d+:\d+ /);
});

test('action combinations are checked', () => {
  assert.ok(problems('rules: [{ action: {} }]').some((x) => /needs one of/.test(x)));
  assert.ok(problems('rules: [{ action: { deny: EPERM, dscp: EF } }]').some((x) => /cannot be combined/.test(x)));
  assert.ok(problems('rules: [{ action: { dscp: EF, tos: 8 } }]').some((x) => /not both/.test(x)));
});

test('JSON takes a path without the YAML parser, to the same result; a repeated key is still an error with its position', () => {
  const rules = Array.from({ length: 50 }, (_, i) => ({ name: `r${i}`, match: { remote_port: 1000 + i, proto: i % 2 ? 'udp' : 'tcp' }, action: { dscp: 'AF21' } }));
  const text = JSON.stringify({ rules }, null, 2);
  assert.ok(jsonFastPath(text) !== undefined);
  assert.deepEqual(parsePolicy(text), parsePolicy(`# the same, as YAML the fast path does not take\n${text}`));
  const dup = '{\n  "rules": [],\n  "rules": []\n}';
  assert.equal(jsonFastPath(dup), undefined);
  assert.equal(jsonFastPath('{"a": {"x": 1, "y": 2}, "b": [{"x": 1}, {"x": 2}], "c": "{\\"a\\": 1, \\"a\\": 2}"}') !== undefined, true, 'keys repeat only across objects, or inside strings');
  assert.equal(jsonFastPath('{"a\\u0062": 1, "ab": 2}'), undefined, 'an escaped key is the key it spells');
  const p = problems(dup);
  assert.equal(p.length, 1);
  assert.match(p[0]!, /^3:3 .*[Uu]nique/);
});

test('reserve: made into a request at load (IntServ service, the FLOWSPEC, the mark once admitted); bad ones are errors at their place', async () => {
  const { actionDecision } = await import('./engine.js');
  const doc = parsePolicy('rules:\n  - match: { exe: "*zoom*" }\n    action: { dscp: AF41, reserve: { service: guaranteed, template: H263CIF } }\n');
  const d = actionDecision(doc.rules[0]!.action)!;
  assert.equal(d.dscp, undefined, 'the reply marks nothing: best effort until admitted');
  assert.equal(d.reserve!.service, 'GS');
  assert.equal(d.reserve!.dscp, 34);
  assert.equal(d.reserve!.spec!.TokenRate, 32490);
  assert.equal(actionDecision(parsePolicy('rules:\n  - action: { reserve: { characterize: true } }\n').rules[0]!.action)!.reserve!.characterize, true);
  const bad: [string, RegExp][] = [
    ['{ reserve: { service: guaranteed } }', /needs a template/],
    ['{ reserve: { service: fast, template: G711 } }', /service is guaranteed or controlled-load/],
    ['{ reserve: { template: G711, characterize: true } }', /not both/],
    ['{ service: guaranteed, reserve: { template: G711 } }', /cannot be combined with service/],
    ['{ deny: EACCES, reserve: { template: G711 } }', /deny cannot be combined/],
    ['{ reserve: { template: G711, burst: 3 } }', /burst|Unrecognized|unrecognized/],
  ];
  for (const [action, re] of bad) {
    const found = problems(`rules:\n  - action: ${action}\n`);
    assert.ok(found.some((x) => re.test(x) && x.startsWith('2:')), `${action}: ${JSON.stringify(found)}`);
  }
});
