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

test('Tcl replies parse to decisions; anything else is refused', () => {
  assert.deepEqual(parseTclReply('TOS 48'), { decision: { tos: 48 } });
  assert.deepEqual(parseTclReply('DSCP EF PRIORITY 5'), { decision: { dscp: 46, priority: 5 } });
  assert.deepEqual(parseTclReply(''), { decision: undefined });
  assert.ok('error' in parseTclReply('TOS 999'));
  assert.ok('error' in parseTclReply('hello'));
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
  const host = await TclHost.start(s.file, { limits: DEFAULT_LIMITS, onRestart: () => restarts++ });
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
  const host = await TclHost.start(s.file, { limits: { ...DEFAULT_LIMITS, deadlineMs: 2000 }, onRestart: () => restarts++ });
  try {
    const o = await host.decide('Socket', 0, req('Socket', '1', '0', 'x', '2', '1', '0', '9'));
    // Tcl either reports the failed allocation or dies of it; if it died it was replaced.
    assert.ok(['killed', 'error'].includes(o.status), JSON.stringify(o));
    assert.equal(restarts, o.status === 'killed' ? 1 : 0);
    const ok = await host.decide('Socket', 0, req('Socket', '1', '0', 'x', '2', '1', '0', '3'));
    assert.deepEqual(ok.decision, { dscp: 18 });
  } finally {
    await host.close();
    s.done();
  }
});
