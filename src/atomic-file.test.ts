/* Atomic writes against another local user who can write in the directory (issue 15): links
 * planted at the temporary names, a link at the target, files left by a killed writer; and a
 * write that fails leaves the old file as it was. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeStaleTemps, stageFile, writeFileAtomic } from './atomic-file.js';
import { QosError } from './errors.js';
import { asUser, testUser } from './e2e/users.js';
import { requireRoot } from './prerequisites.js';

requireRoot('a second, unprivileged user plants the links');

/** Runs fn in a new directory (mkdtemp: 0700, root's), removed after. */
function inDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-atomic-'));
  try { fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

function run(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
}

test('links another user planted at every temporary name the old code used are not written through: the victim is unchanged, the file is ours', () => {
  const mallory = testUser('fs-planter');
  inDir((dir) => {
    chmodSync(dir, 0o755);
    // a directory everyone can write in (sticky, like /tmp), given as --rules or an output
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const victimDir = join(dir, 'etc');
    mkdirSync(victimDir);
    const victim = join(victimDir, 'shadow');
    writeFileSync(victim, 'root:secret:1:0:99999:7:::\n', { mode: 0o600 });
    const store = join(shared, 'rules.json');
    // the old code wrote `.rules.json.<pid>.tmp`, following links, then renamed it over the store
    run(asUser(mallory, ['ln', '-s', victim, join(shared, `.rules.json.${process.pid}.tmp`)]));
    writeFileAtomic(store, '{"qosd_rules":1}\n');
    assert.equal(readFileSync(victim, 'utf8'), 'root:secret:1:0:99999:7:::\n', 'the victim file is unchanged');
    const st = lstatSync(store);
    assert.ok(st.isFile(), 'the store is a regular file, not the planted link');
    assert.equal(st.uid, 0);
    assert.equal(readFileSync(store, 'utf8'), '{"qosd_rules":1}\n');
  });
});

test('a symbolic link at the target is refused with the reason; the file it points to is unchanged', () => {
  inDir((dir) => {
    const real = join(dir, 'real.json');
    writeFileSync(real, 'old\n');
    const link = join(dir, 'out.json');
    symlinkSync(real, link);
    assert.throws(() => writeFileAtomic(link, 'new\n'), (e: unknown) => e instanceof QosError && e.code === 'QOS_ERR_UNSAFE_PATH' && /out\.json is a symbolic link/.test(e.message));
    assert.equal(readFileSync(real, 'utf8'), 'old\n');
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.deepEqual(readdirSync(dir).sort(), ['out.json', 'real.json'], 'no temporary file is left');
  });
});

test('temporary names are unpredictable: random, not the pid, new at each write', () => {
  inDir((dir) => {
    const target = join(dir, 'rules.json');
    const a = stageFile(target, 'a'), b = stageFile(target, 'b');
    const names = readdirSync(dir).sort();
    assert.equal(names.length, 2);
    for (const n of names) {
      assert.match(n, /^\.rules\.json\.[A-Za-z0-9_-]{16}\.tmp$/);
      assert.ok(!n.includes(String(process.pid)));
    }
    a.discard();
    b.commit();
    assert.deepEqual(readdirSync(dir), ['rules.json']);
    assert.equal(readFileSync(target, 'utf8'), 'b');
  });
});

test('a new file gets mode 0644, a replaced file keeps its mode, or the mode asked for', () => {
  inDir((dir) => {
    const f = join(dir, 'f');
    writeFileAtomic(f, '1');
    assert.equal(statSync(f).mode & 0o777, 0o644);
    chmodSync(f, 0o600);
    writeFileAtomic(f, '2');
    assert.equal(statSync(f).mode & 0o777, 0o600);
    writeFileAtomic(f, '3', { mode: 0o640 });
    assert.equal(statSync(f).mode & 0o777, 0o640);
  });
});

test('a write that fails (the file system is full) leaves the old file intact and no temporary file', () => {
  inDir((dir) => {
    run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
    try {
      const f = join(dir, 'rules.json');
      writeFileAtomic(f, 'saved by the user\n');
      assert.throws(() => writeFileAtomic(f, 'x'.repeat(1 << 20)), /ENOSPC/);
      assert.equal(readFileSync(f, 'utf8'), 'saved by the user\n');
      assert.deepEqual(readdirSync(dir), ['rules.json']);
    } finally {
      run(['umount', dir]);
    }
  });
});

test('stale temporary files are removed: ours by name only, links themselves (not their targets), nothing else', () => {
  inDir((dir) => {
    const store = join(dir, 'rules.json');
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep');
    writeFileSync(store, 'store');
    const ours = ['.rules.json.4242.tmp', '.rules.json.AbCdEfGhIjKlMnOp.tmp', '.rules.json.a-b_c-d_e-f_g-h_.tmp'];
    for (const n of ours.slice(0, 2)) writeFileSync(join(dir, n), 'half');
    symlinkSync(victim, join(dir, ours[2]!));
    const others = ['.rules.json.tmp', '.rules.json.4242.tmp.bak', '.other.json.4242.tmp', 'notes.tmp', '.rules.json.short.tmp'];
    for (const n of others) writeFileSync(join(dir, n), 'other');
    mkdirSync(join(dir, '.rules.json.4243.tmp'));
    assert.deepEqual(removeStaleTemps(store).sort(), [...ours].sort());
    for (const n of ours) assert.ok(!existsSync(join(dir, n)) && !isLink(join(dir, n)), n);
    for (const n of [...others, '.rules.json.4243.tmp', 'rules.json', 'victim']) assert.ok(existsSync(join(dir, n)), n);
    assert.equal(readFileSync(victim, 'utf8'), 'keep');
  });
});

function isLink(p: string): boolean {
  try { return lstatSync(p).isSymbolicLink(); } catch { return false; }
}
