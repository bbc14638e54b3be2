/* The Debian package end to end on this machine: built by buildDeb (npm run deb), installed
 * with apt-get, its files where they belong; the daemon run as the installed unit's ExecStart
 * with the unit's capability bounding set, no-new-privileges, nice value and descriptor
 * limit (no systemd runs here to do it), every socket it opens traced, in a network namespace
 * of its own; a real program run as another user under the agent gets its decision; then
 * purged, and nothing of it is left. The machine is the CI machine: the package is purged
 * whatever fails, /etc/ld.so.preload is never touched (--preload is tried under --root), and a
 * missing tool fails the test with the Debian package to install. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PACKAGE_VERSION } from '../paths.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { buildDeb, debArch, INSTALL_PREFIX, PACKAGE_NAME } from './deb.js';
import { execArgv, parseUnit } from './unit.js';
import { requireRoot, requireTools } from '../prerequisites.js';
import { sh, waitFor } from '../e2e/harness.js';

/** What the package may leave behind once purged: nothing of these. */
const OURS = ['/etc/qosd', '/var/lib/qosd', INSTALL_PREFIX, '/usr/bin/qos', '/lib/systemd/system/qosd.service', '/usr/lib/tmpfiles.d/qosd.conf', '/usr/share/doc/qosd'];

function must(argv: string[], o: { env?: NodeJS.ProcessEnv } = {}): string {
  const r = sh(argv, { ...o, timeout: 120_000 });
  assert.equal(r.status, 0, `${argv.join(' ')} (exit ${r.status}): ${r.stderr}${r.stdout.slice(-2000)}`);
  return r.stdout;
}

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const apt = (args: string[]) => must(['apt-get', '-q', '-y', '-o', 'DPkg::Lock::Timeout=120', ...args], { env: APT_ENV });
const known = () => sh(['dpkg-query', '-W', '-f', '${Status}', PACKAGE_NAME]).stdout.trim();

function readPreload(): string | null {
  try { return readFileSync('/etc/ld.so.preload', 'latin1'); } catch { return null; }
}

/** The hard limit on descriptors here: a container without CAP_SYS_RESOURCE may hold it
 * below the unit's LimitNOFILE, which a systemd-started daemon would get. */
function hardNofile(): number {
  const m = /^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : Infinity;
}

test('the Debian package installs with apt, runs as its unit says, and purges without a trace', { timeout: 240_000 }, async (t) => {
  requireRoot('apt-get installs the package, the daemon runs in a network namespace');
  requireTools('dpkg-deb', 'dpkg-shlibdeps', 'apt-get', 'systemd-analyze', 'strace', 'setpriv', 'prlimit', 'ip', 'nft', 'curl', 'groff');
  assert.match(known() || 'absent', /^(absent|unknown ok not-installed)$/, `a ${PACKAGE_NAME} package is installed here; the test would purge it`);
  // README's set-up links /usr/bin/qos to the checkout (npm link): set aside, put back after
  const npmLink = linkedCli();
  for (const p of OURS) if (!(npmLink && p === '/usr/bin/qos')) assert.ok(!existsSync(p), `${p} exists; the test installs and purges ${PACKAGE_NAME} and would remove it`);
  const runDirBefore = existsSync('/run/qosd');
  const preloadBefore = readPreload();

  const dir = mkdtempSync(join(tmpdir(), 'qosd-debtest-'));
  chmodSync(dir, 0o755);
  const ns = `qdeb${process.pid % 100_000}`;
  const procs: ChildProcess[] = [];
  let daemonPid = 0;
  try {
    if (npmLink) rmSync('/usr/bin/qos');
    const t0 = Date.now();
    const phase = (what: string) => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const deb = buildDeb({ outDir: dir });
    phase('built');
    assert.equal(basename(deb), `${PACKAGE_NAME}_${PACKAGE_VERSION}_${debArch()}.deb`);
    const control = must(['dpkg-deb', '-f', deb, 'Depends']);
    assert.match(control, /nodejs \(>= 20\)/);
    assert.match(control, /libc6 \(>= [\d.]+\)/, 'dpkg-shlibdeps found the C library');

    apt(['install', '--no-install-recommends', deb]);
    phase('installed');
    assert.equal(known(), 'install ok installed');

    // files where they belong, nothing from development
    const listed = must(['dpkg', '-L', PACKAGE_NAME]).split('\n').filter(Boolean);
    for (const f of ['/usr/bin/qos', '/lib/systemd/system/qosd.service', '/usr/lib/tmpfiles.d/qosd.conf', '/usr/share/man/man8/qos.8.gz',
      `${INSTALL_PREFIX}/agent/build/libqosagent.so`, `${INSTALL_PREFIX}/native/build/peercred.node`, `${INSTALL_PREFIX}/native/build/rsvpio`, `${INSTALL_PREFIX}/dist/cli/main.js`,
      `${INSTALL_PREFIX}/node_modules/commander/package.json`, `${INSTALL_PREFIX}/src/script/tcl-host.tcl`, '/usr/share/doc/qosd/copyright', '/usr/share/doc/qosd/install.md']) {
      assert.ok(listed.includes(f), `the package has ${f}`);
    }
    const dist = `${INSTALL_PREFIX}/dist/`;
    assert.deepEqual(listed.filter((f) => (f.startsWith(dist) && /\.test\.js$|\.map$/.test(f)) || /\/node_modules\/(typescript|@types)(\/|$)/.test(f)), [], 'no tests, source maps or development modules');
    assert.equal(must(['dpkg', '--verify', PACKAGE_NAME]), '', 'every file as the package has it (md5sums)');
    assert.equal(must(['/usr/bin/qos', '--version']).trim(), PACKAGE_VERSION);

    // postinst: the policy from the built-in one (not a file of the package), /run/qosd
    assert.equal(readFileSync('/etc/qosd/policy.yaml', 'utf8'), DEFAULT_POLICY_TEXT);
    const pst = lstatSync('/etc/qosd/policy.yaml');
    assert.equal(pst.mode & 0o7777, 0o644);
    assert.equal(pst.uid, 0);
    assert.notEqual(sh(['dpkg', '-S', '/etc/qosd/policy.yaml']).status, 0, 'the policy is no file of the package: removing it is purge\'s');
    assert.equal(lstatSync('/run/qosd').mode & 0o7777, 0o755);

    const verify = sh(['systemd-analyze', 'verify', '/lib/systemd/system/qosd.service']);
    assert.equal(verify.status, 0, verify.stderr);
    assert.equal(verify.stderr, '', 'systemd-analyze verify: no warning');
    const groff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: must(['zcat', '/usr/share/man/man8/qos.8.gz']), encoding: 'utf8' });
    assert.equal(groff.status, 0);
    assert.equal(groff.stderr, '', 'the installed man page renders without a warning');

    // the packaged agent can be preloaded (tried under --root: never the machine's ld.so.preload)
    const root = join(dir, 'root');
    mkdirSync(root, { mode: 0o755 });
    const inst = JSON.parse(must(['/usr/bin/qos', 'install', '--preload', '--root', root, '--json'])) as { steps: { item: string; result: string; note?: string }[] };
    assert.deepEqual(inst.steps.find((s) => s.item === 'preload'), { item: 'preload', path: '/etc/ld.so.preload', result: 'added', note: `${INSTALL_PREFIX}/agent/build/libqosagent.so` });
    must(['/usr/bin/qos', 'uninstall', '--root', root]);

    phase('checked');
    // the daemon as the unit runs it: ExecStart's argv, the unit's bounds, its own namespace
    const svc = parseUnit(readFileSync('/lib/systemd/system/qosd.service', 'utf8')).get('Service')!;
    const one = (k: string) => { const v = svc.get(k); assert.equal(v?.length, 1, `the unit sets ${k} once`); return v![0]!; };
    const execStart = execArgv(one('ExecStart'));
    assert.deepEqual(execStart, ['/usr/bin/qos', 'daemon'], 'the daemon with its default policy path');
    const caps = one('CapabilityBoundingSet').split(/\s+/).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
    const nofile = Math.min(Number(one('LimitNOFILE')), hardNofile());
    const families = one('RestrictAddressFamilies').split(/\s+/);
    must(['ip', 'netns', 'add', ns]);
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const env = { ...process.env, QOSD_SOCKET: join(dir, 'run/agent.sock'), QOSD_ADMIN: join(dir, 'run/admin.sock') };
    const traced = join(dir, 'strace.out');
    const argv = ['ip', 'netns', 'exec', ns, 'prlimit', `--nofile=${nofile}:${nofile}`, 'nice', '-n', one('Nice'),
      'strace', '-f', '-qq', '--seccomp-bpf', '-e', 'trace=socket', '-o', traced,
      'setpriv', `--bounding-set=-all,${caps.join(',')}`, ...(one('NoNewPrivileges') === 'yes' ? ['--no-new-privs'] : []), '--', ...execStart];
    const daemon = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(daemon);
    let log = '';
    daemon.stdout!.on('data', (d: Buffer) => (log += d));
    daemon.stderr!.on('data', (d: Buffer) => (log += d));
    await waitFor(`the daemon to listen: ${log}`, () => log.includes('qosd listening') || daemon.exitCode !== null, 50, 30_000);
    assert.match(log, /"policy":"\/etc\/qosd\/policy\.yaml","policy_origin":"default"/, `the start log names the policy in use: ${log}`);
    const status = JSON.parse(must(['/usr/bin/qos', 'status', '--json', '--admin', env.QOSD_ADMIN])) as { pid: number; policy: { source: string; origin: string }; kernel: unknown };
    daemonPid = status.pid;
    assert.deepEqual([status.policy.source, status.policy.origin], ['/etc/qosd/policy.yaml', 'default']);
    must(['ip', 'netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'qosd']); // the kernel rules, with CAP_NET_ADMIN alone

    // curl, run as nobody under the agent, to a server on loopback
    const server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', "require('net').createServer((s) => s.end('HTTP/1.0 200 OK\\r\\n\\r\\nok')).listen(554, '127.0.0.1')"], { stdio: 'ignore' });
    procs.push(server);
    await waitFor('the server in the namespace', () => sh(['ip', 'netns', 'exec', ns, 'ss', '-Hltn', 'sport = :554']).stdout.trim() !== '', 50, 10_000);
    const curl = sh(['ip', 'netns', 'exec', ns, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', '/usr/bin/qos', 'run', '--', 'curl', '-s', '--max-time', '10', 'http://127.0.0.1:554/'], { env });
    assert.equal(curl.status, 0, curl.stderr);
    assert.equal(curl.stdout, 'ok');
    const decisions = must(['/usr/bin/qos', 'decisions', '--json', '--admin', env.QOSD_ADMIN]).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const connect = decisions.find((d) => d.event === 'connect' && (d.remote as { port?: number } | null)?.port === 554);
    assert.ok(connect, `curl's connect was decided: ${JSON.stringify(decisions)}`);
    // another user's process: alive (CAP_KILL), its executable known (CAP_SYS_PTRACE)
    assert.deepEqual([connect.user, connect.exe, connect.rule], ['nobody', '/usr/bin/curl', 'streaming-control']);
    assert.match(String(connect.reply), /^DSCP 26\b/, 'AF31, as the built-in policy says for port 554');

    // ExecReload, as systemctl reload would run it
    const reload = execArgv(one('ExecReload')).map((a) => a.replace('$MAINPID', String(daemonPid)));
    must(reload);
    await waitFor('the reload on SIGHUP', () => /"trigger":"SIGHUP".*"policy reloaded"/.test(log), 50, 10_000);
    process.kill(daemonPid, 'SIGTERM');
    await waitFor('the daemon to stop on SIGTERM', () => daemon.exitCode !== null, 50, 10_000);
    daemonPid = 0;
    const opened = new Set([...readFileSync(traced, 'utf8').matchAll(/socket\((AF_\w+)/g)].map((m) => m[1]!));
    assert.ok(opened.has('AF_UNIX') && opened.has('AF_NETLINK'), `strace saw the daemon's sockets: ${[...opened]}`);
    assert.deepEqual([...opened].filter((f) => !families.includes(f)), [], `every socket the daemon opened is allowed by RestrictAddressFamilies=${families.join(' ')}`);

    phase('daemon run');
    apt(['remove', '--purge', PACKAGE_NAME]);
    phase('purged');
    assert.match(known() || 'absent', /^(absent|unknown ok not-installed)$/);
    // (directories such as /lib, a link on a merged /usr, are the system's)
    assert.deepEqual(listed.filter((f) => existsSync(f) && !statSync(f).isDirectory()), [], 'no file of the package is left');
    for (const p of OURS) assert.ok(!existsSync(p), `${p} is gone after purge`);
    if (!runDirBefore) assert.ok(!existsSync('/run/qosd'), '/run/qosd is gone after purge');
    assert.equal(readPreload(), preloadBefore, '/etc/ld.so.preload as it was');
  } finally {
    if (daemonPid) try { process.kill(daemonPid, 'SIGKILL'); } catch { /* gone */ }
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    sh(['ip', 'netns', 'del', ns]);
    if (known() && !/not-installed/.test(known())) sh(['apt-get', '-q', '-y', '-o', 'DPkg::Lock::Timeout=120', 'remove', '--purge', PACKAGE_NAME], { env: APT_ENV });
    rmSync(dir, { recursive: true, force: true });
    if (npmLink && !existsSync('/usr/bin/qos')) symlinkSync(npmLink, '/usr/bin/qos');
  }
});

/** The target of /usr/bin/qos if it is `npm link`'s link to a checkout's CLI, else null. */
function linkedCli(): string | null {
  try {
    if (!lstatSync('/usr/bin/qos').isSymbolicLink()) return null;
    const target = readlinkSync('/usr/bin/qos');
    return /node_modules\/qosd\/dist\/cli\/main\.js$|\/dist\/cli\/main\.js$/.test(target) ? target : null;
  } catch {
    return null;
  }
}
