/* Checks of kernel rules the schema cannot make (ruleProblems), and which policy rules the
 * kernel can enforce (policyRuleInKernel). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { parsePolicy } from '../policy/load.js';
import { nftAtomProblems } from './plan.js';
import { policyRuleInKernel, ruleProblems, type KernelRuleDoc } from './rules.js';

const names = { users: new Map([['alice', 1000]]), groups: new Map([['staff', 50]]) };
const problems = (match: KernelRuleDoc['match']) => ruleProblems({ match, action: { dscp: 46 } } as KernelRuleDoc, names, nftAtomProblems).map((p) => `${p.path.join('.')}: ${p.message}`);

test('a rule naming a uid is keyed on at most five fields; more is refused with the reason', () => {
  assert.deepEqual(problems({ uid: 1000, remote: '10.0.0.0/8', remote_port: 443, local: '192.168.1.1' }), [], 'uid + remote + proto + port + local: five');
  const p = problems({ uid: 1000, gid: 50, remote: '10.0.0.0/8', remote_port: 443, local: '192.168.1.1' });
  assert.equal(p.length, 1);
  assert.match(p[0]!, /^match: .*at most 5/);
  assert.deepEqual(problems({ remote: '10.0.0.1', local: '10.0.0.2', remote_port: 1, local_port: 2 }), [], 'without ids every rule is one 5-tuple key');
});

test('names must exist, ids and names not both, families agree, ports need a ported protocol', () => {
  assert.match(problems({ user: 'bob' })[0]!, /^match\.user: no user "bob"/);
  assert.match(problems({ uid: 1, user: 'alice' })[0]!, /give uid or user, not both/);
  assert.match(problems({ family: 'inet', remote: 'fd00::1' })[0]!, /is IPv6 but the rule says family inet/);
  assert.match(problems({ proto: 'icmp', remote_port: 80 })[0]!, /ports need a protocol/);
});

test('the built-in policy: every port rule goes to the kernel, DNS (name-resolution) on TCP and UDP 53 and 853 among them', () => {
  const placed = parsePolicy(DEFAULT_POLICY_TEXT).rules.map((r) => [r.name, policyRuleInKernel(r, names, nftAtomProblems)] as const);
  const inKernel = placed.filter(([, k]) => k.rule).map(([n]) => n);
  assert.deepEqual(inKernel, ['voip-signalling', 'conferencing-media', 'streaming-control', 'interactive-shell', 'name-resolution', 'network-operations']);
  assert.deepEqual(placed.filter(([, k]) => k.reason).map(([n, k]) => `${n}: ${k.reason}`), [
    'bulk-by-program: nftables sees packets, not the program (exe, cmdline): the eBPF path marks by exe',
    'package-downloads: nftables sees packets, not the program (exe, cmdline): the eBPF path marks by exe',
  ]);
  const dns = placed.find(([n]) => n === 'name-resolution')![1].rule!;
  assert.deepEqual(dns, { name: 'name-resolution', match: { remote_port: [53, 853] }, action: { dscp: 'AF21' } }, 'no proto: tcp and udp both');
});
