import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyEngine, type CallFacts, type Identity } from './engine.js';
import { cidrContains, parseAddr, parseCidr } from './net.js';
import { compilePattern } from './glob.js';
import { parsePolicy } from './load.js';

const id = (over: Partial<Identity> = {}): Identity => ({
  pid: 1, uid: 1000, gid: 1000, user: 'alice', group: 'alice', exe: '/usr/bin/curl', cmdline: 'curl http://x', unit: 'session-1.scope', cgroup: '/user.slice', ...over,
});
const to = (event: CallFacts['event'], host?: string, port = 0, extra: Partial<CallFacts> = {}): CallFacts => ({
  event, family: 'inet', type: 'stream', proto: 'tcp', ...(host ? { remote: { addr: parseAddr(host)!, port } } : {}), ...extra,
});

const engine = (yaml: string) => new PolicyEngine(parsePolicy(yaml));

test('first match wins, default applies otherwise', () => {
  const e = engine(`
default: { dscp: CS1 }
rules:
  - { name: a, match: { remote: 192.0.2.0/24 }, action: { dscp: AF41 } }
  - { name: b, match: { remote: 192.0.2.10 }, action: { dscp: EF } }
`);
  assert.deepEqual(e.decide(id(), to('connect', '192.0.2.10', 80)), { decision: { dscp: 34 }, rule: 'a' });
  assert.deepEqual(e.decide(id(), to('connect', '198.51.100.1', 80)), { decision: { dscp: 8 }, rule: 'default' });
});

test('no default: unmatched calls are left alone', () => {
  const e = engine('rules: [{ match: { proto: udp }, action: { tos: 48 } }]');
  assert.deepEqual(e.decide(id(), to('connect', '192.0.2.1', 80)), { decision: null, rule: null });
  assert.equal(e.decide(id(), to('socket', undefined, 0, { type: 'dgram', proto: 'udp' })).rule, 'rule-1');
});

test('paper figure 5 as declarative rules', () => {
  const e = engine(`
rules:
  - { name: nm-media, match: { cmdline: '"C:\\Program Files\\NetMeetingNT\\conf.exe" ', family: inet, type: dgram }, action: { tos: 48 } }
  - { name: nm-other, match: { cmdline: '"C:\\Program Files\\NetMeetingNT\\conf.exe" ' }, action: { tos: 16 } }
`);
  const nm = id({ cmdline: '"C:\\Program Files\\NetMeetingNT\\conf.exe" ' });
  assert.deepEqual(e.decide(nm, to('socket', undefined, 0, { type: 'dgram', proto: 'udp' })).decision, { tos: 48 });
  assert.deepEqual(e.decide(nm, to('socket')).decision, { tos: 16 });
  assert.equal(e.decide(id(), to('socket')).rule, null);
});

test('identity, ports, ranges, lists, events and v4-mapped addresses', () => {
  const e = engine(`
rules:
  - { name: by-user, match: { user: bob }, action: { dscp: CS2 } }
  - { name: range, match: { event: [connect, sendto], remote_port: "5000-5100" }, action: { dscp: EF } }
  - { name: list, match: { remote_port: [22, 2222] }, action: { dscp: AF21 } }
  - { name: exe, match: { exe: "*/python3*", local_port: 7000 }, action: { priority: 6 } }
  - { name: v4, match: { remote: 203.0.113.0/24 }, action: { deny: EACCES } }
  - { name: re, match: { cmdline: "/^curl\\\\s+-v/" }, action: { dscp: CS3 } }
`);
  assert.equal(e.decide(id({ user: 'bob' }), to('connect', '1.1.1.1', 1)).rule, 'by-user');
  assert.equal(e.decide(id(), to('sendto', '1.1.1.1', 5050)).rule, 'range');
  assert.equal(e.decide(id(), to('bind', '1.1.1.1', 5050)).rule, null);
  assert.equal(e.decide(id(), to('connect', '1.1.1.1', 2222)).rule, 'list');
  assert.equal(e.decide(id({ exe: '/usr/bin/python3.11' }), { ...to('bind'), local: { addr: parseAddr('0.0.0.0')!, port: 7000 } }).rule, 'exe');
  assert.deepEqual(e.decide(id(), to('connect', '::ffff:203.0.113.7', 80, { family: 'inet6' })).decision, { deny: 'EACCES' });
  assert.equal(e.decide(id({ cmdline: 'curl -v x' }), to('connect', '9.9.9.9', 80)).rule, 're');
  assert.equal(e.decide(id({ cmdline: 'curl x' }), to('connect', '9.9.9.9', 80)).rule, null);
});

test('setsockopt is decided only by rules that name it; the default never overrides the application', () => {
  const e = engine(`
default: { dscp: CS1 }
rules:
  - { name: any, match: { proto: tcp }, action: { dscp: AF11 } }
  - { name: veto, match: { event: setsockopt, user: mallory }, action: { dscp: CS0, override: true } }
`);
  assert.deepEqual(e.decide(id(), to('setsockopt')), { decision: null, rule: null });
  assert.deepEqual(e.decide(id({ user: 'mallory' }), to('setsockopt')), { decision: { dscp: 0, override: true }, rule: 'veto' });
});

test('a 1,000-rule policy agrees with a linear first-match reference, and so does its compiled form revived in another thread', () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const rules = [];
  for (let i = 0; i < 1000; i++) {
    const m: Record<string, unknown> = {};
    const k = rnd(5);
    if (k === 0) m.remote_port = 1000 + rnd(50);
    if (k === 1) m.remote_port = `${2000 + rnd(50)}-${2100 + rnd(50)}`;
    if (k === 2) m.remote = `10.${rnd(4)}.0.0/16`;
    if (k === 3) m.cmdline = `app${rnd(30)} *`;
    if (k === 4) { m.exe = `/usr/bin/tool${rnd(30)}`; m.remote_port = [1000 + rnd(50), 1000 + rnd(50)]; }
    if (rnd(3) === 0) m.event = ['connect', 'sendto', 'socket'][rnd(3)];
    if (rnd(4) === 0) m.proto = rnd(2) ? 'tcp' : 'udp';
    rules.push({ name: `r${i}`, match: m, action: { dscp: rnd(64) } });
  }
  const doc = parsePolicy(JSON.stringify({ rules }));
  const e = new PolicyEngine(doc);
  // what the daemon's policy loader does: compile in a worker, clone, revive on the loop
  const revived = PolicyEngine.revive(structuredClone(e.snapshot()));
  assert.notEqual(revived.version, e.version);
  const reference = (who: Identity, f: CallFacts): string | null => {
    for (const r of doc.rules) {
      const m = r.match as Record<string, unknown>;
      const ports = m.remote_port === undefined ? null : ([] as unknown[]).concat(m.remote_port);
      if (m.event && m.event !== f.event) continue;
      if (!m.event && f.event === 'setsockopt') continue;
      if (m.proto && m.proto !== f.proto) continue;
      if (ports && !(f.remote && ports.some((p) => { const [lo, hi = lo] = String(p).split('-').map(Number); return f.remote!.port >= lo! && f.remote!.port <= hi!; }))) continue;
      if (m.remote && !(f.remote && f.remote.addr[2] === 0xffff && (f.remote.addr[3]! >>> 16) === ((10 << 8) | Number(String(m.remote).split('.')[1])))) continue;
      if (m.cmdline && !(who.cmdline.startsWith(String(m.cmdline).slice(0, -1)))) continue;
      if (m.exe && m.exe !== who.exe) continue;
      return r.name!;
    }
    return null;
  };
  const people = new Map<string, Identity>(); // one identity per process, as the daemon keeps them
  for (let i = 0; i < 20000; i++) {
    const cmdline = `app${rnd(35)} --x`, exe = `/usr/bin/tool${rnd(35)}`;
    let who = people.get(cmdline + exe);
    if (!who) people.set(cmdline + exe, (who = id({ pid: people.size, cmdline, exe })));
    const f = to((["connect", "sendto", "socket", "bind"] as const)[rnd(4)]!, `10.${rnd(6)}.1.2`, rnd(3) ? 1000 + rnd(60) : 2000 + rnd(200), { proto: rnd(2) ? 'tcp' : 'udp' });
    if (f.event === 'socket' || f.event === 'bind') delete f.remote;
    const want = reference(who, f);
    assert.equal(e.decide(who, f).rule, want, JSON.stringify({ who: [who.cmdline, who.exe], f: { ...f, remote: f.remote?.port } }));
    assert.deepEqual(revived.decide({ ...who, memo: undefined }, f), e.decide(who, f), 'the revived engine decides alike');
  }
});

test('the bitset index agrees with a linear reference on every match dimension', () => {
  let seed = 99;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
  const nets = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3', '192.0.2.0/25', '0.0.0.0/0', 'fd00::/8', 'fd00:1::/32', '2001:db8::1/128', '::/0'];
  const hosts = ['10.1.2.3', '10.1.9.9', '10.200.0.1', '192.0.2.7', '192.0.2.200', '8.8.8.8', 'fd00:1::5', 'fd00:2::1', '2001:db8::1', '2001:db8::2'];
  const port = () => pick([0, 1, 53, 80, 443, 1000, 1024, 5000, 8080, 65535, rnd(65536)]);
  const rules = [];
  for (let i = 0; i < 400; i++) {
    const m: Record<string, unknown> = {};
    for (let k = 1 + rnd(3); k > 0; k--) {
      switch (rnd(11)) {
        case 0: m.event = rnd(2) ? pick(['socket', 'connect', 'bind', 'listen', 'accept', 'sendto']) : ['connect', 'sendto']; break;
        case 1: m.family = pick(['inet', 'inet6']); break;
        case 2: m.type = pick(['stream', 'dgram']); break;
        case 3: m.proto = pick(['tcp', 'udp']); break;
        case 4: m.remote = rnd(3) ? pick(nets) : [pick(nets), pick(nets)]; break;
        case 5: m.local = pick(nets); break;
        case 6: { const lo = port(); m.remote_port = rnd(2) ? lo : `${lo}-${Math.min(65535, lo + rnd(3000))}`; break; }
        case 7: m.local_port = rnd(2) ? [port(), port()] : port(); break;
        case 8: m.exe = pick(['/usr/bin/curl', '*/python3*', '/usr/bin/*']); break;
        case 9: m.user = pick(['alice', 'bob']); break;
        case 10: m.cmdline = pick(['curl *', '/^python3\\s/', '*-v*']); break;
      }
    }
    rules.push({ name: `r${i}`, match: m, action: { dscp: rnd(64) } });
  }
  const doc = parsePolicy(JSON.stringify({ rules }));
  const e = new PolicyEngine(doc);
  const inRange = (spec: unknown, p: number) => ([] as unknown[]).concat(spec).some((x) => {
    const [lo, hi = lo] = String(x).split('-').map(Number);
    return p >= lo! && p <= hi!;
  });
  const inNet = (spec: unknown, a: string) => ([] as string[]).concat(spec as string).some((c) => cidrContains(parseCidr(c)!, parseAddr(a)!));
  const glob = (p: string, s: string) => compilePattern(p).test(s);
  const reference = (who: Identity, f: CallFacts & { rh?: string; lh?: string }): string | null => {
    for (const r of doc.rules) {
      const m = r.match as Record<string, unknown>;
      const events = m.event === undefined ? null : ([] as unknown[]).concat(m.event);
      if (events ? !events.includes(f.event) : f.event === 'setsockopt') continue;
      if (m.family && m.family !== f.family) continue;
      if (m.type && m.type !== f.type) continue;
      if (m.proto && m.proto !== f.proto) continue;
      if (m.remote && !(f.rh && inNet(m.remote, f.rh))) continue;
      if (m.local && !(f.lh && inNet(m.local, f.lh))) continue;
      if (m.remote_port !== undefined && !(f.remote && inRange(m.remote_port, f.remote.port))) continue;
      if (m.local_port !== undefined && !(f.local && inRange(m.local_port, f.local.port))) continue;
      if (m.exe && !glob(String(m.exe), who.exe)) continue;
      if (m.user && m.user !== who.user) continue;
      if (m.cmdline && !glob(String(m.cmdline), who.cmdline)) continue;
      return r.name!;
    }
    return null;
  };
  const people = [
    id({ exe: '/usr/bin/curl', cmdline: 'curl -v http://x', user: 'alice' }),
    id({ exe: '/usr/local/bin/python3.11', cmdline: 'python3 app.py', user: 'bob' }),
    id({ exe: '/opt/x/tool', cmdline: 'tool', user: 'carol' }),
  ];
  for (let i = 0; i < 30_000; i++) {
    const rh = rnd(4) ? pick(hosts) : undefined;
    const lh = rnd(3) ? undefined : pick(hosts);
    const f: CallFacts & { rh?: string; lh?: string } = {
      event: pick(['socket', 'connect', 'bind', 'listen', 'accept', 'sendto', 'setsockopt'] as const),
      ...(rnd(5) ? { family: pick(['inet', 'inet6'] as const) } : {}),
      ...(rnd(5) ? { type: pick(['stream', 'dgram'] as const) } : {}),
      ...(rnd(5) ? { proto: pick(['tcp', 'udp'] as const) } : {}),
      ...(rh ? { remote: { addr: parseAddr(rh)!, port: port() }, rh } : {}),
      ...(lh ? { local: { addr: parseAddr(lh)!, port: port() }, lh } : {}),
    };
    const who = pick(people);
    assert.equal(e.decide(who, f).rule, reference(who, f), JSON.stringify({ who: who.exe, f: { ...f, remote: f.remote?.port, local: f.local?.port } }));
  }
});
