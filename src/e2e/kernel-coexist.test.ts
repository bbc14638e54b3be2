/* The kernel table beside another tool that keeps state in the same connection marks (as
 * nft-dscpclassify or QoSmate keep a DSCP in the low byte): in a client namespace a daemon
 * owns its table, and another table sets its own bits of each flow's mark before qosd's chain
 * and reads and changes them after it. qosd's rules still mark the packets (DSCP counted where
 * they arrive), the other bits survive on the flow's conntrack entry, the flow is classified
 * once however the other bits change, and a rule change classifies it again without touching
 * them. Also: what `--kernel auto` announces it installed (log, `qos status`). */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { callJson } from '../daemon/admin-client.js';
import { hex32 } from '../kernel/ctmark.js';
import { AGENT_TEST_BIN, requireE2e, QOS, sh, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e();
const STATIC = join(AGENT_TEST_BIN, 'static_send');
let tb: Testbed;

before(() => { tb = new Testbed(); });
after(() => { tb.cleanup(); });

/** Packets counted by the rules of a table in the client namespace, by comment. */
function counters(table: string): Record<string, number> {
  const r = sh(['ip', 'netns', 'exec', tb.client, 'nft', '-j', 'list', 'table', 'inet', table]);
  assert.equal(r.status, 0, r.stderr);
  const out: Record<string, number> = {};
  for (const o of (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] }).nftables) {
    const c = o.rule?.expr.find((e) => e.counter)?.counter;
    if (o.rule?.comment && c) out[o.rule.comment] = c.packets;
  }
  return out;
}

/** How many packets of a rule qosd's table classified (the counters of its layer maps' elements). */
function classified(table: string, ruleId: string): number {
  const r = sh(['ip', 'netns', 'exec', tb.client, 'nft', '-j', 'list', 'table', 'inet', table]);
  let n = 0;
  for (const o of (JSON.parse(r.stdout) as { nftables: { map?: { name: string; elem?: [{ elem?: { comment?: string; counter?: { packets: number } } }, unknown][] } }[] }).nftables) {
    if (!o.map || !/^m[46]_/.test(o.map.name)) continue;
    for (const [k] of o.map.elem ?? []) if (k.elem?.comment === ruleId) n += k.elem.counter?.packets ?? 0;
  }
  return n;
}

const CASES = [
  { label: 'the default mask, the other table in the low byte (where nft-dscpclassify and QoSmate keep a DSCP)', args: [] as string[], ours: 0xffffff00, theirs: 0x000000ff, set: 0x2a, flip: 0x40, port: 7401 },
  { label: 'mask 0xfff0fff0 (not one run of bits), the other table in 0x000f000f', args: ['--ct-mask', '0xfff0fff0'], ours: 0xfff0fff0, theirs: 0x000f000f, set: 0x00050003, flip: 0x00080000, port: 7402 },
];

for (const c of CASES) {
  test(`${c.label}: qosd marks, the other bits survive on the flow, a flow is classified once, a rule change classifies it again without touching them`, async () => {
    const dir = join(tb.dir, `d${c.port}`);
    sh(['mkdir', '-m', '700', dir]);
    const daemon = await new TestDaemon(dir, null, ['--kernel', 'on', '--nice', 'keep', ...c.args], ['ip', 'netns', 'exec', tb.client]).start();
    const other = `other${c.port}`;
    try {
      const stable = (c.theirs & ~c.flip) >>> 0;
      // before qosd's chain (-150; after conntrack's, -200): set its bits once per flow; after
      // it: check they are still there, and qosd's too, and change one of its bits every packet
      const file = join(tb.dir, `${other}.nft`);
      writeFileSync(file, `table inet ${other} {
  chain before {
    type filter hook output priority -160; policy accept;
    udp dport ${c.port} ct mark & ${hex32(stable)} == ${hex32(c.set)} counter comment "before-kept"
    udp dport ${c.port} ct mark & ${hex32(c.theirs)} == 0 ct mark set ct mark & ${hex32(~c.theirs)} | ${hex32(c.set)} counter comment "before-set"
  }
  chain after {
    type filter hook output priority -100; policy accept;
    udp dport ${c.port} ct mark & ${hex32(stable)} == ${hex32(c.set)} counter comment "after-kept"
    udp dport ${c.port} ct mark & ${hex32(c.ours)} != 0 counter comment "after-ours"
    udp dport ${c.port} ct mark set ct mark ^ ${hex32(c.flip)} counter comment "after-flip"
  }
}
`);
      const loaded = sh(['ip', 'netns', 'exec', tb.client, 'nft', '-f', file]);
      assert.equal(loaded.status, 0, loaded.stderr);
      await tb.udpSink([c.port]);
      const arrived = tb.counter(`udp dport ${c.port}`, [46, 34]);
      const rule = (dscp: string) => ({ name: 'ours', match: { remote: tb.serverIp, proto: 'udp', remote_port: c.port }, action: { dscp } });
      const imported = await callJson<{ revision: number }>(daemon.admin, 'POST', '/v1/rules/import', { text: JSON.stringify({ qosd_rules: 1, rules: [rule('EF')] }) });
      // One flow (a fixed source port): ten packets under the first rule, ten after the change.
      // Each time: every packet arrives with the rule's DSCP; the other table's bits were set
      // once (its first packet) and are there after qosd's chain and at the flow's next packet,
      // qosd's too; the flow was classified once, though the other table changed its bits at
      // every packet.
      const tenPackets = async (k: number, dscp: number, ruleId: string) => {
        const s = tb.inClient([STATIC, tb.serverIp, String(c.port), '10', '1000', String(c.port + 40000)]);
        assert.equal(s.status, 0, s.stderr);
        await waitFor(`${10 * k} packets at the server`, () => arrived.read().total >= 10 * k);
        assert.deepEqual([arrived.read().total, arrived.read().byDscp.get(dscp)], [10 * k, 10], `round ${k}: every packet arrives with DSCP ${dscp}`);
        assert.deepEqual(counters(other), { 'before-set': 1, 'before-kept': 10 * k - 1, 'after-kept': 10 * k, 'after-ours': 10 * k, 'after-flip': 10 * k }, `round ${k}: the other table's bits`);
        assert.equal(classified(daemon.nftTable, ruleId), 1, `round ${k}: classified once`);
      };
      await tenPackets(1, 46, 'r1');
      // a new generation: the same flow is classified again, its other bits left as they were
      await callJson(daemon.admin, 'PUT', '/v1/rules/ours', { rule: rule('AF41'), revision: imported.revision });
      await tenPackets(2, 34, 'r2');
    } finally {
      await daemon.stop();
      sh(['ip', 'netns', 'exec', tb.client, 'nft', 'delete', 'table', 'inet', other]);
    }
  });
}

test('--kernel auto says what it installed and where: the log and qos status name the table, namespace, hook, mask and the rules acting on every process', async () => {
  const dir = join(tb.dir, 'status');
  sh(['mkdir', '-m', '700', dir]);
  const daemon = await new TestDaemon(dir, null, ['--nice', 'keep'], ['ip', 'netns', 'exec', tb.client]).start();
  try {
    const builtIn = ['voip-signalling', 'conferencing-media', 'streaming-control', 'interactive-shell', 'name-resolution', 'network-operations'];
    assert.match(daemon.log, new RegExp(`kernel rules installed: table inet ${daemon.nftTable} in network namespace net:\\[\\d+\\] \\(named ${tb.client}\\), hook output priority -150, connection-mark bits 0xffffff00; 6 policy rules \\(${builtIn.join(', ')}\\) and 0 \`qos rules\` rules mark the packets of every process`));
    const s = JSON.parse(sh([process.execPath, QOS, 'status', '--json', '--admin', daemon.admin]).stdout) as { kernel: Record<string, unknown> };
    const ns = s.kernel.namespace as { id: string; name: string; host: boolean | null };
    assert.match(ns.id, /^net:\[\d+\]$/);
    assert.notEqual(ns.host, true, "the test's namespace is not the host's");
    assert.deepEqual({ ...s.kernel, namespace: { ...ns, id: 'x', host: false }, last_apply_ms: 0, generation: 0, rules_file: '' }, {
      mode: 'auto', active: true, problem: null, table: `inet ${daemon.nftTable}`, installed: true, namespace: { id: 'x', name: tb.client, host: false }, hook: 'output', priority: -150,
      ct_mask: '0xffffff00', ct_rule_bits: '0x00ffff00', ct_generation_bits: '0xff000000', max_rules: 65535, policy_kernel_rules: builtIn, rule_set_in_kernel: 0,
      acts_on: 'the packets of every process in the namespace, not only programs under the agent', rules_file: '', revision: 0, enabled: true, rules: 0,
      policy_rules_in_kernel: 6, layers: { o4: 0, m4: 1, o6: 0, m6: 1 }, generation: 0, last_apply_ms: 0,
    });
    const text = sh([process.execPath, QOS, 'status', '--admin', daemon.admin]).stdout;
    assert.match(text, new RegExp(`^kernel +table inet ${daemon.nftTable} in network namespace net:\\[\\d+\\] \\(named ${tb.client}\\), hook output priority -150, connection-mark bits 0xffffff00 \\(rule number 0x00ffff00, generation 0xff000000; at most 65535 rules\\)$`, 'm'));
    assert.match(text, /^ +6 policy rules \(voip-signalling, .*network-operations\) and 0 `qos rules` rules mark the packets of every process in the namespace, not only programs under the agent; --kernel off: none$/m);
  } finally {
    await daemon.stop();
  }
});
