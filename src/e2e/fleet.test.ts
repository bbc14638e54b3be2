/* The fleet end to end (issue 23, docs/fleet.md): a 3-member etcd cluster on loopback and five
 * daemons, each in a namespace of its own (a Testbed's client: the host; its server namespace
 * sees the host's packets). What a test checks is what a user would: the DSCP of a curl's SYN
 * on each host, by tshark, and `qos fleet status --json`. The tests run in order on one fleet:
 *
 *   h1  --ct-mask 0xfff (4 bits of rule number: at most 15 kernel rules; the canary's policy
 *       has 21, so h1 refuses it)
 *   h2  --groups media
 *   h3  gets a node document
 *   h4  restarted while etcd is down
 *   h5  nothing special
 */

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runSync } from '../exec.js';
import { EtcdCluster } from './etcd-cluster.js';
import { QOS, requireE2e, sh, Testbed, TestDaemon, waitFor } from './harness.js';

requireE2e('curl', 'etcd', 'etcdctl', 'nft');

const DSCP = { AF21: 18, EF: 46, CS4: 32, CS5: 40, AF41: 34, CS3: 24, CS2: 16 } as const;
const policy = (dscp: keyof typeof DSCP, extra = '') => `rules:\n  - name: web\n    match: { remote_port: 80 }\n    action: { dscp: ${dscp} }\n${extra}`;
/** 21 kernel rules: more than h1's connection-mark bits can number */
const WIDE = policy('CS3', Array.from({ length: 20 }, (_, i) => `  - name: p${1000 + i}\n    match: { remote_port: ${1000 + i} }\n    action: { dscp: CS1 }\n`).join(''));

interface Host { name: string; tb: Testbed; d: TestDaemon; endpoints: string }
let cluster: EtcdCluster;
const hosts: Host[] = [];
let dir: string;

function qos(args: string[], o: { ok?: boolean } = {}): { status: number | null; stdout: string; stderr: string; json: () => any } { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = sh([process.execPath, QOS, 'fleet', ...args, '--fleet', cluster.url]);
  if (o.ok !== false && r.status !== 0) throw new Error(`qos fleet ${args.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return { ...r, json: () => JSON.parse(r.stdout) };
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  runSync(['tee', f], { input: text });
  return f;
}

/** Pushes a policy and waits until every node that runs it reports it; its revision. */
function push(name: string, text: string, ...args: string[]): number {
  return qos(['push', file(name, text), '--wait', '--json', ...args]).json().revision as number;
}

/** The DSCP of a curl's SYN to port 80 from each host (under the agent; or to another port,
 * or without the agent), by tshark on the host's link. */
async function marks(which: Host[] = hosts, o: { port?: number; agent?: boolean } = {}): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const port = o.port ?? 80;
  await Promise.all(which.map(async (h) => {
    const cap = await h.tb.capture(`tcp dst port ${port} and tcp[tcpflags] & tcp-syn != 0`);
    const curl = ['curl', '-s', '--max-time', '5', `http://${h.tb.serverIp}:${port}/`];
    h.tb.inClient(o.agent === false ? curl : h.d.run(...curl));
    const syns = (await cap.packets()).filter((p) => p.syn && !p.ack && p.dstPort === port);
    assert.equal(syns.length >= 1, true, `${h.name}: no SYN captured`);
    out[h.name] = syns[0]!.dscp;
  }));
  return out;
}

const all = (dscp: number, which: Host[] = hosts) => Object.fromEntries(which.map((h) => [h.name, dscp]));

type Kind = { applied: { key: string; revision: number } | null; refused: { error: string } | null };
type Status = { revision: number; nodes: { node: string; state: string; last_error: string | null; kinds: { policy: Kind; rules: Kind } }[] };
const status = (): Status => qos(['status', '--json']).json() as Status;
/** Whether all five nodes report and each passes: a node whose status lapsed is not missed. */
const everyNode = (ok: (n: Status['nodes'][number]) => boolean): boolean => { const s = status(); return s.nodes.length === hosts.length && s.nodes.every(ok); };

/** The daemon's own status (its admin socket): the fleet part. */
function local(h: Host): { connected: boolean; applies: { policy: number }; applied: { policy: { key: string; revision: number } | null } } {
  const r = sh([process.execPath, QOS, 'status', '--json', '--admin', h.d.admin]);
  return JSON.parse(r.stdout).fleet;
}

before(async () => {
  cluster = await EtcdCluster.start({ members: 3 });
  const extra: Record<string, string[]> = { h1: ['--ct-mask', '0x00000fff', '--ct-generation-bits', '8'], h2: ['--groups', 'media'] };
  for (const name of ['h1', 'h2', 'h3', 'h4', 'h5']) {
    const tb = new Testbed();
    const endpoints = await cluster.reachableFrom(tb.client);
    const args = ['--fleet', `etcd://${endpoints}`, '--node', name, '--tc', 'off', '--fleet-lease', '3s', '--fleet-retry-max', '1s', ...(extra[name] ?? [])];
    const d = new TestDaemon(tb.dir, null, args, ['ip', 'netns', 'exec', tb.client]);
    hosts.push({ name, tb, d, endpoints });
  }
  dir = hosts[0]!.tb.dir;
  await Promise.all(hosts.map((h) => h.d.start()));
  await waitFor('five nodes in qos fleet status', () => status().nodes.length === 5);
});

after(async () => {
  for (const h of hosts) { await h.d.stop().catch(() => undefined); h.tb.cleanup(); }
  await cluster?.close();
});

test('a pushed policy reaches all five hosts: the mark on their SYNs changes, and each reports the same revision', async () => {
  const a = push('a.yaml', policy('AF21'));
  assert.deepEqual(await marks(), all(DSCP.AF21));
  const b = push('b.yaml', policy('EF'));
  assert.ok(b > a);
  assert.deepEqual(await marks(), all(DSCP.EF));
  const s = status();
  assert.deepEqual(s.nodes.map((n) => [n.node, n.state, n.kinds.policy.applied]), hosts.map((h) => [h.name, 'ok', { key: '/qosd/policy/fleet', revision: b }]));
});

test('precedence: a node of group media runs the group\'s policy, a node with its own runs that, the others the fleet\'s; a rollback puts them back', async () => {
  const before = status().revision;
  push('media.yaml', policy('CS4'), '--group', 'media');
  push('h3.yaml', policy('CS5'), '--node', 'h3');
  assert.deepEqual(await marks(), { ...all(DSCP.EF), h2: DSCP.CS4, h3: DSCP.CS5 });
  const s = status();
  assert.equal(s.nodes.find((n) => n.node === 'h2')!.kinds.policy.applied!.key, '/qosd/policy/group/media');
  assert.equal(s.nodes.find((n) => n.node === 'h3')!.kinds.policy.applied!.key, '/qosd/policy/node/h3');
  // the group and node documents did not exist at `before`: the rollback deletes them
  const r = qos(['rollback', String(before), '--json']).json();
  assert.deepEqual(r.changes.map((c: { op: string; key: string }) => `${c.op} ${c.key}`).sort(), ['delete /qosd/policy/group/media', 'delete /qosd/policy/node/h3']);
  await waitFor('every node back on the fleet\'s policy', () => everyNode((n) => n.state === 'ok' && n.kinds.policy.applied?.key === '/qosd/policy/fleet'));
  assert.deepEqual(await marks(), all(DSCP.EF));
  const h = qos(['history', '--json']).json();
  assert.deepEqual(h.entries.slice(0, 3).map((e: { action: string }) => e.action), ['rollback', 'push', 'push']);
});

test('an invalid policy written with etcdctl directly is refused by every node, reported in its status, and the last good one keeps marking', async () => {
  const bad = 'rules:\n  - name: web\n    match: { remote_port: 99999 }\n    action: { dscp: CS7 }\n';
  // the CLI refuses it before it reaches etcd
  const refused = qos(['push', file('bad.yaml', bad)], { ok: false });
  assert.equal(refused.status, 65, refused.stderr);
  assert.match(refused.stderr, /remote_port/);
  const put = await cluster.etcdctl(['put', '/qosd/policy/fleet', bad]);
  assert.equal(put.status, 0, put.stderr);
  await waitFor('every node reporting the refusal', () => everyNode((n) => n.state === 'failed'));
  for (const n of status().nodes) {
    assert.match(n.last_error ?? '', /remote_port/, n.node);
    assert.match(n.kinds.policy.refused?.error ?? '', /remote_port/, n.node);
  }
  assert.deepEqual(await marks(), all(DSCP.EF));
  push('b2.yaml', policy('EF'));
  assert.ok(everyNode((n) => n.state === 'ok' && n.last_error === null));
});

test('a kernel rule set pushed to a group marks the SYNs of that group\'s hosts, programs without the agent included', async () => {
  const set = JSON.stringify({ qosd_rules: 1, rules: [{ name: 'alt-http', match: { proto: 'tcp', remote_port: 8080 }, action: { dscp: 'CS6' } }] });
  const bad = qos(['push-rules', file('bad-rules.json', set.replace('8080', '80800'))], { ok: false });
  assert.equal(bad.status, 65, bad.stderr);
  const rev = qos(['push-rules', file('rules.json', set), '--group', 'media', '--wait', '--json']).json().revision as number;
  assert.deepEqual(await marks(hosts, { port: 8080, agent: false }), { ...all(0), h2: 48 });
  const s = status();
  assert.deepEqual(s.nodes.map((n) => [n.node, n.kinds.rules.applied]),
    hosts.map((h) => [h.name, h.name === 'h2' ? { key: '/qosd/rules/group/media', revision: rev } : null]));
});

test('canary: a policy one canary node refuses stops the roll-out, and the canary nodes are rolled back', async () => {
  const was = status();
  const fleetRev = was.nodes[0]!.kinds.policy.applied!.revision;
  const applies = Object.fromEntries(hosts.map((h) => [h.name, local(h).applies.policy]));
  const r = qos(['push', file('wide.yaml', WIDE), '--canary', '40%', '--json'], { ok: false });
  assert.equal(r.status, 65, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.error.code, 'QOS_ERR_FLEET_REFUSED');
  // 40 % of five: two canaries, the first by name
  assert.deepEqual(out.canary.nodes, ['h1', 'h2']);
  const h1 = out.canary.results.find((x: { node: string }) => x.node === 'h1');
  assert.equal(h1.state, 'refused');
  assert.match(h1.error, /connection-mark bits/);
  assert.equal(out.canary.results.find((x: { node: string }) => x.node === 'h2').state, 'applied');
  assert.ok(out.canary.rolled_back.every((x: { state: string }) => x.state === 'applied'), JSON.stringify(out.canary.rolled_back));
  // nothing reached the fleet's key; h2 ran the canary and is back; the others never moved
  const s = status();
  assert.ok(s.nodes.length === 5 && s.nodes.every((n) => n.state === 'ok' && n.kinds.policy.applied?.key === '/qosd/policy/fleet' && n.kinds.policy.applied.revision === fleetRev), JSON.stringify(s.nodes));
  const now = Object.fromEntries(hosts.map((h) => [h.name, local(h).applies.policy]));
  assert.deepEqual(now, { ...applies, h2: applies.h2! + 2 });
  assert.deepEqual(await marks(), all(DSCP.EF));
});

test('a node killed disappears from the status after its lease; restarted, it reports the same version again, applying nothing', async () => {
  const h5 = hosts[4]!;
  const rev = local(h5).applied.policy!.revision;
  h5.d.proc.kill('SIGKILL');
  await waitFor('h5 gone from qos fleet status', () => !status().nodes.some((n) => n.node === 'h5'));
  await h5.d.start();
  await waitFor('h5 back in qos fleet status', () => everyNode((n) => n.state === 'ok'));
  assert.deepEqual(status().nodes.find((n) => n.node === 'h5')!.kinds.policy.applied, { key: '/qosd/policy/fleet', revision: rev });
  assert.equal(local(h5).applies.policy, 0);
});

test('an etcd member killed during a push: every node converges', async () => {
  await cluster.kill(0);
  const c = push('c.yaml', policy('AF41'));
  assert.ok(everyNode((n) => n.state === 'ok' && n.kinds.policy.applied?.revision === c));
  assert.deepEqual(await marks(), all(DSCP.AF41));
  await cluster.restart(0);
});

test('all members stopped: nodes keep enforcing, one restarted meanwhile enforces from disk; back, they catch up once each', async () => {
  const rev = status().nodes[0]!.kinds.policy.applied!.revision;
  const applies = Object.fromEntries(hosts.map((h) => [h.name, local(h).applies.policy]));
  await cluster.stopAll();
  await waitFor('every node seeing etcd gone', () => hosts.every((h) => !local(h).connected));
  assert.deepEqual(await marks(), all(DSCP.AF41));
  const h4 = hosts[3]!;
  await h4.d.stop();
  h4.d.log = '';
  await h4.d.start();
  assert.match(h4.d.log, /enforcing the last versions applied \(from local disk\)/);
  assert.equal(local(h4).applied.policy?.revision, rev);
  assert.deepEqual(await marks([h4]), all(DSCP.AF41, [h4]));
  await cluster.startAll();
  await waitFor('every node connected again', () => hosts.every((h) => local(h).connected));
  await waitFor('five nodes reporting again', () => status().nodes.length === 5);
  // nothing changed while etcd was away: nothing is applied again (h4 started afresh)
  assert.deepEqual(Object.fromEntries(hosts.map((h) => [h.name, local(h).applies.policy])), { ...applies, h4: 0 });

  // cut from etcd while two versions are pushed: each node applies the last one, once
  for (const h of hosts) cutFromEtcd(h, true);
  await waitFor('every node cut from etcd', () => hosts.every((h) => !local(h).connected));
  const d = qos(['push', file('d.yaml', policy('CS3')), '--json']).json().revision as number;
  const e = qos(['push', file('e.yaml', policy('CS2')), '--json']).json().revision as number;
  assert.ok(e > d);
  const before = Object.fromEntries(hosts.map((h) => [h.name, local(h).applies.policy]));
  for (const h of hosts) cutFromEtcd(h, false);
  await waitFor('every node running the last version', () => everyNode((n) => n.state === 'ok' && n.kinds.policy.applied?.revision === e));
  assert.deepEqual(Object.fromEntries(hosts.map((h) => [h.name, local(h).applies.policy])), Object.fromEntries(hosts.map((h) => [h.name, before[h.name]! + 1])));
  const applied = (h: Host, rev: number) => h.d.log.split(`applied policy /qosd/policy/fleet at revision ${rev}"`).length - 1;
  for (const h of hosts) {
    // the log comes through a pipe: it may trail the status
    await waitFor(`${h.name}'s log line for revision ${e}`, () => applied(h, e) > 0);
    assert.equal(applied(h, e), 1, `${h.name} applied ${e} once`);
    assert.equal(applied(h, d), 0, `${h.name} applied the version it missed`);
  }
  assert.deepEqual(await marks(), all(DSCP.CS2));
  // what runs is on disk too
  assert.equal(JSON.parse(readFileSync(join(hosts[0]!.tb.dir, 'fleet', 'state.json'), 'utf8')).applied.policy.revision, e);
});

/** Refuses (TCP reset) or allows again a host's connections to etcd, in its namespace. */
function cutFromEtcd(h: Host, cut: boolean): void {
  const table = 'qosd_test_cut';
  if (!cut) { sh(['ip', 'netns', 'exec', h.tb.client, 'nft', 'delete', 'table', 'inet', table]); return; }
  const ports = h.endpoints.split(',').map((e) => e.slice(e.lastIndexOf(':') + 1));
  const f = file(`cut-${h.name}.nft`, `table inet ${table} {\n  chain out {\n    type filter hook output priority 0;\n    tcp dport { ${ports.join(', ')} } reject with tcp reset\n  }\n}\n`);
  const r = sh(['ip', 'netns', 'exec', h.tb.client, 'nft', '-f', f]);
  assert.equal(r.status, 0, r.stderr);
}
