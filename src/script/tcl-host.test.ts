/* Safe Tcl scripts in the tclsh child: the paper's calling convention, the time limit on
 * `while 1 {}`, no exec/open/socket, and a child that dies is replaced. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS } from './js-sandbox.js';
import { parseTclReply, TclHost } from './tcl-host.js';

function script(text: string): { file: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-tcl-'));
  const file = join(dir, 'policy.tcl');
  writeFileSync(file, text);
  return { file, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const req = (...t: string[]) => ({ tokens: () => t });
/** tclsh at the test's own priority: at nice 19 a busy machine can leave it without a CPU for
 * seconds, and a deadline is time on the clock. */
const LIMITS = { ...DEFAULT_LIMITS, nice: null };

test('Tcl replies parse to decisions; anything else is refused', () => {
  assert.deepEqual(parseTclReply('TOS 48'), { decision: { tos: 48 } });
  assert.deepEqual(parseTclReply('DSCP EF PRIORITY 5'), { decision: { dscp: 46, priority: 5 } });
  assert.deepEqual(parseTclReply(''), { decision: undefined });
  assert.ok('error' in parseTclReply('TOS 999'));
  assert.ok('error' in parseTclReply('hello'));
  // a flow for the socket, as a rule's service/template/mode (tc/request.ts)
  const flow = parseTclReply('DSCP AF41 TEMPLATE H263CIF SERVICE guaranteed');
  assert.ok('decision' in flow && flow.decision!.dscp === 34 && flow.decision!.tc!.mode === 'shape' && flow.decision!.tc!.spec.TokenRate === 32490);
  assert.match((parseTclReply('TEMPLATE H999') as { error: string }).error, /no FLOWSPEC template "H999"/);
  assert.match((parseTclReply('DENY EACCES TEMPLATE G711') as { error: string }).error, /DENY cannot be combined/);
  // an RSVP reservation, as a rule's reserve (rsvp/reserve-request.ts): its DSCP is the mark once admitted, not now
  const r = parseTclReply('DSCP AF41 RESERVE guaranteed TEMPLATE H263CIF');
  assert.ok('decision' in r && r.decision!.dscp === undefined && r.decision!.reserve!.service === 'GS' && r.decision!.reserve!.dscp === 34 && r.decision!.reserve!.spec!.TokenRate === 32490);
  const live = parseTclReply('RESERVE characterize');
  assert.ok('decision' in live && live.decision!.reserve!.characterize && live.decision!.reserve!.spec === null);
  assert.match((parseTclReply('RESERVE guaranteed') as { error: string }).error, /needs a template/);
  assert.match((parseTclReply('RESERVE fast TEMPLATE G711') as { error: string }).error, /service is guaranteed or controlled-load/);
  assert.match((parseTclReply('RESERVE guaranteed TEMPLATE G711 MODE shape') as { error: string }).error, /RESERVE names its service itself/);
});

test('hostile Tcl: while 1 {} hits the time limit, exec/open/socket do not exist, the host keeps answering', { timeout: 60_000 }, async () => {
  const s = script(`
source SprintLib.tcl
proc Connect { pid uid cmd fd address sqos gqos } {
  global AF
  switch [lindex $address 2] {
    1 { while 1 {} }
    2 { exec ls }
    3 { open /etc/passwd }
    4 { socket localhost 80 }
    5 { source ../../etc/passwd }
    6 { error "policy bug" }
    7 { return "TOS lots" }
  }
  if { [lindex $address 0] == $AF(INET) } { return "TOS 48" }
}
`);
  let restarts = 0;
  // 10 ms deadline (the loop must hit it), but no answer time: each case shows what tclsh did.
  const host = await TclHost.start(s.file, { limits: { ...LIMITS, answerMs: 60_000 }, onRestart: () => restarts++ });
  try {
    assert.deepEqual([...host.handlers], ['Connect']);
    const expect: [number, string, RegExp][] = [
      [1, 'timeout', /time limit exceeded/], [2, 'error', /invalid command name "exec"/], [3, 'error', /invalid command name "open"/],
      [4, 'error', /invalid command name "socket"/], [5, 'error', /only files beside the policy script/], [6, 'error', /policy bug/],
      [7, 'error', /returned/],
    ];
    for (const [port, status, re] of expect) {
      const o = await host.decide('Connect', 0, req('Connect', '42', '0', 'x', '5', `2 192.0.2.1 ${port}`, '', ''));
      assert.equal(o.status, status, `port ${port}: ${JSON.stringify(o)}`);
      assert.match(o.fault?.message ?? '', re);
      const ok = await host.decide('Connect', 0, req('Connect', '42', '0', 'x', '5', '2 192.0.2.1 80', '', ''));
      assert.deepEqual(ok.decision, { tos: 48 }, `after port ${port}`);
    }
    assert.equal(restarts, 0);
  } finally {
    await host.close();
    s.done();
  }
});

test('a tclsh that dies is restarted; its call falls through', { timeout: 60_000 }, async () => {
  // Memory is capped with prlimit: a string doubling without end kills the child.
  const s = script('proc Socket {pid uid cmd family type protocol fd} { if {$fd == 9} { set s x; while 1 { append s $s } }; return "DSCP AF21" }\n');
  let restarts = 0;
  const host = await TclHost.start(s.file, { limits: { ...LIMITS, deadlineMs: 2000, answerMs: 60_000 }, onRestart: () => restarts++ });
  try {
    const o = await host.decide('Socket', 0, req('Socket', '1', '0', 'x', '2', '1', '0', '9'));
    // Tcl either reports the failed allocation or dies of it; if it died it was replaced.
    assert.ok(['killed', 'error'].includes(o.status), JSON.stringify(o));
    assert.equal(restarts, o.status === 'killed' ? 1 : 0);
    // (uid 0's call killed it: uid 0 is suspended now; another user's call)
    const ok = await host.decide('Socket', 1, req('Socket', '1', '1', 'x', '2', '1', '0', '3'));
    assert.deepEqual(ok.decision, { dscp: 18 });
  } finally {
    await host.close();
    s.done();
  }
});

test('tclsh runs users in turn: a user who comes while another has a backlog of calls that run to their deadline waits for one of them, not all', { timeout: 60_000 }, async () => {
  const s = script('proc Connect { pid uid cmd fd address sqos gqos } { if {$fd == 666} { while 1 {} }; return "DSCP EF" }\n');
  const host = await TclHost.start(s.file, { limits: { ...LIMITS, deadlineMs: 100, answerMs: 60_000 } });
  try {
    const order: string[] = [];
    const calls = [];
    for (let i = 1; i <= 4; i++) calls.push(host.decide('Connect', 1, req('Connect', '1', '1', 'x', '666', '2 192.0.2.1 80', '', '')).then((o) => order.push(`spin${i} ${o.status}`)));
    calls.push(host.decide('Connect', 2, req('Connect', '2', '2', 'x', '5', '2 192.0.2.1 80', '', '')).then((o) => order.push(`other ${o.status}`)));
    await Promise.all(calls);
    assert.deepEqual(order, ['spin1 timeout', 'other decided', 'spin2 timeout', 'spin3 timeout', 'spin4 timeout']);
  } finally {
    await host.close();
    s.done();
  }
});

test('a user whose call kills tclsh is suspended at once and then runs in a tclsh of its own: the shared one keeps its state', { timeout: 60_000 }, async () => {
  // fd 667 doubles a string until the memory cap (prlimit) kills tclsh; other calls count
  // the caller's calls in the script's state.
  const s = script(`proc Connect { pid uid cmd fd address sqos gqos } {
  global n
  if {$fd == 667} { set s x; while 1 { append s $s } }
  return "TOS [expr {[incr n($uid)] * 4}]"
}
`);
  let restarts = 0;
  const host = await TclHost.start(s.file, { limits: { ...LIMITS, deadlineMs: 2000, answerMs: 60_000 }, onRestart: () => restarts++ });
  const ask = (uid: number, fd: number) => host.decide('Connect', uid, req('Connect', '1', String(uid), 'x', String(fd), '2 192.0.2.1 80', '', ''));
  try {
    assert.deepEqual((await ask(2, 5)).decision, { tos: 4 });
    assert.equal((await ask(1, 667)).status, 'killed');
    assert.equal(restarts, 1);
    assert.ok(host.suspended(1, 'Connect'), 'one kill suspends its user');
    assert.deepEqual((await ask(2, 5)).decision, { tos: 4 }, 'that first kill cost the shared tclsh its state');
    while (host.suspended(1, 'Connect')) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await ask(1, 667)).status, 'killed', 'uid 1 tries again');
    assert.equal(restarts, 2);
    assert.deepEqual((await ask(2, 5)).decision, { tos: 8 }, 'uid 1 now runs apart: the shared tclsh kept uid 2\'s count');
  } finally {
    await host.close();
    s.done();
  }
});
