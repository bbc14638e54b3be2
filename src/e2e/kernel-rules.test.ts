/* Kernel marking rules end to end: a daemon in the client namespace owns an nftables table
 * there; a statically linked program (which the agent cannot reach) and programs under the
 * agent send to the server namespace, where tcpdump and tshark read the DS field. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRules } from '../bench/rules-gen.js';
import { callJson } from '../daemon/admin-client.js';
import { AGENT_TEST_BIN, requireE2e, QOS, sh, TestDaemon, Testbed, waitFor, type Packet } from './harness.js';

requireE2e();
const STATIC = join(AGENT_TEST_BIN, 'static_send');
let tb: Testbed;
let daemon: TestDaemon;
let rulesetBefore = '';

// exe is agent-only: the agent marks python3's sockets AF11; the kernel never sees this rule
const POLICY = 'rules:\n  - { name: py, match: { exe: "*python3*" }, action: { dscp: AF11 } }\n';

const qos = (...args: string[]) => sh([process.execPath, QOS, ...args, ...(args[0] === 'rules' && args[1] !== 'validate' ? ['--admin', daemon.admin] : [])], { timeout: 120_000 });
const nftRuleset = () => sh(['ip', 'netns', 'exec', tb.client, 'nft', 'list', 'ruleset']).stdout;

before(async () => {
  tb = new Testbed();
  rulesetBefore = nftRuleset();
  daemon = await new TestDaemon(tb.dir, POLICY, ['--kernel', 'on'], ['ip', 'netns', 'exec', tb.client]).start();
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

function importRules(rules: unknown[], extra: string[] = []) {
  const file = join(tb.dir, `set${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ qosd_rules: 1, enabled: true, rules }));
  return qos('rules', 'import', file, ...extra);
}

const dscpsTo = (pkts: Packet[], port: number, v6: boolean) => [...new Set(pkts.filter((p) => p.dstPort === port && p.ipv6 === v6).map((p) => p.dscp))];

test('a static program is marked by the kernel rules: first match in order, wildcards, the default rule, IPv4 and IPv6, counters', async () => {
  const net24 = tb.serverIp.replace(/\.\d+$/, '.0/24');
  const r = importRules([
    { name: 'exact', match: { remote: tb.serverIp, proto: 'udp', remote_port: 7001 }, action: { dscp: 'EF' } },
    { name: 'prefix-range', match: { remote: net24, remote_port: '7000-7010' }, action: { dscp: 'AF41' } },
    { name: 'v6-host', match: { remote: tb.serverIp6, remote_port: 7003 }, action: { dscp: 'AF21' } },
    { name: 'any-7001', match: { remote_port: 7001 }, action: { dscp: 'CS5' } },
    { name: 'default', match: {}, action: { dscp: 'CS1' } },
  ]);
  assert.equal(r.status, 0, r.stderr);
  const cap = await tb.capture('udp');
  const sends: [string, number, number][] = [[tb.serverIp, 7001, 46], [tb.serverIp, 7002, 34], [tb.serverIp, 7020, 8], [tb.serverIp6, 7003, 18], [tb.serverIp6, 7001, 40]];
  for (const [addr, port] of sends) {
    const s = tb.inClient([STATIC, addr, String(port), '5', '2000']);
    assert.equal(s.status, 0, s.stderr);
  }
  const pkts = await cap.packets();
  for (const [addr, port, dscp] of sends) assert.deepEqual(dscpsTo(pkts, port, addr.includes(':')), [dscp], `${addr} port ${port}`);
  const list = JSON.parse(qos('rules', 'list', '--json').stdout) as { rules: { name: string; packets: number; bytes: number }[] };
  const count = Object.fromEntries(list.rules.map((x) => [x.name, x.packets]));
  assert.equal(count.exact, 5);
  assert.equal(count['prefix-range'], 5, 'port 7002: the prefix + range rule; 7001 went to the earlier exact rule');
  assert.equal(count['v6-host'], 5);
  assert.equal(count['any-7001'], 5, 'only IPv6 7001 reached it');
  assert.ok(count.default! >= 5, 'the default rule took the rest (and any neighbour discovery)');
});

test('marks set by the application or the agent stand, unless the rule says override', async () => {
  assert.equal(importRules([
    { match: { remote_port: 7101 }, action: { dscp: 'EF' } },
    { match: { remote_port: 7102 }, action: { dscp: 'EF', override: true } },
  ]).status, 0);
  const cap = await tb.capture('udp');
  const py = `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in (7101,7102):\n  for i in range(3): s.sendto(b'x'*50,('${tb.serverIp}',p))\n`;
  const r = tb.inClient(daemon.run('python3', '-c', py));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(tb.inClient([STATIC, tb.serverIp, '7101', '3', '1000']).status, 0);
  const pkts = await cap.packets();
  const fromPy = pkts.filter((p) => p.dstPort === 7101 && p.dscp !== 46);
  assert.deepEqual([...new Set(fromPy.map((p) => p.dscp))], [10], "python3's AF11 (from the agent) is kept on 7101");
  assert.equal(fromPy.length, 3);
  assert.equal(pkts.filter((p) => p.dstPort === 7101 && p.dscp === 46).length, 3, 'the static program, unmarked, gets EF from the kernel');
  assert.deepEqual(dscpsTo(pkts, 7102, false), [46], 'override: EF replaces AF11');
});

test('10,000 rules are applied in one transaction: traffic never sees a half-built table; a set with one bad rule is refused whole', async () => {
  assert.equal(importRules([{ name: 'old', match: { remote: tb.serverIp, remote_port: '7201-7202' }, action: { dscp: 'AF11' } }]).status, 0);
  const big = [...generateRules(9_999, 7, false), { name: 'new', match: { remote: tb.serverIp, remote_port: '7201-7202' }, action: { dscp: 'EF' } }];
  const cap = await tb.capture('udp and (dst port 7201 or dst port 7202)');
  // About 2,000 packets a second to each port until half a second after the import
  // returned: to 7201 each packet a new flow (source ports 2000 up, below the ephemeral ones), to 7202 one flow that
  // crosses the change and must be classified again.
  const senders = [
    tb.start(['ip', 'netns', 'exec', tb.client, STATIC, tb.serverIp, '7201', '25000', '250', '2000'], undefined, { ...process.env, STATIC_SEND_NEW_FLOWS: '1' }),
    tb.start(['ip', 'netns', 'exec', tb.client, STATIC, tb.serverIp, '7202', '25000', '250']),
  ];
  // Counted where they arrive: over 100 packets of each flow under the old set before the
  // import, and over 100 under the new one after it.
  const seen = [7201, 7202].map((port) => tb.counter(`udp dport ${port}`, [10, 46]));
  const atLeast = (dscp: number, n: number) => () => seen.every((c) => (c.read().byDscp.get(dscp) ?? 0) > n);
  await waitFor('100 packets of each flow with the old mark', atLeast(10, 100));
  const r = importRules(big);
  assert.equal(r.status, 0, r.stderr);
  await waitFor('100 packets of each flow with the new mark', atLeast(46, 100));
  for (const s of senders) s.kill('SIGKILL');
  const pkts = await cap.packets();
  for (const port of [7201, 7202]) {
    const seq = pkts.filter((p) => p.dstPort === port).map((p) => p.dscp);
    const by = new Map<number, number>();
    for (const d of seq) by.set(d, (by.get(d) ?? 0) + 1);
    assert.deepEqual([...by.keys()].sort((a, b) => a - b), [10, 46], `port ${port}: only the old (AF11) or the new (EF) mark: ${JSON.stringify([...by])}`);
    const firstNew = seq.indexOf(46);
    assert.ok(seq.slice(firstNew).every((d) => d === 46), `port ${port}: once the new set is in, every packet has it`);
    assert.ok(by.get(10)! > 100 && by.get(46)! > 100, `port ${port}: ${JSON.stringify([...by])}`);
  }

  const before = qos('rules', 'export').stdout;
  const bad = structuredClone(big) as { match: Record<string, unknown> }[];
  bad[4_999]!.match = { remote: '10.0.0.300' };
  const refused = importRules(bad);
  assert.equal(refused.status, 65, refused.stderr);
  assert.match(refused.stderr, /rules\[4999\]\.match\.remote/);
  assert.equal(qos('rules', 'export').stdout, before, 'the running set stays');
  const cap2 = await tb.capture('udp and dst port 7201');
  assert.equal(tb.inClient([STATIC, tb.serverIp, '7201', '3', '1000']).status, 0, 'the running set still marks');
  assert.deepEqual(dscpsTo(await cap2.packets(), 7201, false), [46]);
});

test('export and import round-trip exactly; a stale revision is refused; --dry-run changes nothing', async () => {
  assert.equal(importRules([{ name: 'a', match: { remote: '192.0.2.0/24', proto: ['tcp', 'udp'], remote_port: [80, '8000-8080'] }, action: { dscp: 'AF31', priority: 3 } }, { match: { user: 'root' }, action: { tos: 184 } }]).status, 0);
  const exported = qos('rules', 'export').stdout;
  const file = join(tb.dir, 'exported.json');
  writeFileSync(file, exported);
  assert.equal(qos('rules', 'import', file).status, 0);
  assert.equal(qos('rules', 'export').stdout, exported);
  const rev = (JSON.parse(qos('rules', 'list', '--json').stdout) as { revision: number }).revision;
  const stale = qos('rules', 'delete', '1', '--revision', String(rev - 1));
  assert.equal(stale.status, 75, stale.stderr);
  assert.match(stale.stderr, /revision/);
  const dry = qos('rules', 'move', 'a', '2', '--dry-run', '--revision', String(rev));
  assert.equal(dry.status, 0, dry.stderr);
  const docs = JSON.parse(dry.stdout) as { nftables: unknown[] }[];
  assert.equal(docs.length, 2, 'prepare and switch');
  assert.ok(docs[1]!.nftables.length > 1, 'the switch rewrites chains');
  assert.equal(qos('rules', 'export').stdout, exported);
  const moved = qos('rules', 'move', 'a', '2', '--revision', String(rev));
  assert.equal(moved.status, 0, moved.stderr);
  assert.notEqual(qos('rules', 'export').stdout, exported);
});

test("the policy's kernel-expressible rules go into the table, first; a reload that leaves them alone leaves the table alone", async () => {
  const status = () => callJson<{ generation: number; policy_rules_in_kernel: number }>(daemon.admin, 'GET', '/v1/rules/status');
  const before = await status();
  assert.equal(before.policy_rules_in_kernel, 0, 'the exe rule is agent-only');
  await callJson(daemon.admin, 'POST', '/v1/reload');
  assert.equal((await status()).generation, before.generation, 'same policy: the table was not touched');

  writeFileSync(daemon.policyFile, `${POLICY}  - { name: sip, match: { remote_port: 7301, proto: udp }, action: { dscp: CS6 } }\n`);
  await callJson(daemon.admin, 'POST', '/v1/reload');
  const after = await status();
  assert.equal(after.policy_rules_in_kernel, 1);
  assert.notEqual(after.generation, before.generation);
  const cap = await tb.capture('udp and dst port 7301');
  assert.equal(tb.inClient([STATIC, tb.serverIp, '7301', '3', '1000']).status, 0);
  assert.deepEqual(dscpsTo(await cap.packets(), 7301, false), [48], 'the policy rule marks the static program CS6');
  const list = JSON.parse(qos('rules', 'list', '--json').stdout) as { policy_rules: { name?: string; where: string; packets?: number }[] };
  assert.deepEqual(list.policy_rules.map((p) => [p.name, p.where, p.packets]), [['py', 'agent', undefined], ['sip', 'agent+kernel', 3]]);

  writeFileSync(daemon.policyFile, POLICY);
  await callJson(daemon.admin, 'POST', '/v1/reload');
  assert.equal((await status()).policy_rules_in_kernel, 0);
});

test('stopping the daemon removes its table: nft list ruleset is as before', async () => {
  assert.notEqual(nftRuleset(), rulesetBefore, 'the table is there while the daemon runs');
  await daemon.stop();
  assert.equal(nftRuleset(), rulesetBefore);
});
