/* What a hostile local user can do to the daemon with files (issue 15), against real daemons
 * and a real unprivileged user: a policy or rule store where others can write, or owned by
 * them, or a link, is refused at start (and the old policy kept at reload) with the path and
 * the reason; what a killed save left is removed at start; a document built to exhaust the
 * daemon (a YAML alias bomb, 24 MB) is refused as invalid input, not an internal error; a
 * save that fails leaves the stored file as it was. */

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { callJson } from './admin-client.js';
import { asUser, testUser } from '../e2e/users.js';
import { DaemonChild, QOS_CLI } from './child.js';
import { requireRoot } from '../prerequisites.js';

requireRoot('an unprivileged user is the attacker; files are given to them');
const POLICY = 'rules:\n  - { name: web, match: { remote_port: 443 }, action: { dscp: AF21 } }\n';
const BOMB = `${['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefghi'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`)].join('\n')}\nrules: []\n`;

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** A new directory (mkdtemp: 0700, root's); `mode` opens it. */
function newDir(mode?: number): string {
  const d = mkdtempSync(join(tmpdir(), 'qosd-hostile-files-'));
  dirs.push(d);
  if (mode !== undefined) chmodSync(d, mode);
  return d;
}

function qos(argv: string[], timeout = 60_000): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [QOS_CLI, ...argv], { encoding: 'utf8', timeout });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

/** Starts a daemon that should refuse to start; its exit status and output. A daemon that
 * starts is stopped after a while: status null. */
function daemonRefused(policy: string, rules: string): { status: number | null; out: string } {
  const d = newDir();
  return qos(['daemon', '--socket', join(d, 'agent.sock'), '--admin', join(d, 'admin.sock'), '--policy', policy, '--rules', rules, '--kernel', 'off', '--nice', 'keep'], 15_000);
}

/** The output of a refusal names the file and the reason, without a stack trace. */
function assertClear(out: string, ...res: RegExp[]): void {
  for (const re of res) assert.match(out, re);
  assert.doesNotMatch(out, /internal error|\n\s+at /, 'no internal error, no stack trace');
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('a daemon given --policy or --rules in a directory other users can write (sticky or not) refuses to start, naming the file and why', () => {
  const safe = newDir();
  writeFileSync(join(safe, 'policy.yaml'), POLICY);
  for (const mode of [0o777, 0o1777, 0o775]) {
    const shared = newDir(mode);
    const policy = join(shared, 'policy.yaml');
    writeFileSync(policy, POLICY);
    let r = daemonRefused(policy, join(safe, 'rules.json'));
    assert.equal(r.status, 78, r.out);
    assertClear(r.out, new RegExp(`refusing the policy ${esc(policy)}`), new RegExp(`${esc(shared)} is writable by (group and others|group) \\(mode ${mode.toString(8).padStart(4, '0')}\\)`));
    const rules = join(shared, 'rules.json');
    r = daemonRefused(join(safe, 'policy.yaml'), rules);
    assert.equal(r.status, 78, r.out);
    assertClear(r.out, new RegExp(`refusing the kernel rule store ${esc(rules)}`), /writable by/);
    assert.ok(!existsSync(rules), 'nothing was written there');
  }
});

test('a policy or rule store that another user owns, or that is a symbolic link, is refused at start', () => {
  const mallory = testUser('fs-mallory');
  const d = newDir(0o755);
  const policy = join(d, 'policy.yaml');
  writeFileSync(policy, POLICY);
  // a file the attacker owns (made by them in a directory open to them, then moved here)
  const theirs = join(d, 'theirs.yaml');
  writeFileSync(theirs, POLICY);
  chownSync(theirs, mallory.uid, mallory.gid);
  let r = daemonRefused(theirs, join(d, 'rules.json'));
  assert.equal(r.status, 78, r.out);
  assertClear(r.out, new RegExp(`${esc(theirs)} belongs to uid ${mallory.uid} \\(${mallory.name}\\)`));
  const store = join(d, 'store.json');
  writeFileSync(store, '{"qosd_rules": 1, "revision": 1, "rules": []}\n');
  chownSync(store, mallory.uid, mallory.gid);
  r = daemonRefused(policy, store);
  assert.equal(r.status, 78, r.out);
  assertClear(r.out, /refusing the kernel rule store/, /belongs to uid/);
  // links, to a file of theirs in a directory of theirs
  const open = newDir(0o1777);
  const planted = join(open, 'planted');
  const argv = asUser(mallory, ['sh', '-c', `printf 'rules: []\\n' > ${planted}`]);
  const w = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  assert.equal(w.status, 0, w.stderr);
  symlinkSync(planted, join(d, 'link.yaml'));
  r = daemonRefused(join(d, 'link.yaml'), join(d, 'rules.json'));
  assert.equal(r.status, 78, r.out);
  assertClear(r.out, /link\.yaml is a symbolic link/);
  symlinkSync(planted, join(d, 'link.json'));
  r = daemonRefused(policy, join(d, 'link.json'));
  assert.equal(r.status, 78, r.out);
  assertClear(r.out, /link\.json is a symbolic link/);
  // a policy file others can write
  chmodSync(policy, 0o666);
  r = daemonRefused(policy, join(d, 'rules.json'));
  assert.equal(r.status, 78, r.out);
  assertClear(r.out, /policy\.yaml is writable by group and others \(mode 0666\)/);
});

test('`qos policy check` (it only reads) checks a file wherever it is, whoever owns it', () => {
  const mallory = testUser('fs-mallory');
  const open = newDir(0o1777);
  const file = join(open, 'policy.yaml');
  writeFileSync(file, POLICY);
  chownSync(file, mallory.uid, mallory.gid);
  const r = qos(['policy', 'check', file]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /ok, 1 rules/);
});

test('temporary files a killed save left beside the store are gone once the daemon has started; nothing else is touched', async () => {
  const d = newDir();
  const daemon = new DaemonChild(d, POLICY, ['--kernel', 'off', '--nice', 'keep']);
  writeFileSync(daemon.rulesFile, '{"qosd_rules": 1, "revision": 7, "enabled": true, "rules": [{"name": "kept", "match": {"remote_port": 22}, "action": {"dscp": "CS1"}}]}\n');
  // a daemon killed in an import leaves its temporary file: named by pid before, at random now
  const store = basename(daemon.rulesFile);
  const stale = [`.${store}.31337.tmp`, `.${store}.Zm9vYmFyYmF6cXV4.tmp`];
  for (const n of stale) writeFileSync(join(d, n), '{"qosd_rules": 1, "revis');
  const others = [`.${store}.bak`, `${store}.tmp`, '.policy.yaml.31337.tmp'];
  for (const n of others) writeFileSync(join(d, n), 'not ours');
  await daemon.start();
  try {
    const names = readdirSync(d);
    for (const n of stale) assert.ok(!names.includes(n), `${n} removed`);
    for (const n of others) assert.ok(names.includes(n), `${n} kept`);
    const list = await callJson<{ revision: number; rules: { name: string }[] }>(daemon.admin, 'GET', '/v1/rules');
    assert.equal(list.revision, 7);
    assert.deepEqual(list.rules.map((r) => r.name), ['kept']);
  } finally {
    await daemon.stop();
  }
});

test('a reload that finds the policy where other users can write keeps the old policy and says why; once mended it loads', async () => {
  const d = newDir();
  const daemon = await new DaemonChild(d, POLICY, ['--kernel', 'off', '--nice', 'keep']).start();
  try {
    writeFileSync(daemon.policyFile, `${POLICY}  - { name: ssh, match: { remote_port: 22 }, action: { dscp: CS1 } }\n`);
    chmodSync(d, 0o777);
    const r = await callJson<{ ok: boolean; rules: number; error?: { code: string; problems: { message: string }[] } }>(daemon.admin, 'POST', '/v1/reload');
    assert.equal(r.ok, false);
    assert.equal(r.rules, 1, 'the old policy stays');
    assert.equal(r.error?.code, 'QOS_ERR_UNSAFE_PATH');
    assert.match(r.error?.problems[0]?.message ?? '', new RegExp(`${esc(d)} is writable by group and others \\(mode 0777\\)`));
    chmodSync(d, 0o700);
    const ok = await callJson<{ ok: boolean; rules: number }>(daemon.admin, 'POST', '/v1/reload');
    assert.deepEqual(ok, { ok: true, rules: 2 });
  } finally {
    await daemon.stop();
  }
});

test('a YAML alias bomb and a 24 MB policy are invalid input (exit 65, where and why, no stack trace): at start, at reload (the old policy stays), in `qos policy check` and `qos rules validate`', async () => {
  const d = newDir();
  const bomb = join(d, 'bomb.yaml');
  writeFileSync(bomb, BOMB);
  const huge = join(d, 'huge.yaml');
  writeFileSync(huge, `rules:\n${'  - { match: { remote_port: 443, proto: tcp }, action: { dscp: AF21 } }\n'.repeat(24 * 2 ** 20 / 68)}`);
  for (const [file, why] of [[bomb, /bomb\.yaml:9:\d+: .*more than \d+ values in the policy, counting each time a YAML alias repeats one/], [huge, /huge\.yaml: \d+ bytes: a policy may have at most 4 MiB as JSON/]] as const) {
    let r = qos(['policy', 'check', file]);
    assert.equal(r.status, 65, r.out);
    assertClear(r.out, why);
    r = daemonRefused(file, join(d, 'rules.json'));
    assert.equal(r.status, 65, r.out);
    assertClear(r.out, why);
  }
  const setBomb = join(d, 'set.yaml');
  writeFileSync(setBomb, `qosd_rules: 1\n${BOMB}`);
  const r = qos(['rules', 'validate', setBomb]);
  assert.equal(r.status, 65, r.out);
  assertClear(r.out, /more than \d+ values in the rule set/);

  const daemon = await new DaemonChild(newDir(), POLICY, ['--kernel', 'off', '--nice', 'keep']).start();
  try {
    for (const text of [BOMB, readFileSync(huge, 'utf8')]) {
      writeFileSync(daemon.policyFile, text);
      const re = await callJson<{ ok: boolean; rules: number; error?: { code: string } }>(daemon.admin, 'POST', '/v1/reload');
      assert.equal(re.ok, false);
      assert.equal(re.error?.code, 'QOS_ERR_POLICY_INVALID');
      assert.equal(re.rules, 1, 'the old policy stays');
    }
    const status = await callJson<{ policy: { rules: number } }>(daemon.admin, 'GET', '/v1/status');
    assert.equal(status.policy.rules, 1);
  } finally {
    await daemon.stop();
  }
});

test('an import the store cannot take (its file system is full) leaves the stored file as it was', async () => {
  const d = newDir();
  const store = join(d, 'store');
  mkdirSync(store);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', store], { encoding: 'utf8' });
  assert.equal(mount.status, 0, mount.stderr);
  try {
    const rulesFile = join(store, 'rules.json');
    const saved = '{"qosd_rules": 1, "revision": 3, "enabled": true, "rules": [{"name": "saved", "match": {"remote_port": 22}, "action": {"dscp": "CS1"}}]}\n';
    writeFileSync(rulesFile, saved);
    const daemon = await new DaemonChild(d, POLICY, ['--kernel', 'off', '--nice', 'keep', '--rules', rulesFile]).start();
    try {
      const rules = Array.from({ length: 2000 }, (_, i) => ({ name: `r${i}`, match: { remote_port: 1000 + i }, action: { dscp: 'AF21' } }));
      await assert.rejects(callJson(daemon.admin, 'POST', '/v1/rules/import', { text: JSON.stringify({ qosd_rules: 1, rules }) }, 60_000), /ENOSPC/);
      assert.equal(readFileSync(rulesFile, 'utf8'), saved, 'the saved set is intact');
      assert.deepEqual(readdirSync(store), ['rules.json'], 'no temporary file is left');
    } finally {
      await daemon.stop();
    }
  } finally {
    spawnSync('umount', [store]);
  }
});
