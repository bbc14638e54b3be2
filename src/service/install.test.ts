/* qos install and qos uninstall, run as the CLI into a directory that stands for / (--root):
 * what they write, that a second install changes nothing, that uninstall gives back the tree
 * as it was byte for byte, and that a change that cannot be made safely is refused before
 * anything is changed. --preload is tried only under --root, never on /etc/ld.so.preload. */

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import { QOS_CLI } from '../daemon/child.js';
import { asUser, testUser } from '../e2e/users.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { AGENT_IN_PREFIX, type Report } from './install.js';
import { execArgv, HIDDEN_FROM_SERVICE, parseUnit, TMPFILES_TEXT } from './unit.js';
import { requireRoot, requireTools } from '../prerequisites.js';

// Files must be root's to be trusted, and the agent is loaded as another user: without root
// these tests fail, saying so, rather than pass unrun.
requireRoot('files must be root\'s to be trusted; the agent is loaded as another user');

/** The qosd installation the tests install: this checkout, or, when the checkout lies where
 * qosd.service hides it from the daemon (a clone under /tmp: install refuses it), a staged
 * copy under /opt of what install reads (the CLI's entry point and the agent). */
const PREFIX = stagePrefix();
const AGENT = join(PREFIX, AGENT_IN_PREFIX);
after(() => { if (PREFIX !== PACKAGE_ROOT) rmSync(PREFIX, { recursive: true, force: true }); });

function stagePrefix(): string {
  if (!HIDDEN_FROM_SERVICE.some((d) => PACKAGE_ROOT === d || PACKAGE_ROOT.startsWith(`${d}/`))) return PACKAGE_ROOT;
  mkdirSync('/opt', { recursive: true });
  const dir = mkdtempSync('/opt/qosd-install-test-');
  for (const f of ['dist/cli/main.js', AGENT_IN_PREFIX]) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    copyFileSync(join(PACKAGE_ROOT, f), join(dir, f));
    chmodSync(join(dir, f), 0o644);
  }
  for (let d = dirname(join(dir, AGENT_IN_PREFIX)); d !== '/opt'; d = dirname(d)) chmodSync(d, 0o755);
  return dir;
}

function qos(args: string[], asWho: string[] = []): { status: number | null; stdout: string; stderr: string } {
  if (args[0] === 'install' && !args.includes('--prefix')) args = [...args, '--prefix', PREFIX];
  const argv = [...asWho, process.execPath, QOS_CLI, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(args: string[]): Report {
  const r = qos([...args, '--json']);
  assert.equal(r.status, 0, `qos ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Report;
}

/** Every entry under dir: its kind, mode, and content or link target. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = join(rel, name);
      const st = lstatSync(join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.set(r, `link -> ${readlinkSync(join(dir, r))}`);
      else if (st.isDirectory()) { out.set(r, `dir ${mode}`); walk(r); } else out.set(r, `file ${mode} ${readFileSync(join(dir, r)).toString('base64')}`);
    }
  };
  walk('');
  return out;
}

function inRoot(fn: (root: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'qosd-install-'));
  chmodSync(root, 0o755);
  try { fn(root); } finally { rmSync(root, { recursive: true, force: true }); }
}

const results = (r: Report) => Object.fromEntries(r.steps.map((s) => [s.item, s.result]));

test('install --preload writes the unit, the tmpfiles entry, the policy, our line after the others; again changes nothing; uninstall gives back the tree byte for byte', () => {
  inRoot((root) => {
    mkdirSync(join(root, 'etc'), { mode: 0o755 });
    // another library's line, a comment, and a last line without a newline; mode 0600
    const preload = join(root, 'etc/ld.so.preload');
    const other = '/opt/other/libother.so\n# keep this comment\n\t/opt/x/libx.so:/opt/y/liby.so';
    writeFileSync(preload, other, { mode: 0o600 });
    const before = snapshot(root);

    const first = json(['install', '--preload', '--root', root]);
    assert.deepEqual(results(first), { unit: 'written', tmpfiles: 'written', policy: 'created', preload: 'added', record: 'written' });
    assert.equal(first.prefix, PREFIX);
    assert.equal((first as Report & { ok?: boolean }).ok, true, '--json: ok with the report');
    assert.equal(readFileSync(preload, 'latin1'), `${other}\n${AGENT}\n`);
    assert.equal(lstatSync(preload).mode & 0o777, 0o600, 'the file keeps its mode');
    assert.equal(readFileSync(join(root, 'etc/qosd/policy.yaml'), 'utf8'), DEFAULT_POLICY_TEXT);
    assert.equal(readFileSync(join(root, 'etc/tmpfiles.d/qosd.conf'), 'utf8'), TMPFILES_TEXT);
    const unit = parseUnit(readFileSync(join(root, 'etc/systemd/system/qosd.service'), 'utf8'));
    const service = unit.get('Service')!;
    assert.deepEqual(execArgv(service.get('ExecStart')![0]!), [process.execPath, join(PREFIX, 'dist/cli/main.js'), 'daemon'], 'the unit runs this Node.js and this CLI, with the default policy path');
    assert.deepEqual(service.get('CapabilityBoundingSet'), ['CAP_NET_ADMIN CAP_SYS_PTRACE CAP_KILL CAP_CHOWN CAP_BPF CAP_PERFMON']);
    assert.deepEqual(service.get('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(unit.get('Install')!.get('WantedBy'), ['multi-user.target']);
    for (const d of ['etc/qosd', 'etc/systemd/system', 'var/lib/qosd']) assert.equal(lstatSync(join(root, d)).mode & 0o777, 0o755, d);

    const installed = snapshot(root);
    const second = json(['install', '--preload', '--root', root]);
    assert.deepEqual(results(second), { unit: 'unchanged', tmpfiles: 'unchanged', policy: 'unchanged', preload: 'unchanged', record: 'unchanged' });
    assert.deepEqual(snapshot(root), installed, 'installing twice changes nothing');
    assert.equal(readFileSync(preload, 'latin1').split(AGENT).length - 1, 1, 'one line');

    const un = json(['uninstall', '--root', root]);
    assert.deepEqual(results(un), { unit: 'removed', tmpfiles: 'removed', policy: 'removed', preload: 'removed', record: 'removed' });
    assert.deepEqual(snapshot(root), before, 'the tree as it was, ld.so.preload byte for byte');
    assert.match(qos(['uninstall', '--root', root]).stdout, /nothing to undo/);
  });
});

test('uninstall keeps a policy edited since install created it, and a line added to ld.so.preload after ours, and says so', () => {
  inRoot((root) => {
    json(['install', '--preload', '--root', root]);
    const policy = join(root, 'etc/qosd/policy.yaml');
    writeFileSync(policy, 'rules: []\n');
    const preload = join(root, 'etc/ld.so.preload');
    writeFileSync(preload, `${readFileSync(preload, 'latin1')}/opt/later.so\n`);
    const un = json(['uninstall', '--root', root]);
    const p = un.steps.find((s) => s.item === 'policy')!;
    assert.equal(p.result, 'kept');
    assert.match(p.note!, /edited since qos install created it/);
    assert.equal(readFileSync(policy, 'utf8'), 'rules: []\n');
    assert.equal(readFileSync(preload, 'latin1'), '/opt/later.so\n', 'only our line went; the file stays, it is not empty');
    assert.ok(!existsSync(join(root, 'etc/systemd/system/qosd.service')));
    assert.match(qos(['uninstall', '--root', root]).stdout, /nothing to undo/);
  });
});

test('an existing policy is the administrator\'s: install keeps it and uninstall leaves it', () => {
  inRoot((root) => {
    mkdirSync(join(root, 'etc/qosd'), { recursive: true, mode: 0o755 });
    writeFileSync(join(root, 'etc/qosd/policy.yaml'), 'rules: []\n');
    const r = json(['install', '--root', root]);
    assert.equal(results(r).policy, 'kept');
    json(['uninstall', '--root', root]);
    assert.equal(readFileSync(join(root, 'etc/qosd/policy.yaml'), 'utf8'), 'rules: []\n');
  });
});

test('a symbolic link at /etc/ld.so.preload is refused, and nothing at all is changed; --json says why in JSON', () => {
  inRoot((root) => {
    mkdirSync(join(root, 'etc'), { mode: 0o755 });
    writeFileSync(join(root, 'target'), '/opt/a.so\n');
    symlinkSync(join(root, 'target'), join(root, 'etc/ld.so.preload'));
    const before = snapshot(root);
    const r = qos(['install', '--preload', '--root', root]);
    assert.equal(r.status, 78, r.stderr);
    assert.match(r.stderr, /ld\.so\.preload is a symbolic link: qos install edits only a regular file, never through a link/);
    assert.deepEqual(snapshot(root), before, 'no unit, no policy, no record, the link and its target as they were');
    const j = qos(['install', '--preload', '--root', root, '--json']);
    assert.equal(j.status, 78);
    const doc = JSON.parse(j.stdout) as { ok: boolean; error: { code: string; message: string } };
    assert.equal(doc.ok, false);
    assert.equal(doc.error.code, 'QOS_ERR_UNSAFE_PATH');
    assert.deepEqual(snapshot(root), before);
  });
});

test('a unit qos install did not write is not replaced: refused, nothing changed', () => {
  inRoot((root) => {
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true, mode: 0o755 });
    writeFileSync(join(root, 'etc/systemd/system/qosd.service'), '[Service]\nExecStart=/bin/true\n');
    const before = snapshot(root);
    const r = qos(['install', '--root', root]);
    assert.equal(r.status, 73, r.stderr);
    assert.match(r.stderr, /qosd\.service is already there and qos install did not write it/);
    assert.deepEqual(snapshot(root), before);
  });
});

test('a unit and tmpfiles entry a package installed are left to it; an agent that does not load is refused before anything is written', () => {
  inRoot((root) => {
    for (const [d, f] of [['lib/systemd/system', 'qosd.service'], ['usr/lib/tmpfiles.d', 'qosd.conf']] as const) {
      mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
      writeFileSync(join(root, d, f), '# the package\'s\n');
    }
    const r = json(['install', '--root', root]);
    assert.deepEqual(r.steps.filter((s) => s.result === 'skipped').map((s) => s.path), ['/lib/systemd/system/qosd.service', '/usr/lib/tmpfiles.d/qosd.conf']);
    assert.ok(!existsSync(join(root, 'etc/systemd')));
    json(['uninstall', '--root', root]);

    // an installation whose agent is not a library
    const prefix = join(root, 'opt/qosd');
    mkdirSync(join(prefix, 'agent/build'), { recursive: true, mode: 0o755 });
    symlinkSync(join(PACKAGE_ROOT, 'dist'), join(prefix, 'dist'));
    writeFileSync(join(prefix, 'agent/build/libqosagent.so'), 'not a library\n', { mode: 0o644 });
    const before = snapshot(root);
    const bad = qos(['install', '--preload', '--root', root, '--prefix', prefix]);
    assert.equal(bad.status, 69, bad.stderr);
    assert.match(bad.stderr, /does not load into a program/);
    assert.deepEqual(snapshot(root), before, 'no policy, no record, no ld.so.preload');
  });
});

test('--dry-run reports what install would do and changes nothing', () => {
  inRoot((root) => {
    const before = snapshot(root);
    const r = json(['install', '--preload', '--dry-run', '--root', root]);
    assert.equal(r.dry_run, true);
    assert.deepEqual(results(r), { unit: 'written', tmpfiles: 'written', policy: 'created', preload: 'added', record: 'written' });
    assert.deepEqual(snapshot(root), before);
    assert.match(qos(['install', '--dry-run', '--root', root]).stdout, /^qos install --dry-run: nothing was changed/);
  });
});

test('an install recorded for another qosd installation is not mixed with this one', () => {
  inRoot((root) => {
    json(['install', '--root', root]);
    const record = join(root, 'var/lib/qosd/install.json');
    writeFileSync(record, readFileSync(record, 'utf8').replace(JSON.stringify(PREFIX), JSON.stringify('/opt/other-qosd')));
    const r = qos(['install', '--root', root]);
    assert.equal(r.status, 73, r.stderr);
    assert.match(r.stderr, /qos install was run for the qosd in \/opt\/other-qosd/);
    const only = json(['uninstall', '--root', root, '--prefix', PREFIX]);
    assert.equal(only.steps.length, 0, 'uninstall --prefix of another installation undoes nothing');
    assert.match(only.next[0]!, /nothing to undo for/);
    assert.ok(existsSync(record));
  });
});

test('without root and without --root, install and uninstall refuse and change nothing', () => {
  const user = testUser('installer');
  const record = '/var/lib/qosd/install.json';
  const had = existsSync(record);
  for (const args of [['install', '--preload'], ['uninstall']]) {
    const r = qos(args, asUser(user, []));
    assert.equal(r.status, 77, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /run it as root, or give --root DIR/);
  }
  assert.equal(existsSync(record), had);
});

test('the installed unit passes systemd-analyze verify, and its tmpfiles entry makes /run/qosd root\'s, mode 0755', () => {
  inRoot((root) => {
    json(['install', '--root', root]);
    const unit = join(root, 'etc/systemd/system/qosd.service');
    requireTools('systemd-analyze', 'systemd-tmpfiles');
    const v = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr, '', 'no warning');
    const t = spawnSync('systemd-tmpfiles', ['--create', `--root=${root}`, join(root, 'etc/tmpfiles.d/qosd.conf')], { encoding: 'utf8' });
    assert.equal(t.status, 0, t.stderr);
    const st = lstatSync(join(root, 'run/qosd'));
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o7777, 0o755);
    assert.equal(st.uid, 0);
  });
});
