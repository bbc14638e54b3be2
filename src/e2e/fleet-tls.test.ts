/* A fleet over TLS with etcd's client-certificate auth and the roles of `qos fleet roles`
 * (docs/fleet-etcd.md): a daemon with its node's certificate takes the policy the admin pushes
 * and reports it; a daemon that claims another node's name with that certificate cannot write
 * the other's status, and says why. */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { requireTools } from '../prerequisites.js';
import { EtcdCluster } from './etcd-cluster.js';
import { QOS, sh, TestDaemon, waitFor } from './harness.js';
import { makeCerts, type Certs } from './tls-certs.js';

requireTools('etcd', 'etcdctl', 'openssl', 'nft');
const dir = mkdtempSync(join(tmpdir(), 'qosd-fleet-tls-'));
let certs: Certs;
let cluster: EtcdCluster;
const daemons: TestDaemon[] = [];

/** TLS options as the client `as` (a name of the certificates' clients). */
const tls = (as: string) => ['--fleet-ca', certs.ca, '--fleet-cert', certs.clients[as]!.cert, '--fleet-key', certs.clients[as]!.key];

function fleet(as: string, ...args: string[]) {
  return sh([process.execPath, QOS, 'fleet', ...args, '--fleet', cluster.url, ...tls(as)]);
}

async function daemon(node: string, as: string): Promise<TestDaemon> {
  const d = new TestDaemon(mkdtempSync(join(dir, `${node}-`)), null, ['--fleet', cluster.url, '--node', node, ...tls(as), '--kernel', 'off', '--tc', 'off', '--fleet-retry-max', '1s']);
  daemons.push(d);
  return d.start();
}

function local(d: TestDaemon): { connected: boolean; etcd_error: { error: string } | null; applied: { policy: { key: string; revision: number } | null } } {
  return JSON.parse(sh([process.execPath, QOS, 'status', '--json', '--admin', d.admin]).stdout).fleet;
}

before(async () => {
  certs = makeCerts(join(dir, 'certs'), { clients: ['root', 'qosd-admin', 'qosd-node-n1'] });
  cluster = await EtcdCluster.start({ members: 1, tls: certs, client: 'root', dir });
  const r = fleet('qosd-admin', 'roles', '--node', 'n1', '--apply');
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  for (const d of daemons) await d.stop().catch(() => undefined);
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('over TLS with the node role only, a daemon takes the pushed policy and reports it; the admin sees it', async () => {
  const d = await daemon('n1', 'qosd-node-n1');
  await waitFor('n1 connected', () => local(d).connected);
  const p = join(dir, 'p.yaml');
  writeFileSync(p, 'rules:\n  - name: web\n    match: { remote_port: 80 }\n    action: { dscp: AF21 }\n');
  const push = fleet('qosd-admin', 'push', p, '--wait', '--json');
  assert.equal(push.status, 0, push.stdout + push.stderr);
  const rev = JSON.parse(push.stdout).revision as number;
  const applied = local(d).applied.policy;
  assert.deepEqual([applied?.key, applied?.revision], ['/qosd/policy/fleet', rev]);
  const s = JSON.parse(fleet('qosd-admin', 'status', '--json').stdout) as { nodes: { node: string; state: string }[] };
  assert.deepEqual(s.nodes.map((n) => [n.node, n.state]), [['n1', 'ok']]);
  // a node's certificate cannot push
  const denied = fleet('qosd-node-n1', 'push', p);
  assert.equal(denied.status, 77, denied.stderr);
  assert.match(denied.stderr, /permission denied/);
});

test('a daemon that claims another node\'s name with its certificate cannot write that node\'s status', async () => {
  const d = await daemon('n2', 'qosd-node-n1');
  await waitFor('the refusal in n2\'s own status', () => /permission denied/.test(local(d).etcd_error?.error ?? ''));
  const s = JSON.parse(fleet('qosd-admin', 'status', '--json').stdout) as { nodes: { node: string }[] };
  assert.deepEqual(s.nodes.map((n) => n.node), ['n1']);
});
