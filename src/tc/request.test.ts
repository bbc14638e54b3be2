import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { actionDecision } from '../policy/engine.js';
import { parsePolicy } from '../policy/load.js';
import { toDecision } from '../script/js-worker.js';
import { tcRequestOf } from './request.js';

test('a flow action: a template, fields over it, the service over both, the mode given or the service\'s', () => {
  const r = tcRequestOf({ template: 'H263CIF', service: 'guaranteed' });
  assert.equal(r.spec.TokenRate, 32490);
  assert.equal(r.spec.ServiceType, 'Guaranteed');
  assert.equal(r.mode, 'shape');
  const s = tcRequestOf({ template: 'G711', flowspec: { TokenBucketSize: '4kB' }, mode: 'discard' });
  assert.equal(s.spec.TokenBucketSize, 4000);
  assert.equal(s.mode, 'discard');
  assert.equal(tcRequestOf({ flowspec: { TokenRate: '1Mbit' } }).mode, 'borrow');
  assert.throws(() => tcRequestOf({ service: 'guaranteed' }), /needs a FLOWSPEC/);
  assert.throws(() => tcRequestOf({ template: 'H999' }), /no FLOWSPEC template "H999"/);
  assert.throws(() => tcRequestOf({ flowspec: { TokenRate: '1Mbit' }, mode: 'police' }), /mode must be/);
  assert.throws(() => tcRequestOf({ flowspec: { TokenRate: '2Mbit', PeakBandwidth: '1Mbit' } }), /PeakBandwidth/);
});

test('a policy rule asks for a flow; a bad one is a policy error at its place; the decision carries the request as data', () => {
  const doc = parsePolicy('rules:\n  - name: v\n    match: { proto: udp }\n    action: { dscp: AF41, template: G729 }\n', 'p.yaml');
  const d = actionDecision(doc.rules[0]!.action)!;
  assert.equal(d.dscp, 34);
  assert.equal(d.tc!.spec.TokenRate, tcRequestOf({ template: 'G729' }).spec.TokenRate);
  assert.deepEqual(JSON.parse(JSON.stringify(d)), d, 'plain data: it crosses the compile worker and script workers');
  assert.throws(() => parsePolicy('rules:\n  - match: { proto: udp }\n    action: { template: H999 }\n', 'p.yaml'), (e: unknown) => {
    assert.ok(e instanceof QosError && e.code === 'QOS_ERR_POLICY_INVALID');
    assert.equal(e.problems.length, 1);
    assert.match(e.problems[0]!.message, /no FLOWSPEC template "H999"/);
    assert.equal(e.problems[0]!.line, 3);
    return true;
  });
  assert.throws(() => parsePolicy('rules:\n  - action: { deny: EACCES, service: guaranteed, template: G711 }\n', 'p.yaml'),
    (e: unknown) => e instanceof QosError && /deny cannot be combined with service, template/.test(e.problems[0]?.message ?? ''));
});

test('a JavaScript handler returns the same keys: its decision carries the flow', () => {
  const r = toDecision(JSON.stringify({ dscp: 'AF41', template: 'H263CIF', mode: 'discard' }));
  assert.ok('decision' in r);
  assert.equal(r.decision!.tc!.mode, 'discard');
  assert.equal(r.decision!.tc!.spec.TokenRate, 32490);
  const bad = toDecision(JSON.stringify({ template: 'H999' }));
  assert.ok('fault' in bad && /no FLOWSPEC template "H999"/.test(bad.fault.message));
});
