/* What `qos status` prints about the daemon's policy. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus } from './format.js';

test('qos status says why the daemon runs its policy', () => {
  const s = (source: string, origin: string) => formatStatus({ pid: 1, uptime_s: 1, version: 1, agents_connected: 0, agent_socket: 'a', flows: 0, decisions_total: 0, policy: { source, origin, rules: 8, loaded_at: 't', last_error: null } });
  assert.match(s('<built-in>', 'built-in'), /^policy +<built-in> \(no \/etc\/qosd\/policy\.yaml\): 8 rules/m);
  assert.match(s('/etc/qosd/policy.yaml', 'default'), /^policy +\/etc\/qosd\/policy\.yaml \(the default file\): 8 rules/m);
  assert.match(s('/srv/p.yaml', 'option'), /^policy +\/srv\/p\.yaml \(--policy\): 8 rules/m);
});

test('qos status says how long agents wait for an answer (the daemon\'s --agent-timeout-ms)', () => {
  const base = { pid: 1, uptime_s: 1, version: 1, agents_connected: 2, agent_socket: '/run/qosd/agent.sock', flows: 0, decisions_total: 0, policy: { source: 'p', origin: 'option', rules: 1, loaded_at: 't', last_error: null } };
  assert.match(formatStatus({ ...base, agent_timeout_ms: 250 }), /^agents +2 connected on \/run\/qosd\/agent\.sock, waiting 250 ms for each answer unless told otherwise$/m);
});

test('qos status shows the dashboard\'s URL when the daemon serves one, and nothing of it otherwise', () => {
  const base = { pid: 1, uptime_s: 1, version: 1, agents_connected: 0, agent_socket: 'a', flows: 0, decisions_total: 0, policy: { source: 'p', origin: 'option', rules: 1, loaded_at: 't', last_error: null } };
  assert.match(formatStatus({ ...base, dashboard: { url: 'http://127.0.0.1:8080/', token_file: '/run/qosd/dashboard.token' } }), /^dashboard +http:\/\/127\.0\.0\.1:8080\/ \(qos dashboard prints the URL to log in with\)$/m);
  assert.doesNotMatch(formatStatus(base), /dashboard/);
});

test('qos status shows what the eBPF programs count and the limits in place, or why they are not', () => {
  const base = { pid: 1, uptime_s: 1, version: 1, agents_connected: 0, agent_socket: 'a', flows: 0, decisions_total: 0, policy: { source: 'p', origin: 'option', rules: 1, loaded_at: 't', last_error: null } };
  const ebpf = { attached: true, mode: 'auto', cgroup: '/sys/fs/cgroup/unified', generation: 2, programs: [1, 2], rules: [], files: [], notes: [], sockets_decided: 0, calls_refused: 0, stats: { programs: 12 } };
  const limits = { ifb: 'qosd-lim', problem: null, limits: [{ name: 'slow', id: 1, egress_bps: 8e6, ingress_bps: null }], interfaces: ['eth0'], sockets_tagged: 3 };
  const text = formatStatus({ ...base, ebpf: { ...ebpf, limits } });
  assert.match(text, /^apps +12 programs counted \(qos top\)$/m);
  assert.match(text, /^limits +1 on qosd-lim \(slow: out 8 Mbit\/s, in -\), on eth0; 3 sockets of the agent's tagged$/m);
  assert.match(formatStatus({ ...base, ebpf: { ...ebpf, limits: { ...limits, problem: 'the IFB device did not appear' } } }), /^limits +not in place: the IFB device did not appear$/m);
  assert.doesNotMatch(formatStatus({ ...base, ebpf: { ...ebpf, limits: { ...limits, limits: [] } } }), /^limits/m, 'a policy without limits: no line');
});
