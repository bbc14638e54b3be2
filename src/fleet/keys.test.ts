import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QosError } from '../errors.js';
import { nodeView, takers, type FleetView } from './admin.js';
import { docKey, effective, keysFor, normPrefix, parseDocKey, parseFleet, parseShare, type DocVersion } from './keys.js';
import type { NodeStatus } from './node.js';

const P = '/qosd';
const v = (key: string, revision: number, value = `text ${revision}`): [string, DocVersion] => [key, { key, value, revision }];

test('a node runs, per kind, its canary key, else its node key, else its first group with a document, else the fleet\'s', () => {
  const docs = new Map([v('/qosd/policy/fleet', 5), v('/qosd/policy/group/media', 7), v('/qosd/policy/group/web', 8), v('/qosd/policy/node/n2', 9), v('/qosd/rules/fleet', 3)]);
  assert.equal(effective(docs, P, 'policy', 'n1', [])?.key, '/qosd/policy/fleet');
  assert.equal(effective(docs, P, 'policy', 'n1', ['media'])?.key, '/qosd/policy/group/media');
  // the order of --groups is the precedence among groups
  assert.equal(effective(docs, P, 'policy', 'n1', ['web', 'media'])?.key, '/qosd/policy/group/web');
  assert.equal(effective(docs, P, 'policy', 'n1', ['media', 'web'])?.key, '/qosd/policy/group/media');
  assert.equal(effective(docs, P, 'policy', 'n1', ['nogroup'])?.key, '/qosd/policy/fleet');
  assert.equal(effective(docs, P, 'policy', 'n2', ['media'])?.key, '/qosd/policy/node/n2');
  docs.set(...v('/qosd/policy/canary/n2', 10));
  assert.equal(effective(docs, P, 'policy', 'n2', ['media'])?.key, '/qosd/policy/canary/n2');
  // kinds are separate: the rules come from the fleet
  assert.equal(effective(docs, P, 'rules', 'n2', ['media'])?.key, '/qosd/rules/fleet');
  assert.equal(effective(new Map(), P, 'rules', 'n2', []), null);
  assert.deepEqual(keysFor(P, 'rules', 'n1', ['a', 'b']), ['/qosd/rules/canary/n1', '/qosd/rules/node/n1', '/qosd/rules/group/a', '/qosd/rules/group/b', '/qosd/rules/fleet']);
});

test('keys are parsed back to their target; other keys are not documents', () => {
  for (const t of [{ kind: 'policy', level: 'fleet' }, { kind: 'rules', level: 'group', name: 'media' }, { kind: 'policy', level: 'node', name: 'n-1.x' }, { kind: 'rules', level: 'canary', name: 'n1' }] as const) {
    assert.deepEqual(parseDocKey(P, docKey(P, t)), t);
  }
  for (const k of ['/qosd/status/n1', '/qosd/log', '/qosd/policy/node', '/qosd/policy/node/a/b', '/other/policy/fleet', '/qosd/policy/group/-x', '/qosdx/policy/fleet']) assert.equal(parseDocKey(P, k), null, k);
});

test('--fleet endpoints, the prefix and --canary are checked with clear errors', () => {
  assert.deepEqual(parseFleet('etcd://127.0.0.1:2379,h2:2380'), ['http://127.0.0.1:2379', 'http://h2:2380']);
  assert.deepEqual(parseFleet('etcd://[::1]:2379', true), ['https://[::1]:2379']);
  assert.deepEqual(parseFleet('etcds://h:1'), ['https://h:1']);
  for (const bad of ['http://h:1', 'etcd://', 'etcd://h', 'etcd://h:99999', 'etcd://h:1,,h:2', 'etcd://h:1/x y']) {
    assert.throws(() => parseFleet(bad), (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_USAGE', bad);
  }
  assert.equal(normPrefix('/qosd/'), '/qosd');
  assert.throws(() => normPrefix('qosd'), QosError);
  assert.throws(() => normPrefix('/'), QosError);
  assert.equal(parseShare('10%'), 0.1);
  assert.equal(parseShare('100'), 1);
  for (const bad of ['0%', '101%', 'x', '-5%']) assert.throws(() => parseShare(bad), QosError, bad);
});

function node(name: string, groups: string[], applied: NodeStatus['applied'], refused: NodeStatus['refused'] = { policy: null, rules: null }): NodeStatus {
  return { node: name, groups, pid: 1, version: 1, started: '', updated_at: '', applied, refused, last_error: null, agents: 0, decisions_per_s: 0, applies: { policy: 0, rules: 0 } };
}

test('status: a node is ok when it runs what it should, behind when it runs an older or another key, failed when it refused it', () => {
  const docs = new Map([v('/qosd/policy/fleet', 5), v('/qosd/policy/group/media', 7)]);
  const a = (key: string, revision: number) => ({ key, revision, sha256: '', at: '' });
  assert.equal(nodeView(P, docs, node('n1', [], { policy: a('/qosd/policy/fleet', 5), rules: null })).state, 'ok');
  assert.equal(nodeView(P, docs, node('n1', ['media'], { policy: a('/qosd/policy/fleet', 5), rules: null })).state, 'behind');
  const failed = nodeView(P, docs, node('n1', ['media'], { policy: a('/qosd/policy/fleet', 5), rules: null }, { policy: { key: '/qosd/policy/group/media', revision: 7, error: 'bad', at: '' }, rules: null }));
  assert.equal(failed.state, 'failed');
  assert.equal(failed.kinds.policy.refused?.error, 'bad');
  assert.equal(failed.kinds.rules.state, 'none');
  // a refusal of an older version does not make a node that runs the newest failed
  assert.equal(nodeView(P, docs, node('n1', [], { policy: a('/qosd/policy/fleet', 5), rules: null }, { policy: { key: '/qosd/policy/fleet', revision: 4, error: 'old', at: '' }, rules: null })).state, 'ok');
});

test('the nodes a push would reach: those with nothing above the target', () => {
  const view: FleetView = {
    revision: 10,
    docs: new Map([v('/qosd/policy/group/media', 7), v('/qosd/policy/node/n3', 8)]),
    nodes: [node('n1', [], { policy: null, rules: null }), node('n2', ['media'], { policy: null, rules: null }), node('n3', [], { policy: null, rules: null }), node('n4', ['web', 'media'], { policy: null, rules: null })],
  };
  assert.deepEqual(takers(view, P, { kind: 'policy', level: 'fleet' }).map((n) => n.node), ['n1']);
  assert.deepEqual(takers(view, P, { kind: 'policy', level: 'group', name: 'media' }).map((n) => n.node), ['n2', 'n4']);
  assert.deepEqual(takers(view, P, { kind: 'policy', level: 'group', name: 'web' }).map((n) => n.node), ['n4']);
  assert.deepEqual(takers(view, P, { kind: 'rules', level: 'fleet' }).map((n) => n.node), ['n1', 'n2', 'n3', 'n4']);
});
