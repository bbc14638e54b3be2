/* Safe Tcl's `source` (SafeSource in tcl-host.tcl) reads plain files beside the policy script
 * only: a symbolic link there, to /etc/passwd or anywhere, is refused with the reason and
 * nothing of what it points to shows (issue 15). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS } from './js-sandbox.js';
import { TclHost } from './tcl-host.js';

const req = (port: number) => ({ tokens: () => ['Connect', '42', '0', 'x', '5', `2 192.0.2.1 ${port}`, '', ''] });

test('source refuses a symbolic link beside the script (to /etc/passwd) and says so; a plain file beside it is sourced', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-tcl-source-'));
  try {
    symlinkSync('/etc/passwd', join(dir, 'passwd.tcl'));
    symlinkSync(join(dir, 'helper.tcl'), join(dir, 'alias.tcl'));
    writeFileSync(join(dir, 'helper.tcl'), 'proc Helper {} { return "TOS 32" }\n');
    writeFileSync(join(dir, 'policy.tcl'), `
proc Connect { pid uid cmd fd address sqos gqos } {
  switch [lindex $address 2] {
    1 { source passwd.tcl }
    2 { source alias.tcl }
    3 { source helper.tcl; return [Helper] }
  }
  return "TOS 48"
}
`);
    const host = await TclHost.start(join(dir, 'policy.tcl'), { limits: DEFAULT_LIMITS });
    try {
      for (const [port, name] of [[1, 'passwd.tcl'], [2, 'alias.tcl']] as const) {
        const o = await host.decide('Connect', 0, req(port));
        assert.equal(o.status, 'error', JSON.stringify(o));
        assert.match(o.fault?.message ?? '', new RegExp(`"${name.replace('.', '\\.')}" is a symbolic link`));
        assert.doesNotMatch(o.fault?.message ?? '', /root:/, 'nothing of /etc/passwd shows');
      }
      assert.deepEqual((await host.decide('Connect', 0, req(3))).decision, { tos: 32 }, 'a plain file beside the script is sourced');
      assert.deepEqual((await host.decide('Connect', 0, req(80))).decision, { tos: 48 });
    } finally {
      await host.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
