/* The fleet's etcd test cluster (etcd-cluster.ts) does what the fleet's tests rely on: three
 * members that are one store, that keep taking writes with a member killed (the leader, the
 * case that costs an election), a member restarted on its data, and a network namespace that
 * reaches the cluster at the same endpoints. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runSync } from '../exec.js';
import { requireRoot, requireTools } from '../prerequisites.js';
import { EtcdCluster } from './etcd-cluster.js';

requireTools('etcd', 'etcdctl', 'socat', 'ip', 'ss');
let cluster: EtcdCluster;
const ns = `qetcd${process.pid % 100000}`;

before(async () => {
  cluster = await EtcdCluster.start({ members: 3 });
});
after(async () => {
  await cluster?.close();
  runSync(['ip', 'netns', 'del', ns], { ok: 'any' });
});

async function ok(args: string[], o: Parameters<EtcdCluster['etcdctl']>[1] = {}): Promise<string> {
  const r = await cluster.etcdctl(args, o);
  assert.equal(r.status, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('three members on distinct ports are one store: a put through one member is read through another', async () => {
  const eps = cluster.endpoints.split(',');
  assert.equal(eps.length, 3);
  assert.equal(new Set(eps).size, 3);
  assert.match(cluster.url, /^etcd:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
  const list = JSON.parse(await ok(['member', 'list', '-w', 'json'])) as { members: { name: string }[] };
  assert.deepEqual(list.members.map((m) => m.name).sort(), ['m0', 'm1', 'm2']);
  await ok(['put', '/qosd/policy/fleet', 'rules: []'], { endpoints: cluster.endpoint(0) });
  // a linearizable read through member 2 waits until it has applied the put; then a
  // serializable one, answered from member 2's own store, shows the value reached it
  await ok(['get', '/qosd/policy/fleet'], { endpoints: cluster.endpoint(2) });
  assert.equal(await ok(['get', '/qosd/policy/fleet', '--print-value-only', '--consistency=s'], { endpoints: cluster.endpoint(2) }), 'rules: []\n');
});

test('with the leader killed the other two still take writes; restarted on its data and ports, it has them', async () => {
  const leader = await cluster.leader();
  await cluster.kill(leader);
  assert.equal(cluster.running(leader), false);
  const others = [0, 1, 2].filter((i) => i !== leader);
  // a proposal made while no member leads is dropped (etcd answers "request timed out" some
  // seconds later): a write waits for the two to elect one, as a client retrying would
  assert.ok(others.includes(await cluster.leader()));
  await ok(['put', '/qosd/status/n1', 'written without the old leader'], { endpoints: others.map((i) => cluster.endpoint(i)).join(',') });
  assert.equal(await ok(['get', '/qosd/status/n1', '--print-value-only'], { endpoints: cluster.endpoint(others[1]!) }), 'written without the old leader\n');
  await cluster.restart(leader);
  assert.equal(cluster.running(leader), true);
  // linearizable first (it waits for the member to catch up), then its own store
  await ok(['get', '/qosd/status/n1'], { endpoints: cluster.endpoint(leader) });
  assert.equal(await ok(['get', '/qosd/status/n1', '--print-value-only', '--consistency=s'], { endpoints: cluster.endpoint(leader) }), 'written without the old leader\n');
  assert.equal(await ok(['get', '/qosd/policy/fleet', '--print-value-only', '--consistency=s'], { endpoints: cluster.endpoint(leader) }), 'rules: []\n');
});

test('stopped whole and started again, the cluster has its data', async () => {
  await cluster.stopAll();
  assert.deepEqual([0, 1, 2].map((i) => cluster.running(i)), [false, false, false]);
  const r = await cluster.etcdctl(['get', '/qosd/policy/fleet', '--dial-timeout=1s', '--command-timeout=2s'], { endpoints: cluster.endpoint(0) });
  assert.notEqual(r.status, 0, 'nothing answers while every member is stopped');
  await cluster.startAll();
  assert.equal(await ok(['get', '/qosd/policy/fleet', '--print-value-only']), 'rules: []\n');
});

test('a process in a network namespace reaches the cluster at the endpoints reachableFrom returns', async () => {
  requireRoot('the test creates a network namespace');
  runSync(['ip', 'netns', 'add', ns]);
  // without the bridge, nothing in the namespace listens on the members' ports
  const before = await cluster.etcdctl(['get', '/qosd/policy/fleet', '--dial-timeout=1s', '--command-timeout=2s'], { netns: ns });
  assert.notEqual(before.status, 0);
  assert.match(before.stderr, /connection refused|deadline exceeded/);
  const endpoints = await cluster.reachableFrom(ns);
  assert.equal(endpoints, cluster.endpoints);
  assert.equal(await ok(['get', '/qosd/policy/fleet', '--print-value-only'], { netns: ns, endpoints }), 'rules: []\n');
  await ok(['put', '/qosd/status/ns-node', 'from the namespace'], { netns: ns, endpoints });
  assert.equal(await ok(['get', '/qosd/status/ns-node', '--print-value-only']), 'from the namespace\n');
  // every member through its own bridge
  for (let i = 0; i < 3; i++) await ok(['endpoint', 'health'], { netns: ns, endpoints: cluster.endpoint(i) });
  assert.equal(await cluster.reachableFrom(ns), endpoints, 'asked again: the same bridges');
});

test('close() stops every member, removes the directory, and can be called again', async () => {
  const { existsSync } = await import('node:fs');
  const c = await EtcdCluster.start({ members: 1 });
  const dir = c.dir;
  assert.ok(existsSync(dir));
  await c.close();
  await c.close();
  assert.equal(c.running(0), false);
  assert.equal(existsSync(dir), false);
});
