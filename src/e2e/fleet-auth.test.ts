/* The fleet's etcd access control, on a real TLS cluster with client-certificate auth (etcd
 * takes the certificate's CN as the user): `qos fleet roles --apply` bootstraps it (roles, users,
 * root, then auth enable; docs/fleet-etcd.md), after which a node's certificate reads the
 * fleet's policy and rules and writes its own status only, and a client without a certificate
 * is not let in. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdctlCommands, rolePlan } from '../fleet/roles.js';
import { requireTools } from '../prerequisites.js';
import { EtcdCluster } from './etcd-cluster.js';
import { QOS, sh } from './harness.js';
import { makeCerts, type Certs } from './tls-certs.js';

requireTools('etcd', 'etcdctl', 'openssl');
const dir = mkdtempSync(join(tmpdir(), 'qosd-fleet-auth-'));
let certs: Certs;
let cluster: EtcdCluster;

before(async () => {
  certs = makeCerts(join(dir, 'certs'), { clients: ['root', 'qosd-admin', 'qosd-node-n1', 'qosd-node-n2', 'qosd-node-n3'] });
  cluster = await EtcdCluster.start({ members: 1, tls: certs, client: 'root', dir });
});
after(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** qos fleet roles ARGS over TLS as the client `as`. */
function roles(as: string, ...args: string[]) {
  const c = certs.clients[as]!;
  return sh([process.execPath, QOS, 'fleet', 'roles', ...args, '--fleet', cluster.url, '--fleet-ca', certs.ca, '--fleet-cert', c.cert, '--fleet-key', c.key]);
}

const denied = /permission denied/;

test('qos fleet roles --apply, as the admin before auth is enabled, makes the roles and users and enables auth', async () => {
  // auth is off: any client certificate may do anything, and etcd knows no users yet
  assert.equal((await cluster.etcdctl(['user', 'list'], { as: 'qosd-admin' })).stdout, '');
  const r = roles('qosd-admin', '--node', 'n1', '--node', 'n2', '--apply', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { applied: Record<string, string[]> };
  assert.deepEqual(out.applied.rolesCreated, ['root', 'qosd-admin', 'qosd-node-n1', 'qosd-node-n2']);
  assert.deepEqual(out.applied.usersCreated, ['root', 'qosd-admin', 'qosd-node-n1', 'qosd-node-n2']);
  assert.deepEqual(out.applied.permissionsRevoked, []);
  assert.equal(out.applied.permissionsGranted!.length, 1 + 3 + 3);
  // auth is on: the admin may no longer list users (root only)...
  const list = await cluster.etcdctl(['user', 'list'], { as: 'qosd-admin' });
  assert.notEqual(list.status, 0);
  assert.match(list.stderr, denied);
  // ...root may, and sees each user with its role
  assert.deepEqual((await cluster.etcdctl(['user', 'list'], { as: 'root' })).stdout.trim().split('\n').sort(), ['qosd-admin', 'qosd-node-n1', 'qosd-node-n2', 'root']);
  assert.match((await cluster.etcdctl(['user', 'get', 'qosd-node-n1'], { as: 'root' })).stdout, /Roles: qosd-node-n1/);
  // the admin writes the fleet's documents
  for (const [k, v] of [['/qosd/policy/fleet', 'rules: []'], ['/qosd/rules/fleet', '{"rules":[]}'], ['/qosd/policy/node/n2', 'rules: []'], ['/qosd/log', '{}']]) {
    const put = await cluster.etcdctl(['put', k!, v!], { as: 'qosd-admin' });
    assert.equal(put.status, 0, `the admin puts ${k}: ${put.stderr}`);
  }
});

test('a node reads the fleet\'s policy and rules and writes its own status; other status keys and the documents are refused', async () => {
  const n1 = async (...args: string[]) => cluster.etcdctl(args, { as: 'qosd-node-n1' });
  assert.equal((await n1('get', '/qosd/policy/fleet', '--print-value-only')).stdout, 'rules: []\n');
  assert.equal((await n1('get', '/qosd/rules/fleet', '--print-value-only')).stdout, '{"rules":[]}\n');
  assert.equal((await n1('get', '/qosd/policy/', '--prefix', '--keys-only')).stdout.split('\n').filter(Boolean).join(' '), '/qosd/policy/fleet /qosd/policy/node/n2');
  const own = await n1('put', '/qosd/status/n1', '{"state":"ok"}');
  assert.equal(own.status, 0, own.stderr);
  assert.equal((await n1('get', '/qosd/status/n1', '--print-value-only')).stdout, '{"state":"ok"}\n');
  // its status on a lease, as the daemon writes it
  const lease = await n1('lease', 'grant', '30');
  assert.equal(lease.status, 0, lease.stderr);
  const id = /lease ([0-9a-f]+) granted/.exec(lease.stdout)?.[1];
  assert.ok(id, lease.stdout);
  assert.equal((await n1('put', '/qosd/status/n1', '{"state":"leased"}', '--lease', id)).status, 0);
  for (const [what, args] of [
    ['another node\'s status', ['put', '/qosd/status/n2', '{"state":"forged"}']],
    ['the fleet\'s policy', ['put', '/qosd/policy/fleet', 'rules: [forged]']],
    ['the fleet\'s rules', ['put', '/qosd/rules/fleet', '{}']],
    ['its own policy key', ['put', '/qosd/policy/node/n1', 'rules: []']],
    ['a key beside its status', ['put', '/qosd/status/n10', '{}']],
    ['the log', ['put', '/qosd/log', '{}']],
    ['a delete of the fleet\'s policy', ['del', '/qosd/policy/fleet']],
    ['another node\'s status, read', ['get', '/qosd/status/n2']],
    ['the whole prefix, read', ['get', '/qosd/', '--prefix']],
  ] as const) {
    const r = await n1(...args);
    assert.notEqual(r.status, 0, `${what}: ${r.stdout}`);
    assert.match(r.stderr, denied, what);
  }
  // nothing of the refused writes happened
  assert.equal((await cluster.etcdctl(['get', '/qosd/policy/fleet', '--print-value-only'], { as: 'qosd-admin' })).stdout, 'rules: []\n');
  const n2 = await cluster.etcdctl(['get', '/qosd/status/n2', '-w', 'json'], { as: 'qosd-admin' });
  assert.equal(n2.status, 0, n2.stderr);
  assert.equal((JSON.parse(n2.stdout) as { kvs?: unknown[] }).kvs, undefined, 'no /qosd/status/n2');
});

test('a client without a certificate is refused at the TLS handshake, by etcdctl and by qosd\'s client', async () => {
  const r = await cluster.etcdctl(['get', '/qosd/policy/fleet', '--dial-timeout=2s', '--command-timeout=3s'], { as: null });
  assert.notEqual(r.status, 0);
  assert.doesNotMatch(r.stdout, /rules/);
  const { fleetClient } = await import('../fleet/connect.js');
  const client = fleetClient({ fleet: cluster.url, ca: certs.ca });
  try {
    await assert.rejects(client.get('/qosd/policy/fleet').string(), /bad certificate|certificate required/);
  } finally {
    client.close();
  }
  // a node's certificate through the same client is let in
  const n1 = certs.clients['qosd-node-n1']!;
  const ok = fleetClient({ fleet: cluster.url, ca: certs.ca, cert: n1.cert, key: n1.key });
  try {
    assert.equal(await ok.get('/qosd/policy/fleet').string(), 'rules: []');
  } finally {
    ok.close();
  }
});

test('once auth is on, roles are changed as root: the admin is refused, root adds a node and changes nothing else', async () => {
  const admin = roles('qosd-admin', '--node', 'n1', '--node', 'n2', '--node', 'n3', '--apply');
  assert.equal(admin.status, 77, admin.stderr);
  assert.match(admin.stderr, /only etcd's root user may change roles and users/);
  const r = roles('root', '--node', 'n1', '--node', 'n2', '--node', 'n3', '--apply', '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as { applied: unknown }).applied, {
    rolesCreated: ['qosd-node-n3'], usersCreated: ['qosd-node-n3'],
    permissionsGranted: ['qosd-node-n3: read /qosd/policy/ (prefix)', 'qosd-node-n3: read /qosd/rules/ (prefix)', 'qosd-node-n3: readwrite /qosd/status/n3'],
    permissionsRevoked: [], rolesGranted: ['qosd-node-n3: qosd-node-n3'],
  });
  const n3 = await cluster.etcdctl(['put', '/qosd/status/n3', '{}'], { as: 'qosd-node-n3' });
  assert.equal(n3.status, 0, n3.stderr);
  // a permission granted by hand beyond the plan is revoked by the next apply
  assert.equal((await cluster.etcdctl(['role', 'grant-permission', 'qosd-node-n1', 'readwrite', '/qosd/status/n2'], { as: 'root' })).status, 0);
  const again = roles('root', '--node', 'n1', '--node', 'n2', '--node', 'n3', '--apply', '--json');
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual((JSON.parse(again.stdout) as { applied: { permissionsRevoked: string[]; permissionsGranted: string[] } }).applied.permissionsRevoked, ['qosd-node-n1: readwrite /qosd/status/n2']);
  assert.match((await cluster.etcdctl(['put', '/qosd/status/n2', '{}'], { as: 'qosd-node-n1' })).stderr, denied);
});

test('the etcdctl commands qos fleet roles prints make the same roles on a cluster of their own', async () => {
  const plain = await EtcdCluster.start({ members: 1, dir });
  try {
    const cmds = etcdctlCommands(rolePlan('/qosd', ['n1', 'n2']));
    assert.deepEqual(cmds.at(-1), ['etcdctl', 'auth', 'enable']);
    for (const argv of cmds.slice(0, -1)) {
      const r = await plain.etcdctl(argv.slice(1));
      assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
    }
    // compared before the last command, auth enable: after it, a client of this cluster
    // (no certificates) would need a password, and the plan's users have none
    for (const role of ['root', 'qosd-admin', 'qosd-node-n1', 'qosd-node-n2']) {
      const here = await cluster.etcdctl(['role', 'get', role], { as: 'root' });
      const there = await plain.etcdctl(['role', 'get', role]);
      assert.equal(here.status, 0, here.stderr);
      assert.equal(there.stdout, here.stdout, role);
    }
    for (const user of ['root', 'qosd-admin', 'qosd-node-n1', 'qosd-node-n2']) {
      assert.equal((await plain.etcdctl(['user', 'get', user])).stdout, (await cluster.etcdctl(['user', 'get', user], { as: 'root' })).stdout, user);
    }
    const enable = await plain.etcdctl(cmds.at(-1)!.slice(1));
    assert.equal(enable.status, 0, enable.stderr);
    assert.match((await plain.etcdctl(['get', '/qosd/policy/fleet'])).stderr, /user name is empty/);
  } finally {
    await plain.close();
  }
});

test('against a member that cannot answer (no quorum), qos fleet roles --apply gives up at --timeout, saying so', async () => {
  const trio = await EtcdCluster.start({ members: 3, dir });
  try {
    await trio.stopAll();
    // alone, a member of three accepts connections and never answers
    await trio.restart(0, { wait: false });
    const r = sh([process.execPath, QOS, 'fleet', 'roles', '--node', 'n1', '--apply', '--timeout', '2s', '--fleet', `etcd://${trio.endpoint(0)}`]);
    assert.equal(r.status, 69, r.stderr);
    assert.match(r.stderr, /^qos: listing roles: .*deadline exceeded/im);
  } finally {
    await trio.close();
  }
});

test('without client certificates, --password-file gives the users passwords, and each logs in with its own', async () => {
  const { writeFileSync } = await import('node:fs');
  const plain = await EtcdCluster.start({ members: 1, dir });
  try {
    const file = join(dir, 'passwords.json');
    writeFileSync(file, JSON.stringify({ root: 'root-pw', 'qosd-admin': 'admin-pw', 'qosd-node-n1': 'n1-pw' }), { mode: 0o600 });
    const r = sh([process.execPath, QOS, 'fleet', 'roles', '--node', 'n1', '--password-file', file, '--apply', '--fleet', plain.url]);
    assert.equal(r.status, 0, r.stderr);
    const as = (user: string, ...args: string[]) => plain.etcdctl([`--user=${user}`, ...args]);
    assert.equal((await as('qosd-admin:admin-pw', 'put', '/qosd/policy/fleet', 'rules: []')).status, 0);
    assert.equal((await as('qosd-node-n1:n1-pw', 'get', '/qosd/policy/fleet', '--print-value-only')).stdout, 'rules: []\n');
    assert.equal((await as('qosd-node-n1:n1-pw', 'put', '/qosd/status/n1', '{}')).status, 0);
    assert.match((await as('qosd-node-n1:n1-pw', 'put', '/qosd/policy/fleet', 'x')).stderr, denied);
    assert.match((await as('qosd-node-n1:admin-pw', 'get', '/qosd/policy/fleet')).stderr, /authentication failed/);
    assert.match((await plain.etcdctl(['get', '/qosd/policy/fleet'])).stderr, /user name is empty/);
    assert.match((await as('root:root-pw', 'user', 'list')).stdout, /qosd-node-n1/);
  } finally {
    await plain.close();
  }
});
