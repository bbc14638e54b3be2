/* qos explain's walk of the rules (explain.ts) against the engine's verdict, on random policies
 * and calls; each kind of failing condition said as a person reads it; rule lines. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PolicyEngine, type CallFacts, type Identity } from './engine.js';
import { explainCall, ruleLines } from './explain.js';
import { parseAddr } from './net.js';
import { PolicySchema, type PolicyDoc } from './schema.js';

const id = (over: Partial<Identity> = {}): Identity => ({ pid: 1, uid: 1000, gid: 1000, user: 'alice', group: 'staff', exe: '/usr/bin/firefox', cmdline: 'firefox --new-window', unit: 'user@1000.service', cgroup: '/', ...over });
const call = (over: Partial<CallFacts> = {}): CallFacts => ({ event: 'connect', family: 'inet', type: 'stream', proto: 'tcp', remote: { addr: parseAddr('10.0.0.5')!, port: 5004 }, ...over });
const doc = (rules: unknown[], dflt?: unknown): PolicyDoc => PolicySchema.parse({ rules, ...(dflt ? { default: dflt } : {}) });

test('each rule that did not match says its first failing condition; the one that matched decides; the rest are not reached', () => {
  const d = doc([
    { name: 'voip', match: { exe: '*/zoom' }, action: { dscp: 'EF' } },
    { name: 'dns', match: { remote_port: 53 }, action: { dscp: 'CS2' } },
    { name: 'lan', match: { remote: '192.168.0.0/16' }, action: { dscp: 'CS1' } },
    { name: 'v6', match: { family: 'inet6' }, action: { dscp: 'AF11' } },
    { name: 'bob', match: { user: ['bob', 'carol'] }, action: { dscp: 'AF12' } },
    { name: 'binds', match: { event: 'bind' }, action: { dscp: 'AF13' } },
    { name: 'web', match: { proto: 'tcp', remote_port: '5000-5010' }, action: { dscp: 'AF41' } },
    { name: 'later', match: {}, action: { dscp: 'CS3' } },
  ]);
  const e = explainCall(d, id(), call());
  assert.equal(e.rule, 'web');
  assert.deepEqual(e.decision, { dscp: 34 });
  assert.deepEqual(e.rules.map((r) => [r.name, r.result, r.failed]), [
    ['voip', 'failed', 'exe */zoom did not match /usr/bin/firefox'],
    ['dns', 'failed', 'remote_port 5004 is not 53'],
    ['lan', 'failed', 'remote 10.0.0.5 is not in 192.168.0.0/16'],
    ['v6', 'failed', 'family inet is not inet6'],
    ['bob', 'failed', 'user bob, carol did not match alice'],
    ['binds', 'failed', 'event connect is not bind'],
    ['web', 'matched', undefined],
    ['later', 'not reached', undefined],
  ]);
  // a call without a remote end, and setsockopt (which a rule without event never takes)
  const s = explainCall(doc([{ name: 'dns', match: { remote_port: 53 }, action: { dscp: 'CS2' } }, { name: 'any', match: {}, action: { dscp: 'CS1' } }], { dscp: 'CS4' }), id(), { event: 'setsockopt', family: 'inet' });
  assert.deepEqual(s.rules.map((r) => r.failed), Array(2).fill('a rule without event does not apply to setsockopt (name it: event: setsockopt)'));
  assert.deepEqual([s.rule, s.decision], [null, null], 'the default does not answer setsockopt');
  const b = explainCall(doc([{ name: 'dns', match: { remote_port: 53 }, action: { dscp: 'CS2' } }], { dscp: 'CS4' }), id(), { event: 'bind', family: 'inet' });
  assert.deepEqual([b.rules[0]!.failed, b.rule, b.decision], ['the call has no remote end (remote_port 53)', 'default', { dscp: 32 }]);
});

test('the walk agrees with the engine on random policies and calls', () => {
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
  const exes = ['/usr/bin/curl', '/usr/bin/firefox', '/opt/zoom/zoom', '/usr/bin/python3.11'];
  const users = ['alice', 'bob', 'root'];
  const addrs = ['10.0.0.5', '192.0.2.7', '2001:db8::1', '192.168.1.1'];
  const cond = (): Record<string, unknown> => {
    const m: Record<string, unknown> = {};
    if (rnd(4) === 0) m.exe = pick(['*/curl', '/usr/bin/firefox', '/opt/*', '/python3\\.\\d+$/']);
    if (rnd(5) === 0) m.user = pick(users);
    if (rnd(5) === 0) m.uid = rnd(2) ? 0 : 1000;
    if (rnd(4) === 0) m.remote_port = pick([53, 443, '5000-5010', [80, 443]]);
    if (rnd(4) === 0) m.remote = pick(['10.0.0.0/8', '192.0.2.0/24', '2001:db8::/32']);
    if (rnd(5) === 0) m.proto = pick(['tcp', 'udp']);
    if (rnd(6) === 0) m.family = pick(['inet', 'inet6']);
    if (rnd(6) === 0) m.event = pick(['connect', 'sendto', ['bind', 'connect'], 'setsockopt']);
    if (rnd(8) === 0) m.cmdline = pick(['*--backup*', 'curl *']);
    return m;
  };
  for (let p = 0; p < 60; p++) {
    const d = doc(Array.from({ length: 1 + rnd(12) }, (_, i) => ({ name: `r${i}`, match: cond(), action: { dscp: pick(['EF', 'AF11', 'CS1']) } })), rnd(2) ? { dscp: 'CS4' } : undefined);
    const engine = new PolicyEngine(d);
    for (let c = 0; c < 40; c++) {
      const user = pick(users);
      const who = id({ exe: pick(exes), user, uid: user === 'root' ? 0 : 1000, cmdline: pick(['curl -O x', 'tar --backup', 'firefox']) });
      const a = pick(addrs);
      const f: CallFacts = { event: pick(['connect', 'sendto', 'bind', 'setsockopt'] as const), family: a.includes(':') ? 'inet6' : 'inet', type: 'stream', proto: pick(['tcp', 'udp'] as const), ...(rnd(5) ? { remote: { addr: parseAddr(a)!, port: pick([53, 443, 5004, 80]) } } : {}) };
      const want = engine.decide({ ...who }, f);
      const got = explainCall(d, who, f);
      assert.deepEqual([got.rule, got.decision], [want.rule, want.decision], `policy ${JSON.stringify(d)} call ${JSON.stringify({ ...f, remote: f.remote && { port: f.remote.port } })} ${who.exe} ${who.user}`);
    }
  }
});

test('rule lines in the policy text', () => {
  const text = '# a policy\nrules:\n  - name: a\n    match: { exe: "*/zoom" }\n    action: { dscp: EF }\n\n  - name: b\n    action: { dscp: CS1 }\n';
  assert.deepEqual(ruleLines(text), [3, 7]);
  const e = explainCall(doc([{ name: 'a', match: { exe: '*/zoom' }, action: { dscp: 'EF' } }, { name: 'b', action: { dscp: 'CS1' } }]), id(), call(), text);
  assert.deepEqual([e.rule, e.line, e.rules.map((r) => r.line)], ['b', 7, [3, 7]]);
});
