import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { etcdctlCommands, rolePlan } from './roles.js';

test('a node may read the fleet\'s policy and rules and write only its own status; the admin everything under the prefix', () => {
  const plan = rolePlan('/qosd', ['n1', 'n2']);
  assert.equal(plan.prefix, '/qosd');
  assert.deepEqual(plan.roles, [
    { name: 'root', permissions: [] },
    { name: 'qosd-admin', permissions: [{ type: 'readwrite', key: '/qosd/', prefix: true }] },
    { name: 'qosd-node-n1', permissions: [
      { type: 'read', key: '/qosd/policy/', prefix: true },
      { type: 'read', key: '/qosd/rules/', prefix: true },
      { type: 'readwrite', key: '/qosd/status/n1', prefix: false },
    ] },
    { name: 'qosd-node-n2', permissions: [
      { type: 'read', key: '/qosd/policy/', prefix: true },
      { type: 'read', key: '/qosd/rules/', prefix: true },
      { type: 'readwrite', key: '/qosd/status/n2', prefix: false },
    ] },
  ]);
  assert.deepEqual(plan.users, [
    { name: 'root', roles: ['root'] },
    { name: 'qosd-admin', roles: ['qosd-admin'] },
    { name: 'qosd-node-n1', roles: ['qosd-node-n1'] },
    { name: 'qosd-node-n2', roles: ['qosd-node-n2'] },
  ]);
});

test('the prefix is the one given, and no node is a plan for the admin alone', () => {
  const plan = rolePlan('/site/a', []);
  assert.deepEqual(plan.roles.map((r) => r.name), ['root', 'qosd-admin']);
  assert.deepEqual(plan.roles[1]!.permissions, [{ type: 'readwrite', key: '/site/a/', prefix: true }]);
});

test('bad node names, a node given twice and bad prefixes are usage errors naming the value', () => {
  const usage = (f: () => unknown, text: string) => assert.throws(f, (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_USAGE' && e.message.includes(text));
  usage(() => rolePlan('/qosd', ['n 1']), '--node "n 1"');
  usage(() => rolePlan('/qosd', ['-n1']), '"-n1"');
  usage(() => rolePlan('/qosd', ['n1/x']), '"n1/x"');
  usage(() => rolePlan('/qosd', ['a'.repeat(64)]), 'a'.repeat(64));
  usage(() => rolePlan('/qosd', ['n1', 'n1']), '--node n1 is given twice');
  for (const p of ['qosd', '/', '', '/q osd']) usage(() => rolePlan(p, ['n1']), `"${p}"`);
  assert.equal(rolePlan('/qosd', ['a'.repeat(63), 'N.1_x-y']).roles.length, 4);
  // the prefix as the fleet's keys use it: a trailing slash is dropped
  assert.equal(rolePlan('/qosd/', ['n1']).roles[2]!.permissions[2]!.key, '/qosd/status/n1');
});

test('users without a password authenticate by certificate; passwords are given by user, and only for users of the plan', () => {
  const plan = rolePlan('/qosd', ['n1'], { passwords: { root: 'r00t', 'qosd-node-n1': 'n1pw' } });
  assert.deepEqual(plan.users.map((u) => [u.name, u.password]), [['root', 'r00t'], ['qosd-admin', undefined], ['qosd-node-n1', 'n1pw']]);
  assert.ok(!('password' in plan.users[1]!));
  assert.throws(() => rolePlan('/qosd', ['n1'], { passwords: { 'qosd-node-n9': 'x' } }), /qosd-node-n9/);
});

test('the etcdctl commands create roles, then users with their roles (root among them), and enable auth last', () => {
  const cmds = etcdctlCommands(rolePlan('/qosd', ['n1'], { passwords: { 'qosd-admin': 'pw' } }));
  assert.deepEqual(cmds, [
    ['etcdctl', 'role', 'add', 'root'],
    ['etcdctl', 'role', 'add', 'qosd-admin'],
    ['etcdctl', 'role', 'grant-permission', 'qosd-admin', 'readwrite', '/qosd/', '--prefix=true'],
    ['etcdctl', 'role', 'add', 'qosd-node-n1'],
    ['etcdctl', 'role', 'grant-permission', 'qosd-node-n1', 'read', '/qosd/policy/', '--prefix=true'],
    ['etcdctl', 'role', 'grant-permission', 'qosd-node-n1', 'read', '/qosd/rules/', '--prefix=true'],
    ['etcdctl', 'role', 'grant-permission', 'qosd-node-n1', 'readwrite', '/qosd/status/n1'],
    ['etcdctl', 'user', 'add', 'root', '--no-password'],
    ['etcdctl', 'user', 'grant-role', 'root', 'root'],
    ['etcdctl', 'user', 'add', 'qosd-admin', '--interactive=false'],
    ['etcdctl', 'user', 'grant-role', 'qosd-admin', 'qosd-admin'],
    ['etcdctl', 'user', 'add', 'qosd-node-n1', '--no-password'],
    ['etcdctl', 'user', 'grant-role', 'qosd-node-n1', 'qosd-node-n1'],
    ['etcdctl', 'auth', 'enable'],
  ]);
  // no password is ever in an argument vector (ps shows them)
  assert.ok(!cmds.flat().some((a) => a.includes('pw')));
});
