/* Exe patterns to files, as the kernel identifies them, on a directory of the test's own. */

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { kernelDev } from './encode.js';
import { resolvePatterns } from './resolve.js';

const dir = mkdtempSync(join(tmpdir(), 'qosd-resolve-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a literal names its file (device in the kernel\'s encoding, inode); a link, a directory and a missing file name none and say why; a glob walks its directory for executables', () => {
  mkdirSync(join(dir, 'app/bin'), { recursive: true });
  for (const f of ['app/bin/one', 'app/bin/two', 'app/readme']) writeFileSync(join(dir, f), 'x');
  chmodSync(join(dir, 'app/bin/one'), 0o755);
  chmodSync(join(dir, 'app/bin/two'), 0o755);
  symlinkSync('one', join(dir, 'app/bin/link'));
  const one = join(dir, 'app/bin/one');
  const r = resolvePatterns([one, join(dir, 'app/bin/link'), join(dir, 'app'), join(dir, 'nope'), `${dir}/app/*`, `${dir}/app/*/t*`]);
  const st = statSync(one, { bigint: true });
  assert.deepEqual(r.get(one), { files: [{ path: one, dev: kernelDev(st.dev), ino: st.ino }], notes: [] });
  assert.match(r.get(join(dir, 'app/bin/link'))!.notes[0]!, /is a symbolic link to one: a process shows \(and the rule must name\) the file it leads to/);
  assert.match(r.get(join(dir, 'app'))!.notes[0]!, /is not a regular file/);
  assert.match(r.get(join(dir, 'nope'))!.notes[0]!, /ENOENT/);
  assert.deepEqual(r.get(`${dir}/app/*`)!.files.map((f) => f.path).sort(), [one, join(dir, 'app/bin/two')], 'executables only, links not followed');
  assert.deepEqual(r.get(`${dir}/app/*/t*`)!.files.map((f) => f.path), [join(dir, 'app/bin/two')]);
});

test('a pattern without a directory looks in the program directories and at the running processes\' executables', () => {
  const r = resolvePatterns(['*/node']);
  assert.ok(r.get('*/node')!.files.some((f) => f.path === process.execPath), 'this very node is running');
});
