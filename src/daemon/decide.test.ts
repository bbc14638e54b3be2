import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyEngine, type Identity } from '../policy/engine.js';
import { parsePolicy } from '../policy/load.js';
import { decode } from '../protocol/messages.js';
import { hasRequest } from './agents.js';
import { Decider, type Outcome, type ScriptHost, type ScriptRequest } from './decide.js';
import { FlowTable } from './flows.js';
import { GenerationFile } from './generation.js';

const who: Identity = { pid: 7, uid: 1000, gid: 1000, user: 'alice', group: 'alice', exe: '/usr/bin/curl', cmdline: 'curl x', unit: '', cgroup: '' };

function setup(policy: string, generation = 5) {
  const flows = new FlowTable();
  const view = { engine: new PolicyEngine(parsePolicy(policy)), generation };
  const d = new Decider(flows, () => view);
  return { flows, view, ask: (line: string) => d.handle(decode(line), who) as Outcome };
}

const POLICY = `
default: { dscp: CS1 }
rules:
  - { name: web, match: { event: connect, remote_port: 443 }, action: { dscp: AF41 } }
  - { name: dns, match: { event: socket, type: dgram }, action: { dscp: CS2 } }
`;

test('socket, connect and sendto replies carry CACHE with the published generation', () => {
  const { ask } = setup(POLICY);
  assert.equal(ask('Socket 7 1000 x 2 1 0 3').reply, 'DSCP 8 CACHE 5');
  assert.equal(ask('Connect 7 1000 x 3 {2 192.0.2.1 443} {} {}').reply, 'DSCP 34 CACHE 5');
  assert.equal(ask('Socket 7 1000 x 2 2 0 4').reply, 'DSCP 16 CACHE 5');
  assert.equal(ask('SendTo 7 1000 x 4 {2 192.0.2.1 53}').reply, 'CACHE 5', 'the default never undoes the socket rule');
  assert.equal(ask('Bind 7 1000 x 4 {2 0.0.0.0 5000}').reply, '', 'bind is not cacheable');
});

test('generation 0 means agents must not cache', () => {
  const { ask } = setup(POLICY, 0);
  assert.equal(ask('Socket 7 1000 x 2 1 0 3').reply, 'DSCP 8');
});

test('a Cached call is recorded like an asked one, without a reply', () => {
  const { ask, flows, view } = setup(POLICY);
  const a = ask('Cached 7 1000 x 5 Socket 2 1 0 3');
  const b = ask('Cached 7 1000 x 5 Connect 3 {2 192.0.2.1 443} {} {}');
  assert.equal(a.reply, null);
  assert.equal(b.reply, null);
  assert.equal(b.record?.cached, true);
  assert.equal(b.record?.rule, 'web');
  assert.equal(b.stale, false);
  const f = flows.get(7, 3);
  assert.deepEqual([f?.rule, f?.remote?.port, f?.decision], ['web', 443, { dscp: 34 }]);
  view.generation = 6;
  assert.equal(ask('Cached 7 1000 x 5 Socket 2 1 0 4').stale, true, 'a reload raced the agent');
  ask('Close 7 1000 x 3');
  assert.equal(flows.get(7, 3), undefined);
});

test('remembered verdicts are per process and per policy: the same call decides alike until a reload, and another program is decided for itself', () => {
  const flows = new FlowTable();
  const policyA = `
rules:
  - { name: curl-web, match: { event: connect, exe: "*/curl", remote_port: 443 }, action: { dscp: AF41 } }
  - { name: web, match: { event: connect, remote_port: 443 }, action: { dscp: CS2 } }
  - { name: near, match: { event: connect, remote: 192.0.2.0/24 }, action: { dscp: CS3 } }
`;
  const policyB = 'rules:\n  - { name: web, match: { event: connect, remote_port: 443 }, action: { dscp: EF } }\n';
  const view = { engine: new PolicyEngine(parsePolicy(policyA)), generation: 5 };
  const d = new Decider(flows, () => view);
  const wget: Identity = { ...who, pid: 8, exe: '/usr/bin/wget', cmdline: 'wget x' };
  const ruleOf = (id: Identity, line: string) => (d.handle(decode(line), id) as Outcome).record?.rule;
  for (let fd = 3; fd < 6; fd++) {
    assert.equal(ruleOf(who, `Cached 7 1000 x 5 Connect ${fd} {2 192.0.2.1 443} {} {}`), 'curl-web');
    assert.equal(ruleOf(wget, `Cached 8 1000 x 5 Connect ${fd} {2 192.0.2.1 443} {} {}`), 'web', 'another process is not given curl\'s verdict');
    assert.equal(ruleOf(who, `Cached 7 1000 x 5 Connect ${fd} {2 192.0.2.1 80} {} {}`), 'near', 'another port');
    assert.equal(ruleOf(who, `Cached 7 1000 x 5 Connect ${fd} {2 198.51.100.1 80} {} {}`), null, 'another address');
    assert.equal(ruleOf(who, `Cached 7 1000 x 5 Connect ${fd} {10 2001:db8::1 443} {} {}`), 'curl-web');
  }
  view.engine = new PolicyEngine(parsePolicy(policyB));
  view.generation = 6;
  assert.equal(ruleOf(who, 'Cached 7 1000 x 6 Connect 3 {2 192.0.2.1 443} {} {}'), 'web');
  assert.deepEqual(flows.get(7, 3)?.decision, { dscp: 46 }, 'the new policy decides');
  assert.equal(ruleOf(who, 'Cached 7 1000 x 6 Connect 3 {2 192.0.2.1 80} {} {}'), null);
});

test('hasRequest tells requests (and garbage) from notifications, complete lines only', () => {
  assert.equal(hasRequest(Buffer.from('Close 1 0 a 3\nCached 1 0 a 5 Socket 2 1 0 3\n')), false);
  assert.equal(hasRequest(Buffer.from('Close 1 0 a 3\nConnect 1 0 a 3 {2 1.2.3.4 80} {} {}\n')), true);
  assert.equal(hasRequest(Buffer.from('Close 1 0 a 3\nConnect 1 0 a 3')), false, 'the request is not complete yet');
  assert.equal(hasRequest(Buffer.from('Closet 1\n')), true, 'not a notification: gets an ERROR reply');
  assert.equal(hasRequest(Buffer.from('\n')), true);
});

test('the generation file is rewritten in place: 8 bytes little-endian, 0 after close (to an agent that has it open)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-gen-'));
  try {
    const path = join(dir, 'agent.sock.gen');
    const g = new GenerationFile(path);
    const a = g.next(), b = g.next();
    assert.ok(b > a && a > Date.now() * 1000 - 60e6);
    assert.equal(readFileSync(path).readBigUInt64LE(), BigInt(b));
    const agent = openSync(path, 'r');
    g.close();
    const word = Buffer.alloc(8);
    readSync(agent, word, 0, 8, 0);
    closeSync(agent);
    assert.equal(word.readBigUInt64LE(), 0n);
    writeFileSync(join(dir, 'target'), 'x');
    symlinkSync(join(dir, 'target'), join(dir, 'link.gen'));
    assert.throws(() => new GenerationFile(join(dir, 'link.gen')), /cannot open the generation file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a script is given each call as facts (a JSON array in eventOf order) and its caller, and the rules decide what it leaves', async () => {
  const seen: { handler: string; facts: unknown; caller: unknown; key: object }[] = [];
  const script: ScriptHost = {
    handlers: new Set(['Startup', 'Socket', 'Connect', 'Shutdown', 'Close']),
    decide: (handler, _uid, req: ScriptRequest) => {
      seen.push({ handler, facts: JSON.parse(req.facts()), caller: JSON.parse(req.caller.json()), key: req.caller.key });
      return Promise.resolve({ decision: handler === 'Socket' ? { priority: 3 } : undefined, status: handler === 'Socket' ? 'decided' : 'fallthrough', ms: 0 });
    },
  };
  const flows = new FlowTable();
  const view = { engine: new PolicyEngine(parsePolicy('rules:\n  - { name: web:v6, match: { event: connect }, action: { dscp: AF41 } }\n')), generation: 5, script };
  const d = new Decider(flows, () => view);
  const ask = async (line: string) => (await d.handle(decode(line), who)) as Outcome;
  await ask('Startup 7 1000 x 1');
  assert.equal((await ask('Socket 7 1000 x 10 1 0 3')).reply, 'PRIORITY 3', 'the script decided; not cacheable');
  assert.equal((await ask('Connect 7 1000 x 3 {10 2001:db8::1 443} {} {}')).reply, 'DSCP 34', 'the rules decided what the script left');
  await ask('Connect 7 1000 x 3 {10 2001:db8::1 443} {} {}');
  await ask('Shutdown 7 1000 x 3 2');
  await ask('Close 7 1000 x 3');
  await ask('Close 7 1000 x 99');
  const caller = { pid: 7, uid: 1000, gid: 1000, user: 'alice', group: 'alice', exe: '/usr/bin/curl', cmdline: 'curl x', unit: '' };
  const n = null;
  assert.deepEqual(seen.map((s) => [s.handler, s.facts]), [
    ['Startup', ['startup', n, n, n, n, n, n, n, n, n, n]],
    ['Socket', ['socket', 3, 'inet6', 'stream', 'tcp', 0, n, n, n, 'none', n]],
    ['Connect', ['connect', 3, 'inet6', 'stream', 'tcp', 0, n, ['2001:db8::1', 443], 'script', 'priority', n]],
    ['Connect', ['connect', 3, 'inet6', 'stream', 'tcp', 0, n, ['2001:db8::1', 443], 'web:v6', 'AF41', 34]],
    ['Shutdown', ['shutdown', 3, 'inet6', 'stream', 'tcp', 0, n, ['2001:db8::1', 443], 'web:v6', 'AF41', 34, 2]],
    ['Close', ['close', 3, 'inet6', 'stream', 'tcp', 0, n, ['2001:db8::1', 443], 'web:v6', 'AF41', 34]],
    ['Close', ['close', 99, n, n, n, n, n, n, n, n, n]],
  ]);
  for (const s of seen) {
    assert.deepEqual(s.caller, caller);
    assert.equal(s.key, who, 'one key per identity: the caller is sent once');
  }
});

test("a Tcl script's tokens carry the kernel's pid, uid and command line in the paper's order, whatever the line claims", async () => {
  const seen: string[][] = [];
  const script: ScriptHost = {
    handlers: new Set(['Startup', 'Socket', 'Connect', 'Bind', 'SendTo', 'Shutdown', 'Close', 'Cleanup']),
    decide: (_handler, _uid, req: ScriptRequest) => {
      seen.push(req.tokens());
      return Promise.resolve({ decision: undefined, status: 'fallthrough', ms: 0 });
    },
  };
  const d = new Decider(new FlowTable(), () => ({ engine: new PolicyEngine(parsePolicy('rules: []\n')), generation: 5, script }));
  const lines = ['Startup 1 0 {root tool} 1', 'Socket 1 0 {root tool} 2 1 0 3', 'Connect 1 0 {root tool} 3 {2 192.0.2.1 80} {} {}',
    'Bind 1 0 {root tool} 3 {2 0.0.0.0 5000}', 'SendTo 1 0 {root tool} 3 {2 192.0.2.1 53}', 'Shutdown 1 0 {root tool} 3 1',
    'Close 1 0 {root tool} 3', 'Cleanup 1 0 {root tool}', 'Cached 1 0 {root tool} 5 Connect 3 {2 192.0.2.1 80} {} {}'];
  for (const l of lines) await d.handle(decode(l), who);
  assert.deepEqual(seen, [
    ['Startup', '7', '1000', 'curl x', '1'],
    ['Socket', '7', '1000', 'curl x', '2', '1', '0', '3'],
    ['Connect', '7', '1000', 'curl x', '3', '2 192.0.2.1 80', '', ''],
    ['Bind', '7', '1000', 'curl x', '3', '2 0.0.0.0 5000'],
    ['SendTo', '7', '1000', 'curl x', '3', '2 192.0.2.1 53'],
    ['Shutdown', '7', '1000', 'curl x', '3', '1'],
    ['Close', '7', '1000', 'curl x', '3'],
    ['Cleanup', '7', '1000', 'curl x'],
  ], 'a Cached call is not given to the script at all');
});
