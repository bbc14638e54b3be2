/* What the CLI prints for a user: no internal tokens, no "null"s, and fixed facts without a
 * daemon. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { formatDecision, formatKernel } from './format.js';

const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, ...args], { encoding: 'utf8' });

test('a decision is shown without the agent cache token', () => {
  const r = { time: 't', event: 'connect', pid: 1, user: 'u', fd: 3, remote: { address: '192.0.2.1', port: 443 }, rule: 'web', exe: '/x' };
  assert.match(formatDecision({ ...r, reply: 'DSCP 34 CACHE 1795862445197000' }), /-> DSCP 34 \/x$/);
  assert.match(formatDecision({ ...r, reply: 'CACHE 17', cached: true }), /-> \(none\) \(cached\) \/x$/);
  assert.doesNotMatch(formatDecision({ ...r, reply: 'TOS 48 CACHE 3' }), /CACHE/);
});

test('qos rules values prints the fixed values with no daemon running', () => {
  const r = qos('rules', 'values');
  assert.equal(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { match: Record<string, unknown>; action: { dscp: string[] } };
  assert.ok(v.action.dscp.includes('EF') && 'remote_port' in v.match);
});

test('qos rules status prints facts, not nulls', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-cli-'));
  const d = await new DaemonChild(dir, 'rules: []\n', ['--kernel', 'off', '--nice', 'keep']).start();
  try {
    const r = qos('rules', 'status', '--admin', d.admin);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /problem: kernel rules are off/);
    assert.doesNotMatch(r.stdout, /\bnull\b/);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('qos daemon makes the directory of its sockets: a socket path in a missing directory works', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-cli-'));
  const socket = join(dir, 'not', 'yet', 'agent.sock');
  const d = await new DaemonChild(dir, 'rules: []\n', ['--kernel', 'off', '--nice', 'keep', '--socket', socket]).start();
  try {
    assert.match(d.log, /"qosd listening"/);
    assert.match(d.log, /"policy_origin":"option"/, 'the start log says the policy came from --policy');
    const st = qos('status', '--admin', d.admin, '--json');
    assert.equal(st.status, 0, st.stderr);
    assert.equal((JSON.parse(st.stdout) as { policy: { origin: string } }).policy.origin, 'option');
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a daemon whose start fails after its script workers started exits with the error (a bad rule store)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-cli-'));
  try {
    writeFileSync(join(dir, 'policy.yaml'), 'script: p.js\n');
    writeFileSync(join(dir, 'p.js'), "export function Connect(ev) { return { dscp: 'EF' }; }\n");
    writeFileSync(join(dir, 'rules.json'), '{ "qosd_rules": 1, "revision": 1, "enabled": true, "rules": [ { "match": { "remote": "10.0.0.300" }, "action": { "dscp": "EF" } } ] }\n');
    const r = spawnSync(process.execPath, [QOS_CLI, 'daemon', '--socket', join(dir, 'a.sock'), '--admin', join(dir, 'b.sock'), '--policy', join(dir, 'policy.yaml'),
      '--rules', join(dir, 'rules.json'), '--kernel', 'off', '--nice', 'keep'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 65, `exit ${r.status} (signal ${r.signal}): ${r.stderr.slice(-500)}`);
    assert.match(r.stderr, /rules\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('qos decisions: --limit 0 shows none of the recent ones, and with --follow only new ones; an empty log says so', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-cli-'));
  const d = await new DaemonChild(dir, 'rules:\n  - { name: nine, match: { remote_port: 9 }, action: { dscp: EF } }\n', ['--kernel', 'off', '--nice', 'keep']).start();
  const connect = (port: number) => {
    const r = spawnSync(process.execPath, [QOS_CLI, 'run', '--socket', d.socket, '--', 'python3', '-c', `import socket\ntry: socket.create_connection(('127.0.0.1', ${port}), 2)\nexcept OSError: pass`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  try {
    const empty = qos('decisions', '--admin', d.admin);
    assert.equal(empty.status, 0);
    assert.equal(empty.stdout, '');
    assert.match(empty.stderr, /none yet.*qos run/);
    connect(9);
    connect(9);
    const before = qos('decisions', '--admin', d.admin, '--json').stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; remote?: { port: number } });
    assert.deepEqual(before.filter((r) => r.event === 'connect').map((r) => r.remote?.port), [9, 9]);
    const none = qos('decisions', '--admin', d.admin, '--limit', '0');
    assert.equal(none.status, 0, none.stderr);
    assert.equal(none.stdout + none.stderr, '');
    const bad = qos('decisions', '--admin', d.admin, '--limit', '-1');
    assert.equal(bad.status, 64);
    assert.match(bad.stderr, /--limit takes a whole number/);
    // following from now on: the two old decisions are not shown, a new one is
    const f = spawn(process.execPath, [QOS_CLI, 'decisions', '--admin', d.admin, '--follow', '--limit', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    f.stdout.on('data', (b: Buffer) => (out += b));
    try {
      // the follower is registered once the daemon has sent its headers: a decision made after
      // the connection shows is the follower's; retry until one arrives
      for (let i = 0; i < 200 && !out; i++) { connect(9); await new Promise((r) => setTimeout(r, 50)); }
      const seen = out.trim().split('\n').map((l) => JSON.parse(l) as { event: string; rule: string; pid: number });
      const all = qos('decisions', '--admin', d.admin, '--json', '--limit', '1000').stdout.trim().split('\n').map((l) => JSON.parse(l) as { pid: number });
      assert.ok(seen.some((r) => r.event === 'connect' && r.rule === 'nine'), out);
      assert.ok(seen.every((r) => !before.some((b) => (b as { pid?: number }).pid === r.pid)), 'none of the decisions made before the follower came');
      assert.ok(all.length > before.length);
    } finally {
      f.kill();
    }
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const kernelStatus = {
  mode: 'auto', active: true, problem: null, table: 'inet qosd', installed: true, namespace: { id: 'net:[4026531833]', name: null, host: true }, hook: 'output', priority: -150,
  ct_mask: '0xffffff00', ct_rule_bits: '0x00ffff00', ct_generation_bits: '0xff000000', max_rules: 65535, policy_kernel_rules: ['interactive-shell', 'name-resolution'],
  rule_set_in_kernel: 3, acts_on: 'the packets of every process in the namespace, not only programs under the agent',
};

test('qos status says what the kernel table is, where, with which bits of the connection mark, and on whom it acts', () => {
  assert.deepEqual(formatKernel(kernelStatus), [
    "kernel       table inet qosd in network namespace net:[4026531833] (the host's), hook output priority -150, connection-mark bits 0xffffff00 (rule number 0x00ffff00, generation 0xff000000; at most 65535 rules)",
    '             2 policy rules (interactive-shell, name-resolution) and 3 `qos rules` rules mark the packets of every process in the namespace, not only programs under the agent; --kernel off: none',
  ]);
  assert.deepEqual(formatKernel({ ...kernelStatus, installed: false, policy_kernel_rules: [], rule_set_in_kernel: 0 }),
    ['kernel       no table: no policy rule the kernel can express and no `qos rules` (--kernel auto; would use connection-mark bits 0xffffff00 (rule number 0x00ffff00, generation 0xff000000; at most 65535 rules))']);
  assert.deepEqual(formatKernel({ mode: 'auto', active: false, problem: 'nftables cannot be used: cannot run nft: spawn nft ENOENT' }),
    ['kernel       none (--kernel auto): nftables cannot be used: cannot run nft: spawn nft ENOENT']);
  assert.deepEqual(formatKernel({ mode: 'off', active: false, problem: 'kernel rules are off (--kernel off)' }), ['kernel       none: kernel rules are off (--kernel off)']);
});

test('a bad --ct-mask is refused before anything starts: exit 64, the reason, no socket, no rule store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-cli-'));
  try {
    for (const [args, why] of [[['--ct-mask', '0xff'], /--ct-mask 0x000000ff: has 8 bits, and the generation takes 8 of them by default/], [['--ct-mask', 'low'], /--ct-mask takes a 32-bit mask/],
      [['--ct-mask', '0xffffffff', '--ct-generation-bits', '2'], /the generation takes 4 to 31 of the mask's 32 bits/]] as const) {
      const r = spawnSync(process.execPath, [QOS_CLI, 'daemon', '--socket', join(dir, 'a.sock'), '--admin', join(dir, 'b.sock'), '--rules', join(dir, 'rules.json'), '--nice', 'keep', ...args], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 64, r.stderr);
      assert.match(r.stderr, why);
      assert.deepEqual(readdirSync(dir), [], 'nothing made');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a mask with few rule-number bits limits the rules: an import past it is refused (exit 65) with the limit and why, and changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-cli-'));
  // 12 bits, 8 of them the generation's: 4 for the number, 15 rules
  const d = await new DaemonChild(dir, 'rules: []\n', ['--kernel', 'off', '--nice', 'keep', '--ct-mask', '0x0000fff0']).start();
  try {
    const set = (n: number) => { const f = join(dir, `set${n}.json`); writeFileSync(f, JSON.stringify({ qosd_rules: 1, rules: Array.from({ length: n }, (_, i) => ({ match: { remote_port: 1000 + i }, action: { dscp: 'EF' } })) })); return f; };
    assert.equal(qos('rules', 'import', set(15), '--admin', d.admin).status, 0);
    const before = qos('rules', 'export', '--admin', d.admin).stdout;
    const r = qos('rules', 'import', set(16), '--admin', d.admin);
    assert.equal(r.status, 65, r.stderr);
    assert.match(r.stderr, /16 kernel rules \(0 from the policy, 16 from the rule set\), but the connection-mark bits 0x0000fff0 leave 4 bits for the rule number: at most 15 rules/);
    assert.equal(qos('rules', 'export', '--admin', d.admin).stdout, before);
    assert.ok(existsSync(d.rulesFile));
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad --metrics-interval or --agent-timeout-ms is refused before anything starts: exit 64, the reason, no socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-cli-'));
  try {
    const cases = [
      ['--metrics-interval', '50ms', /--metrics-interval is at least 100ms, not 50 ms/], ['--metrics-interval', 'often', /--metrics-interval takes a time such as 30s/],
      ['--agent-timeout-ms', '0', /--agent-timeout-ms takes a positive whole number, not "0"/], ['--agent-timeout-ms', '60001', /--agent-timeout-ms is at most 60000, not 60001/],
    ] as const;
    for (const [option, v, why] of cases) {
      const r = spawnSync(process.execPath, [QOS_CLI, 'daemon', '--socket', join(dir, 'a.sock'), '--admin', join(dir, 'b.sock'), '--rules', join(dir, 'rules.json'), '--nice', 'keep', option, v], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 64, r.stderr);
      assert.match(r.stderr, why);
      assert.deepEqual(readdirSync(dir), [], 'nothing made');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
