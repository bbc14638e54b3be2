/* The script pool against hostile and buggy scripts: every call ends (decided, falling
 * through, or faulted with its place in the script), and the pool keeps answering. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, type StateSource } from './js-sandbox.js';
import { ScriptPool, type ScriptOutcome } from './pool.js';
import { MAX_USER_CALLS, TRIP_AFTER } from './budget.js';

const arg = (event: Record<string, unknown>) => JSON.stringify(event);
/** A caller's machine state: flows (each with a class), counted by class for the summary. */
const state = (flows: { class?: string }[] = []): StateSource => (full) => {
  if (full) return JSON.stringify({ flows });
  const classes: Record<string, number> = {};
  for (const f of flows) if (f.class) classes[f.class] = (classes[f.class] ?? 0) + 1;
  return JSON.stringify({ count: flows.length, classes, loadavg: [0.5, 0.4, 0.3] });
};
/** The workers at the test's own priority: at nice 19 a busy machine can leave them without
 * a CPU for seconds, and a deadline is time on the clock. */
const LIMITS = { ...DEFAULT_LIMITS, nice: null };
/** Limits under which only the script's own behaviour decides a test's outcome, not how fast
 * this machine happens to run it: the daemon waits for every answer (as the agent would
 * not), and a call that should end in time has far more time than it needs. */
const PATIENT = { ...LIMITS, deadlineMs: 2000, answerMs: 60_000 };
/** Polls until the pool's hosts have answered every call they were given (a state, not a time). */
async function settled(pool: ScriptPool): Promise<void> {
  while (pool.busy > 0) await new Promise((r) => setTimeout(r, 10));
}

const HOSTILE = `
export function Connect(ev) {
  switch (ev.case) {
    case 'loop': while (true) {}
    case 'recursion': { const f = (n) => f(n + 1) + 1; return f(0); }
    case 'oom': { const keep = []; while (true) keep.push(new Array(1e5).fill(keep.length)); }
    case 'fill': return { dscp: new Array(1e7).fill(0).length % 64 };
    case 'regex': return /^(a+)+$/.test('a'.repeat(32) + '!') ? { dscp: 'EF' } : undefined;
    case 'throw': throw new Error('policy bug');
    case 'garbage': return { dscp: 'fast please', tos: -1 };
    case 'string': return 'TOS 48';
    case 'require': return require('fs');
    case 'process': return process.exit(1);
    case 'import': return import('node:fs');
    case 'timers': return setTimeout(() => 0, 1);
    default: return { dscp: 'AF21' };
  }
}
`;

test('hostile handlers: each call ends with the rules deciding, the fault located, the pool still answering', { timeout: 60_000 }, async () => {
  // 10 ms deadline (the loop must be interrupted), but no answer time: each case shows what
  // its host did with it.
  const pool = await ScriptPool.start(HOSTILE, 'hostile.js', { workers: 2, limits: { ...LIMITS, answerMs: 60_000 } });
  try {
    const expect: [string, ScriptOutcome['status'][], RegExp?][] = [
      ['loop', ['timeout'], /interrupted/],
      ['recursion', ['error'], /stack overflow/],
      ['oom', ['error', 'timeout', 'killed']],
      ['fill', ['decided', 'error', 'timeout', 'killed']],
      ['regex', ['timeout', 'killed', 'fallthrough']],
      ['throw', ['error'], /policy bug/],
      ['garbage', ['error'], /returned/],
      ['string', ['error'], /returned/],
      ['require', ['error'], /require/],
      ['process', ['error'], /process/],
      ['import', ['error']],
      ['timers', ['error'], /setTimeout/],
    ];
    for (const [i, [c, statuses, re]] of expect.entries()) {
      // each case as a user of its own: one that hangs a worker is suspended and moved out
      const o = await pool.call('Connect', 1000 + i, arg({ case: c }));
      assert.ok(statuses.includes(o.status), `${c}: ${o.status} ${o.fault?.message ?? ''}`);
      if (re) assert.match(o.fault?.message ?? '', re, c);
      // A thrown error or an interrupt is located in the script; a bad return value is not.
      if (o.status === 'timeout' || (o.status === 'error' && !/^returned/.test(o.fault?.message ?? ''))) {
        assert.ok(o.fault?.line, `${c}: the fault has a line (${JSON.stringify(o.fault)})`);
      }
      if (o.status !== 'decided') assert.equal(o.decision, undefined, `${c}: the rules decide`);
      const fine = await pool.call('Connect', 5000, arg({ case: 'ok' }));
      assert.deepEqual([fine.status, fine.decision], ['decided', { dscp: 18 }], `after ${c}`);
    }
  } finally {
    await pool.close();
  }
});

test('a handler that keeps overrunning its deadline for one user is suspended for that user: their calls go to the rules at once, others still run', { timeout: 60_000 }, async () => {
  const pool = await ScriptPool.start("export function Connect(ev) { if (ev.spin) while (true) {} return { dscp: 'EF' }; }\nexport function Socket(ev) { return { dscp: 'CS1' }; }\n", 'spin.js', { workers: 1, limits: { ...LIMITS, answerMs: 60_000 } });
  try {
    for (let i = 0; i < TRIP_AFTER; i++) assert.equal((await pool.call('Connect', 0, arg({ spin: true }))).status, 'timeout');
    const o = await pool.call('Connect', 0, arg({ spin: true }));
    assert.deepEqual([o.status, o.decision], ['suspended', undefined], 'answered by the rules, the script not run');
    assert.ok(pool.suspended(0, 'Connect'));
    assert.deepEqual((await pool.call('Socket', 0, arg({}))).decision, { dscp: 8 }, 'Socket is still called');
    assert.deepEqual((await pool.call('Connect', 1, arg({}))).decision, { dscp: 46 }, 'Connect is still called for another user');
  } finally {
    await pool.close();
  }
});

test('a worker runs users in turn: a user who comes while another has a backlog of calls that run to their deadline waits for one of them, not all', { timeout: 60_000 }, async () => {
  const pool = await ScriptPool.start("export function Connect(ev) { if (ev.spin) while (true) {} return { dscp: 'EF' }; }\n", 'turns.js', { workers: 1, limits: { ...LIMITS, deadlineMs: 100, answerMs: 60_000 } });
  try {
    const order: string[] = [];
    const calls = [];
    for (let i = 1; i <= 4; i++) calls.push(pool.call('Connect', 1, arg({ spin: true })).then((o) => order.push(`spin${i} ${o.status}`)));
    calls.push(pool.call('Connect', 2, arg({})).then((o) => order.push(`other ${o.status}`)));
    await Promise.all(calls);
    assert.deepEqual(order, ['spin1 timeout', 'other decided', 'spin2 timeout', 'spin3 timeout', 'spin4 timeout']);
  } finally {
    await pool.close();
  }
});

test('a request the script has not answered within the answer time gets the rules (late); one still queued then is not run; one running still counts against its user', { timeout: 60_000 }, async () => {
  const ends: string[] = [];
  // counts the calls it runs, and answers with the count
  const src = 'let n = 0;\nexport function Connect(ev) { n++; if (ev.spin) while (true) {} return { tos: (n % 64) * 4 }; }\n';
  const pool = await ScriptPool.start(src, 'late.js', { workers: 1, limits: { ...LIMITS, deadlineMs: 1000, answerMs: 300 }, onCall: (_h, o) => ends.push(o.status) });
  try {
    // three at once: the first runs to its deadline, the others' answer time is up before
    // their turn
    const spins = await Promise.all(Array.from({ length: 3 }, () => pool.call('Connect', 1, arg({ spin: true }))));
    assert.deepEqual(spins.map((o) => [o.status, o.decision]), Array(3).fill(['late', undefined]), 'the rules answered each');
    await settled(pool);
    assert.deepEqual((await pool.call('Connect', 2, arg({}))).decision, { tos: 8 }, 'the script ran two calls: the first spin and this one');
    // the spin that ran counted against its user: two more make TRIP_AFTER
    for (let i = 1; i < TRIP_AFTER; i++) {
      assert.equal((await pool.call('Connect', 1, arg({ spin: true }))).status, 'late');
      await settled(pool);
    }
    assert.equal((await pool.call('Connect', 1, arg({ spin: true }))).status, 'suspended', 'their overruns counted');
    assert.deepEqual(ends, [...Array(3).fill('late'), 'decided', ...Array(TRIP_AFTER - 1).fill('late'), 'suspended'], 'each call counted once, as the program saw it');
  } finally {
    await pool.close();
  }
});

test('a user has at most MAX_USER_CALLS calls in flight; the next are overloaded, other users are not', { timeout: 60_000 }, async () => {
  let closes = 0;
  const pool = await ScriptPool.start('export function Close(ev) {}\nexport function Connect(ev) { return { dscp: "EF" }; }\n', 'many.js', { workers: 1, limits: PATIENT });
  try {
    // all given in one turn of the event loop: none can have been answered yet
    const all = Array.from({ length: MAX_USER_CALLS + 2 }, () => pool.call('Close', 1, arg({})).then((o) => { if (o.status === 'fallthrough') closes++; return o.status; }));
    const other = pool.call('Connect', 2, arg({}));
    const statuses = await Promise.all(all);
    assert.deepEqual(statuses.slice(MAX_USER_CALLS), ['overloaded', 'overloaded']);
    assert.equal(closes, MAX_USER_CALLS, 'the rest ran');
    assert.equal((await other).status, 'decided');
    assert.equal((await pool.call('Close', 1, arg({}))).status, 'fallthrough', 'answered: room again');
  } finally {
    await pool.close();
  }
});

test('a worker stuck in one long built-in call is replaced; the user whose call hung it is suspended, the others go on', { timeout: 60_000 }, async () => {
  // JSON.parse of a big array is one built-in call: the interrupt handler is not consulted
  // inside it (measured: ~300 ms here), so only the watchdog can end it.
  const src = `export function Connect(ev) { if (ev.stuck) JSON.parse('[' + '12345,'.repeat(3e6) + '1]'); return { dscp: 'CS3' }; }`;
  let restarts = 0;
  const pool = await ScriptPool.start(src, 'stuck.js', { workers: 1, limits: { ...LIMITS, deadlineMs: 5, memoryBytes: 256 * 2 ** 20, answerMs: 60_000 }, onRestart: () => restarts++ });
  try {
    const [stuck, queued] = await Promise.all([pool.call('Connect', 0, arg({ stuck: true })), pool.call('Connect', 1, arg({}))]);
    assert.equal(stuck.status, 'killed');
    assert.equal(queued.status, 'killed', 'the call queued behind it falls through too');
    assert.equal(restarts, 1);
    assert.ok(pool.suspended(0, 'Connect'), 'a hang suspends its user at once');
    assert.ok(!pool.suspended(1, 'Connect'), 'the other user\'s call never ran: not held against them');
    assert.deepEqual((await pool.call('Connect', 1, arg({}))).decision, { dscp: 24 }, 'the new worker answers');
  } finally {
    await pool.close();
  }
});

for (const direct of [true, false]) test(`module state lives across calls; the helper library and machine state are there (${direct ? 'direct' : 'public'} QuickJS calls)`, async () => {
  const src = `
const seen = new Map();
export function Connect(ev) {
  const n = (seen.get(ev.user) ?? 0) + 1;
  seen.set(ev.user, n);
  return { priority: Math.min(n, 7) };
}
export function Socket(ev) {
  const ok = qos.AF.INET === 2 && qos.AF.INET6 === 10 && qos.SockType.DGRAM === 2 && qos.DSCP.EF === 46
    && qos.className(34) === 'AF41' && qos.cidr('10.0.0.0/8', '10.1.2.3') && !qos.cidr('10.0.0.0/8', '11.0.0.1')
    && qos.cidr('2001:db8::/32', '2001:db8::1') && qos.cidr('192.0.2.0/24', '::ffff:192.0.2.9')
    && qos.glob('*/curl', '/usr/bin/curl') && !qos.glob('*/curl', '/usr/bin/wget')
    && qos.flows().length === 1 && qos.flows()[0].class === 'EF' && qos.loadavg()[0] === 0.5
    && typeof Date.now() === 'number';
  return ok ? { dscp: 'EF' } : { deny: 'EACCES' };
}
`;
  const pool = await ScriptPool.start(src, 'state.js', { workers: 2, direct, limits: PATIENT });
  assert.equal(pool.direct, direct);
  try {
    const p = [];
    for (let i = 0; i < 3; i++) p.push((await pool.call('Connect', 1000, arg({ user: 'alice' }))).decision);
    assert.deepEqual(p, [{ priority: 1 }, { priority: 2 }, { priority: 3 }]);
    assert.deepEqual((await pool.call('Connect', 1000, arg({ user: 'bob' }))).decision, { priority: 1 });
    const s = await pool.call('Socket', 1000, arg({}), state([{ class: 'EF' }]));
    assert.deepEqual(s.decision, { dscp: 46 }, JSON.stringify(s));
  } finally {
    await pool.close();
  }
});

test('a caller goes to a worker once, then by serial; past the limit the worker forgets and learns again', { timeout: 60_000 }, async () => {
  const pool = await ScriptPool.start('export function Connect(ev) { return { tos: (ev.uid * 7 + ev.fd) % 256 }; }\n', 'callers.js', { workers: 1, limits: PATIENT });
  try {
    const facts = (fd: number) => JSON.stringify(['connect', fd, 'inet', 'stream', 'tcp', 6, null, ['192.0.2.1', 80], null, 'none', null]);
    const callers = Array.from({ length: 5000 }, (_, uid) => ({ key: {}, json: () => JSON.stringify({ pid: 1, uid, gid: 0, user: `u${uid}`, group: 'g', exe: '/x', cmdline: 'x', unit: '' }) }));
    let sent = 0;
    const counted = callers.map((c) => ({ key: c.key, json: () => { sent++; return c.json(); } }));
    // 3,000 callers twice (the second time by serial), 2,000 more (the 4,097th makes the
    // worker forget them all), then the first three again (sent again).
    const first = [...callers.keys()].slice(0, 3000);
    const order = [...first, ...first, ...[...callers.keys()].slice(3000), 0, 1, 2];
    for (const [i, uid] of order.entries()) {
      const o = await pool.call('Connect', 0, facts(i % 50), undefined, counted[uid]);
      assert.deepEqual(o.decision, { tos: (uid * 7 + (i % 50)) % 256 }, `call ${i} (caller ${uid}): ${JSON.stringify(o)}`);
    }
    assert.equal(sent, 5003, `callers sent ${sent} times for ${order.length} calls`);
  } finally {
    await pool.close();
  }
});

test('the machine state is asked for only by a handler that reads it, in the size it reads; a daemon that cannot give it fails the call', { timeout: 60_000 }, async () => {
  const src = `
export function Connect(ev) { return { dscp: qos.flows().length > 1 ? 'AF41' : 'EF' }; }
export function Bind(ev) { return { dscp: qos.count('EF') + qos.count(46) + qos.count() === 7 && qos.classes().EF === 2 && qos.count('AF41') === 0 ? 'CS3' : 'CS4' }; }
export function Socket(ev) { return { dscp: 'CS1' }; }
`;
  const pool = await ScriptPool.start(src, 'lazy.js', { workers: 1, limits: { ...PATIENT, stateWaitMs: 60_000 } });
  // stateWaitMs 1: the daemon's answer, which comes only after the busy loop below, cannot be
  // there before the wait is up, however fast or slow this machine is.
  const hasty = await ScriptPool.start(src, 'lazy.js', { workers: 1, limits: { ...PATIENT, stateWaitMs: 1 } });
  try {
    const asked: boolean[] = [];
    const counted = (flows: { class?: string }[]): StateSource => (full) => { asked.push(full); return state(flows)(full); };
    assert.deepEqual((await pool.call('Socket', 0, arg({}), counted([]))).decision, { dscp: 8 });
    assert.deepEqual(asked, [], 'Socket never reads the state');
    assert.deepEqual((await pool.call('Connect', 0, arg({}), counted([{}, {}]))).decision, { dscp: 34 });
    assert.deepEqual((await pool.call('Connect', 0, arg({}), counted([{}]))).decision, { dscp: 46 });
    assert.deepEqual((await pool.call('Bind', 0, arg({}), counted([{ class: 'EF' }, { class: 'EF' }, { class: 'none' }]))).decision, { dscp: 24 });
    assert.deepEqual(asked, [true, true, false], 'each Connect asked once for the flows; Bind, for three counts, once for the summary');
    // The daemon cannot compute the state: the handler's qos call throws, the rules decide.
    const o = await pool.call('Connect', 0, arg({}), () => { throw new Error('no flow table'); });
    assert.deepEqual([o.status, o.decision], ['error', undefined]);
    assert.match(o.fault?.message ?? '', /could not give the machine state: no flow table/);
    // The daemon answers only after the handler stopped waiting: the answer is not used.
    const late = await hasty.call('Connect', 0, arg({}), (full) => {
      const until = Date.now() + 50;
      while (Date.now() < until);
      return state([])(full);
    });
    assert.deepEqual([late.status, late.decision], ['error', undefined]);
    assert.match(late.fault?.message ?? '', /did not send the machine state within 1 ms/, JSON.stringify(late));
    assert.deepEqual((await pool.call('Connect', 0, arg({}), counted([]))).decision, { dscp: 46 }, 'the next call is served as usual');
  } finally {
    await Promise.all([pool.close(), hasty.close()]);
  }
});

test('a script that does not compile or whose top level throws is refused with its line and column', async () => {
  await assert.rejects(ScriptPool.start('export function Connect(ev) {\n  return { dscp: "EF" }\n}}\n', 'bad.js', { limits: LIMITS }), (e: Error & { problems?: { line?: number; col?: number }[] }) => {
    assert.match(e.message, /SyntaxError/);
    assert.equal(e.problems?.[0]?.line, 3);
    return true;
  });
  await assert.rejects(ScriptPool.start('throw new Error("no")\n', 'top.js', { limits: LIMITS }), /no/);
  await assert.rejects(ScriptPool.start('while (true) {}\n', 'spin.js', { limits: LIMITS }), /interrupted/);
});
