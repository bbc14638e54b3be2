/* `qos bench agent`, `policy`, `ab`, `rules`, `characterize`, `tc`, `tcp-cheat`, `ebpf` and `fleet` run end to end and print every figure (tiny sizes: this checks the
 * command, not the speed; the figures themselves are judged by running the benchmark). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QOS_CLI } from '../daemon/child.js';
import { ebpfBenchUnavailable } from './ebpf.js';
import { rulesBenchUnavailable } from './rules.js';
import { tcBenchUnavailable } from './tc.js';
import { cheatNetUnavailable } from './tcp-cheat-net.js';
import { MissingPrerequisite, requireTools } from '../prerequisites.js';

test('qos bench agent --json prints every figure, the agent against a bare shim among them', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'agent', '--json', '--rounds', '1', '--send-rounds', '1', '--connects', '300', '--sends', '20000', '--threads', '2', '--load-ms', '300', '--load-windows', '3',
    '--pairs', '3', '--curl-files', '20', '--strace-connects', '200', '--cpu-connects', '300'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, unknown> & { uncached: Record<string, number>; targets: Record<string, { ok: boolean; value: number }>; extra_syscalls_by_name: Record<string, number> };
  for (const k of ['ipc_rtt_ns_p50', 'connect_close_ns_p50_without', 'connect_close_ns_p50_with', 'send_path_ratio', 'daemon_decisions_per_s']) {
    assert.ok(Number.isFinite(j[k]), `${k} = ${j[k]}`);
    assert.ok((j[k] as number) > 0, `${k} = ${j[k]}`);
  }
  // Differences of noisy tiny runs may come out negative: only their presence is checked.
  assert.ok(Number.isFinite(j.added_ns_p50), `j.added_ns_p50 = ${j.added_ns_p50}`);
  assert.ok(Number.isFinite(j.added_ns_p99), `j.added_ns_p99 = ${j.added_ns_p99}`);
  assert.ok((j.uncached.connect_close_ns_p50_with ?? 0) > 0);
  for (const k of ['shim_ratio', 'bare_ratio', 'shim_ratio_curl', 'curl_ms_with', 'curl_ms_shim']) assert.ok(Number.isFinite(j[k]) && (j[k] as number) > 0, `${k} = ${j[k]}`);
  const [slowest, fastest] = j.daemon_decisions_per_s_range as number[];
  assert.ok(slowest! <= (j.daemon_decisions_per_s as number) && (j.daemon_decisions_per_s as number) <= fastest!, `the median of the windows lies within them: ${JSON.stringify(j.daemon_decisions_per_s_range)}`);
  for (const k of ['shim_ratio_range', 'bare_ratio_range', 'shim_ratio_curl_range']) {
    const [lo, hi] = j[k] as number[];
    assert.ok(lo! > 0 && lo! <= hi!, `${k} = ${JSON.stringify(j[k])}`);
  }
  // counted, not timed: the agent never takes system calls away from a connect
  assert.ok((j.extra_syscalls_per_cached_connect as number) >= 0, `extra_syscalls_per_cached_connect = ${j.extra_syscalls_per_cached_connect}`);
  for (const [k, v] of Object.entries(j.extra_syscalls_by_name)) assert.ok(v >= 0.05, `${k} = ${v}`);
  assert.ok(Number.isFinite(j.daemon_cpu_us_per_cached_connect) && (j.daemon_cpu_us_per_cached_connect as number) >= 0, `daemon_cpu_us_per_cached_connect = ${j.daemon_cpu_us_per_cached_connect}`);
  assert.ok(Number.isInteger(j.notifications_shed) && (j.notifications_shed as number) >= 0, `notifications_shed = ${j.notifications_shed}`);
  assert.deepEqual(Object.keys(j.targets).sort(), ['added_p50_vs_ipc_rtt', 'daemon_cpu_us_per_cached_connect', 'daemon_decisions_per_s', 'extra_syscalls_per_cached_connect', 'send_path_ratio', 'shim_ratio', 'shim_ratio_curl']);
});

test('qos bench agent refuses bad sizes with a usage error', () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'agent', '--rounds', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--rounds takes a positive whole number/);
});

test('qos bench policy --json prints every figure', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'policy', '--json', '--rounds', '1', '--threads', '2', '--load-ms', '300'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, number> & { targets: Record<string, unknown> };
  for (const k of ['rules_pair_rtt_ns_p50', 'js_pair_rtt_ns_p50', 'rules_decisions_per_s', 'rules_decisions_per_s_beside_hostile_script', 'hostile_ratio']) {
    assert.ok(Number.isFinite(j[k]) && j[k]! > 0, `${k} = ${j[k]}`);
  }
  assert.ok(Number.isFinite(j.js_added_ns_p50), `j.js_added_ns_p50 = ${j.js_added_ns_p50}`);
  assert.ok(Number.isFinite(j.js_decisions_per_s), `j.js_decisions_per_s = ${j.js_decisions_per_s}`);
  assert.ok(Number.isFinite(j.tcl_decisions_per_s), `j.tcl_decisions_per_s = ${j.tcl_decisions_per_s}`); // low-priority script threads may get no CPU in 300 ms
  assert.deepEqual(Object.keys(j.targets).sort(), ['hostile_ratio', 'js_decisions_per_s', 'tcl_decisions_per_s']);
});

test('qos bench ab --json runs both builds in alternating windows, a script beside the policy coming along', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-ab-test-'));
  try {
    writeFileSync(join(dir, 'p.yaml'), 'script: p.js\nrules: []\n');
    writeFileSync(join(dir, 'p.js'), "export function Connect() { return { dscp: 'EF' }; }\n");
    const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'ab', '--json', '--old', QOS_CLI, '--policy', join(dir, 'p.yaml'), '--rounds', '2', '--load-ms', '200', '--threads', '2'], { encoding: 'utf8', timeout: 110_000 });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { old: Record<string, number>; new: Record<string, number>; new_to_old_ratio: number; rounds: unknown[] };
    for (const side of [j.old, j.new]) for (const k of ['decisions_per_s', 'main_us_per_pair', 'all_us_per_pair']) assert.ok(side[k]! > 0, `${k} = ${side[k]}`);
    assert.ok(j.new_to_old_ratio > 0);
    assert.equal(j.rounds.length, 2);
    const bad = spawnSync(process.execPath, [QOS_CLI, 'bench', 'ab', '--old', join(dir, 'nope.js'), '--policy', join(dir, 'p.yaml')], { encoding: 'utf8' });
    assert.equal(bad.status, 64);
    assert.match(bad.stderr, /no such file: .*nope\.js/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('qos bench rules --json prints every figure, and the flow was marked by the default rule', { timeout: 120_000 }, () => {
  const why = rulesBenchUnavailable();
  if (why) throw new MissingPrerequisite(why);
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'rules', '--json', '--rules', '200', '--rounds', '1', '--seconds', '1', '--moves', '2'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, number> & { targets: Record<string, unknown>; layers: Record<string, number> };
  for (const k of ['throughput_ratio_10k', 'throughput_bps_without', 'throughput_bps_with', 'apply_ms_10k', 'import_ms', 'move_ms']) assert.ok(Number.isFinite(j[k]) && j[k]! > 0, `${k} = ${j[k]}`);
  assert.ok((j.default_rule_packets ?? 0) > 0, 'the iperf3 flow went through the table to the default rule');
  assert.ok(j.layers.m4! > 1, JSON.stringify(j.layers));
  assert.deepEqual(Object.keys(j.targets).sort(), ['apply_ms_10k', 'move_ms', 'throughput_ratio_10k']);
  // its own namespaces, named by its pid (another bench may be running on the machine)
  assert.equal(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`qosbr${r.pid}-`), false, 'its namespaces are gone');
});

test('qos bench tcp-cheat --json prints goodput with and without the cheat, and the cheat\'s counts; its namespaces are gone', { timeout: 120_000 }, () => {
  const why = cheatNetUnavailable();
  if (why) throw new MissingPrerequisite(why);
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'tcp-cheat', '--json', '--rounds', '1', '--seconds', '1'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { goodput_mbit: Record<string, { median: number; min: number; max: number }>; ratio: { median: number }; cheat: Record<string, number>; rounds: unknown[] };
  for (const k of ['cheating', 'plain']) {
    const g = j.goodput_mbit[k]!;
    assert.ok(g.median > 0 && g.min <= g.median && g.median <= g.max, `${k}: ${JSON.stringify(g)}`);
  }
  assert.ok(Number.isFinite(j.ratio.median) && j.ratio.median > 0);
  assert.equal(j.rounds.length, 2);
  assert.ok(j.cheat.fake_acks! > 0 && j.cheat.segments! > 0, JSON.stringify(j.cheat));
  assert.equal(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`qtcb${r.pid}-`), false, 'its namespaces are gone');
});

test('qos bench rules refuses a set too small to move a rule in', () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'rules', '--rules', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--rules takes at least 2/);
});

test('qos bench characterize --json prints every figure', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'characterize', '--json', '--packets', '100000', '--runs', '1', '--file-packets', '5000'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, number> & { targets: Record<string, unknown> };
  for (const k of ['offline_packet_rates_per_s', 'online_packets_per_s', 'peak_rss_mb', 'peak_rss_mb_4x', 'file_packets_per_s']) assert.ok(Number.isFinite(j[k]) && j[k]! > 0, `${k} = ${j[k]}`);
  assert.deepEqual(Object.keys(j.targets).sort(), ['offline_packet_rates_per_s', 'online_packets_per_s', 'rss_independent_of_length']);
});

test('qos bench hostile --json prints every figure, every request answered as the policy says', { timeout: 300_000 }, () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'hostile', '--json', '--requests', '50'], { encoding: 'utf8', timeout: 290_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, number> & { scenarios: Record<string, { p50: number; p99: number; answered: number; as_policy_says: number }>; targets: Record<string, unknown>; hostile: Record<string, number> };
  for (const k of ['legit_p99_ms_quiet', 'legit_p99_ms_under_fd_flood', 'legit_p99_ms_under_garbage', 'legit_p99_ms_under_request_flood', 'legit_p99_ms_under_script_abuse', 'legit_p99_ms_under_tcl_script_abuse']) {
    assert.ok(Number.isFinite(j[k]) && j[k]! > 0, `${k} = ${j[k]}`);
  }
  for (const [name, s] of Object.entries(j.scenarios)) {
    assert.equal(s.answered, 50, `${name}: every request answered`);
    // the rules always answer in time; whether a script did within its answer time is the
    // benchmark's target, not this test's (it depends on the machine's load)
    if (!name.includes('script')) assert.equal(s.as_policy_says, 1, `${name}: every answer the policy's`);
    else assert.ok(s.as_policy_says >= 0 && s.as_policy_says <= 1, `${name}: ${s.as_policy_says}`);
  }
  assert.ok(j.hostile.connections_refused! > 0 && j.hostile.garbage_connections! > 0 && j.hostile.requests_answered! > 0, JSON.stringify(j.hostile));
  assert.deepEqual(Object.keys(j.targets).sort(), ['legit_p99_ms_under_fd_flood', 'legit_p99_ms_under_garbage', 'legit_p99_ms_under_request_flood', 'legit_p99_ms_under_script_abuse', 'legit_p99_ms_under_tcl_script_abuse',
    'legit_script_decided_under_script_abuse', 'legit_script_decided_under_tcl_script_abuse']);
});

test('qos bench tc --json prints every figure, and the kernel held every flow and filter it made', { timeout: 300_000 }, () => {
  const why = tcBenchUnavailable();
  if (why) throw new MissingPrerequisite(why);
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'tc', '--json', '--flows-small', '20', '--flows-large', '40', '--rounds', '2', '--turns', '1', '--seconds', '1'], { encoding: 'utf8', timeout: 290_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, number> & { installed: Record<string, { classes: number; exact_filters: number }>; rounds: { flows: number; link: string; ratios: number[] }[] };
  // the sets go on one link in the first round and on the other in the second, one turn each
  assert.deepEqual(j.rounds.map((x) => [x.flows, x.link, x.ratios.length]), [[20, 'br0', 1], [40, 'br0', 1], [40, 'bz0', 1], [20, 'bz0', 1]]);
  for (const k of ['create_20_flows_ms', 'delete_20_flows_ms', 'throughput_ratio_20_flows', 'create_40_flows_ms', 'throughput_ratio_40_flows']) assert.ok(Number.isFinite(j[k]) && j[k]! > 0, `${k} = ${j[k]}`);
  assert.ok(Number.isFinite(j.shape_accuracy_pct), `shape_accuracy_pct = ${j.shape_accuracy_pct}`);
  assert.deepEqual(j.installed, { 20: { classes: 20, exact_filters: 20 }, 40: { classes: 40, exact_filters: 40 } });
});

test('qos bench tc refuses a small set that is not smaller than the large one', () => {
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'tc', '--flows-small', '500', '--flows-large', '500'], { encoding: 'utf8' });
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--flows-small \(500\) must be below --flows-large \(500\)/);
});

test('qos bench ebpf --json prints every figure, each run\'s sockets marked with the programs and not without, nothing left after', { timeout: 180_000 }, () => {
  const why = ebpfBenchUnavailable();
  if (why) throw new MissingPrerequisite(why);
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'ebpf', '--json', '--pairs', '2', '--connects', '200', '--seconds', '1', '--reloads', '2'], { encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.status, 0, r.stderr);
  type Side = { connect_ns: number; bps: number; connect_tos: number[]; syn_tos: number[] };
  const j = JSON.parse(r.stdout) as Record<string, { median: number; min: number; max: number }> & { marked_ok: boolean; pairs: { first: string; with: Side; without: Side }[]; targets: Record<string, unknown>; setup: { cgroup: string; cgroup_without: string } };
  for (const k of ['connect_ratio', 'throughput_ratio', 'reload_ms_1000_rules', 'reload_request_ms']) {
    const f = j[k]!;
    assert.ok(f.median > 0 && f.min <= f.median && f.median <= f.max, `${k}: ${JSON.stringify(f)}`);
  }
  assert.equal(j.marked_ok, true);
  assert.deepEqual(j.pairs.map((p) => p.first), ['without', 'with']);
  for (const p of j.pairs) {
    assert.deepEqual([p.with.connect_tos, p.without.connect_tos], [[184, 184], [0, 0]], 'EF on the client, nothing without');
    // iperf3's two connections (control and data) in each of its runs
    assert.ok(p.with.syn_tos.length >= 2 && p.with.syn_tos.every((t) => t === 136), `AF41 on iperf3: ${p.with.syn_tos.join(' ')}`);
    assert.ok(p.without.syn_tos.length >= 2 && p.without.syn_tos.every((t) => t === 0), `nothing without: ${p.without.syn_tos.join(' ')}`);
  }
  assert.deepEqual(Object.keys(j.targets).sort(), ['connect_ratio', 'throughput_ratio']);
  assert.equal(existsSync(j.setup.cgroup), false, 'its cgroups are gone');
  assert.equal(existsSync(j.setup.cgroup_without), false);
  assert.equal(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`qosbe${r.pid}-`), false, 'its namespaces are gone');
});

test('qos bench fleet --json prints every figure: each push reached every daemon, one status key and their watched keys each, nothing left after', { timeout: 180_000 }, () => {
  requireTools('etcd');
  const r = spawnSync(process.execPath, [QOS_CLI, 'bench', 'fleet', '--json', '--daemons', '2', '--pushes', '2', '--members', '1', '--idle-s', '1', '--policy-rules', '5'], { encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Record<string, number> & { pushes: { converge_ms: number; sent_bytes_per_node: number; policy_bytes: number }[]; keys: Record<string, number>; targets: Record<string, unknown>; meets_target: boolean };
  assert.equal(j.pushes.length, 2);
  for (const k of ['converge_ms_p50', 'converge_ms_p99', 'converge_ms_min', 'converge_ms_max', 'watch_bytes_per_update', 'policy_bytes', 'status_value_bytes', 'daemon_rss_mb_median', 'etcd_db_bytes_after']) {
    assert.ok(Number.isFinite(j[k]) && j[k]! > 0, `${k} = ${j[k]}`);
  }
  assert.ok(j.converge_ms_min! <= j.converge_ms_p50! && j.converge_ms_p50! <= j.converge_ms_max!);
  // a daemon's key is its status; it watches policy and rules at its canary, node, one group and fleet keys
  assert.equal(j.etcd_keys_per_node, 1);
  assert.equal(j.watched_keys_per_node, 8);
  assert.equal(j.watched_keys_per_node_by_keysfor, 8);
  assert.equal(j.keys.after_daemons_stopped, j.keys.without_daemons, 'a stopped daemon takes its status key with it');
  // the policy reached each daemon: etcd sent each at least its bytes
  for (const p of j.pushes) assert.ok(p.sent_bytes_per_node >= p.policy_bytes, JSON.stringify(p));
  assert.equal(typeof j.meets_target, 'boolean');
  assert.deepEqual(Object.keys(j.targets), ['converge_ms_p99']);
});
