/* The Debian package, built from this built tree by dpkg-deb alone (no debhelper):
 * `npm run deb` → qosd_<version>_<arch>.deb. docs/install.md describes what it installs:
 *
 *   /usr/lib/qosd/             package.json, dist/ (no tests), the production node_modules,
 *                              agent/build/ (the agent, the benchmark programs), native/build/,
 *                              src/script/*.tcl (the Safe Tcl host)
 *   /usr/bin/qos               runs /usr/lib/qosd/dist/cli/main.js with /usr/bin/node
 *   /lib/systemd/system/qosd.service, /usr/lib/tmpfiles.d/qosd.conf (unit.ts)
 *   /usr/share/man/man8/qos.8.gz, /usr/share/doc/qosd/ (copyright, README, docs, examples)
 *
 * and the maintainer scripts in src/service/debian/. */

import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PACKAGE_ROOT, PACKAGE_VERSION } from '../paths.js';
import { exitCodeFor, QosError } from '../errors.js';
import { runSync } from '../exec.js';
import { TMPFILES_NAME, TMPFILES_TEXT, UNIT_NAME, unitText } from './unit.js';

/** Where the package puts qosd. */
export const INSTALL_PREFIX = '/usr/lib/qosd';
export const PACKAGE_NAME = 'qosd';
/** The unit's command, as the package installs it. */
export const PACKAGED_EXEC_START = ['/usr/bin/qos', 'daemon'];

/** Depends beyond the shared libraries (dpkg-shlibdeps adds libc6): Node.js 20 for the CLI
 * and daemon (/usr/bin/node, as the nodejs package installs it), nftables for the kernel
 * rules, procps for the unit's ExecReload (/bin/kill). */
const DEPENDS = ['nodejs (>= 20)', 'nftables', 'procps'];
/** tclsh8.6 runs Safe Tcl policy scripts; ss (iproute2) serves qos characterize --app, and
 * tc, ip and bpftool host traffic control (its 802.1p tagger). */
const RECOMMENDS = ['tcl8.6', 'iproute2', 'bpftool'];
/** qos characterize --live, qos bench and qos demo. */
const SUGGESTS = ['tcpdump', 'tshark', 'iperf3'];

const DOC_FILES = ['README.md', 'ARCHITECTURE.md'];

export interface DebOptions {
  /** the directory the .deb is written to */
  outDir: string;
  /** the tree to package (default: this one); it must be built (npm run build) */
  root?: string;
  /** the date in the man page's footer, YYYY-MM-DD (default: SOURCE_DATE_EPOCH's, or today) */
  date?: string;
  progress?: (m: string) => void;
}

/** Runs a tool, returns its standard output; a missing tool names the Debian package. */
function tool(argv: string[], pkg: string, o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return runSync(argv, { ...o, timeoutMs: 120_000, pkg }).stdout;
}

/** The architecture name dpkg uses (amd64 here). */
export function debArch(): string {
  return tool(['dpkg', '--print-architecture'], 'dpkg').trim();
}

export function debFileName(version = PACKAGE_VERSION, arch = debArch()): string {
  return `${PACKAGE_NAME}_${version}_${arch}.deb`;
}

/** Every regular file under dir, as paths relative to it. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

function copy(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}

/** The production dependencies' directories (npm ls --omit=dev), top-most only; type
 * declarations (@types/*, which protobufjs, under etcd3, lists as a dependency) are never
 * loaded at run time and stay out. */
function productionModules(root: string): string[] {
  const dirs = tool(['npm', 'ls', '--omit=dev', '--all', '--parseable'], 'nodejs (npm)', { cwd: root }).split('\n').map((l) => l.trim())
    .filter((l) => l.startsWith(join(root, 'node_modules') + '/') && !/\/node_modules\/@types(\/|$)/.test(l)).sort();
  return dirs.filter((d, i) => !dirs.slice(0, i).some((p) => d.startsWith(p + '/')));
}

/** Stages the package's files under pkg (the future /). */
function stageFiles(root: string, pkg: string, date: string): void {
  const lib = join(pkg, INSTALL_PREFIX.slice(1));
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  const { name, version, description, license, type, engines, dependencies } = manifest;
  mkdirSync(lib, { recursive: true });
  writeFileSync(join(lib, 'package.json'), JSON.stringify({ name, version, description, license, type, engines, dependencies }, null, 2) + '\n');
  for (const f of files(join(root, 'dist'))) {
    if (f.endsWith('.test.js') || f.endsWith('.map')) continue;
    copy(join(root, 'dist', f), join(lib, 'dist', f));
  }
  for (const m of productionModules(root)) cpSync(m, join(lib, relative(root, m)), { recursive: true, dereference: true });
  copy(join(root, 'agent/build/libqosagent.so'), join(lib, 'agent/build/libqosagent.so'));
  for (const f of files(join(root, 'agent/build/bench'))) copy(join(root, 'agent/build/bench', f), join(lib, 'agent/build/bench', f));
  for (const f of ['peercred.node', 'qosbpf.node', 'rsvpio', 'tcpcheat']) copy(join(root, 'native/build', f), join(lib, 'native/build', f));
  copy(join(root, 'bpf/build/dot1p.bpf.o'), join(lib, 'bpf/build/dot1p.bpf.o'));
  copy(join(root, 'bpf/build/exe-mark.bpf.o'), join(lib, 'bpf/build/exe-mark.bpf.o'));
  for (const f of ['tcl-host.tcl', 'SprintLib.tcl']) copy(join(root, 'src/script', f), join(lib, 'src/script', f));

  const debian = join(root, 'src/service/debian');
  copy(join(debian, 'qos'), join(pkg, 'usr/bin/qos'));
  mkdirSync(join(pkg, 'lib/systemd/system'), { recursive: true });
  writeFileSync(join(pkg, 'lib/systemd/system', UNIT_NAME), unitText({ execStart: PACKAGED_EXEC_START, documentation: ['man:qos(8)', 'file:///usr/share/doc/qosd/install.md'] }));
  mkdirSync(join(pkg, 'usr/lib/tmpfiles.d'), { recursive: true });
  writeFileSync(join(pkg, 'usr/lib/tmpfiles.d', TMPFILES_NAME), TMPFILES_TEXT);

  // the page from the CLI being packaged, with the defaults it shows not taken from our shell
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('QOSD_')));
  const page = tool([process.execPath, join(lib, 'dist/cli/main.js'), 'manpage', '--date', date], 'nodejs', { env });
  mkdirSync(join(pkg, 'usr/share/man/man8'), { recursive: true });
  writeFileSync(join(pkg, 'usr/share/man/man8/qos.8.gz'), gzipSync(page, { level: 9 }));

  const doc = join(pkg, 'usr/share/doc/qosd');
  copy(join(debian, 'copyright'), join(doc, 'copyright'));
  for (const f of DOC_FILES) copy(join(root, f), join(doc, f));
  for (const f of files(join(root, 'docs'))) copy(join(root, 'docs', f), join(doc, f));
  for (const f of files(join(root, 'examples'))) copy(join(root, 'examples', f), join(doc, 'examples', f));
}

/** Modes as Debian policy has them: directories 0755, programs 0755, everything else 0644. */
function normaliseModes(pkg: string): void {
  const exec = new Set(['usr/bin/qos', ...files(join(pkg, INSTALL_PREFIX.slice(1), 'agent/build/bench')).map((f) => join(INSTALL_PREFIX.slice(1), 'agent/build/bench', f))]);
  const walk = (rel: string) => {
    for (const e of readdirSync(join(pkg, rel), { withFileTypes: true })) {
      const r = join(rel, e.name);
      if (e.isSymbolicLink()) continue;
      chmodSync(join(pkg, r), e.isDirectory() || exec.has(r) ? 0o755 : 0o644);
      if (e.isDirectory()) walk(r);
    }
  };
  chmodSync(pkg, 0o755);
  walk('');
}

/** What dpkg-shlibdeps says the ELF files need (libc6 with its version). */
function sharedLibraryDepends(stage: string, pkg: string): string[] {
  // (a BPF object is ELF too, for the kernel: no shared library to depend on)
  const elf = files(pkg).filter((f) => !f.endsWith('.bpf.o') && readFileSync(join(pkg, f)).subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])));
  writeFileSync(join(stage, 'debian/control'), `Source: ${PACKAGE_NAME}\n\nPackage: ${PACKAGE_NAME}\nArchitecture: any\n`);
  const out = tool(['dpkg-shlibdeps', '-O', ...elf.map((f) => join(relative(stage, pkg), f))], 'dpkg-dev', { cwd: stage });
  const m = /^shlibs:Depends=(.*)$/m.exec(out);
  if (!m) throw new QosError('QOS_ERR_ENVIRONMENT', `dpkg-shlibdeps printed no shlibs:Depends: ${out.trim()}`);
  return m[1]!.split(',').map((s) => s.trim()).filter(Boolean);
}

function installedSizeKiB(pkg: string): number {
  let bytes = 0;
  for (const f of files(pkg)) bytes += Math.ceil(statSync(join(pkg, f)).size / 1024) * 1024;
  return Math.ceil(bytes / 1024);
}

function controlText(o: { version: string; arch: string; depends: string[]; size: number }): string {
  return `Package: ${PACKAGE_NAME}
Version: ${o.version}
Architecture: ${o.arch}
Maintainer: qosd developers <qosd@localhost>
Installed-Size: ${o.size}
Depends: ${o.depends.join(', ')}
Recommends: ${RECOMMENDS.join(', ')}
Suggests: ${SUGGESTS.join(', ')}
Section: net
Priority: optional
Description: quality of service for unmodified applications
 qosd marks the sockets of programs that know nothing about quality of
 service (DS field, priority) or refuses them, by one policy per machine.
 An LD_PRELOAD agent inside each program asks the policy daemon before a
 socket's first packet; the daemon decides by who the program is (from the
 kernel) and what it does, and keeps nftables rules for what the kernel can
 mark by itself.
 .
 The package installs the qos command, the daemon as the systemd service
 qosd.service (hardened, reload with SIGHUP), /etc/qosd/policy.yaml from
 the built-in policy if absent, and the agent library; qos install
 --preload puts the agent in /etc/ld.so.preload for every program.
`;
}

/** Builds the package into o.outDir and returns its path. */
export function buildDeb(o: DebOptions): string {
  const root = o.root ?? PACKAGE_ROOT;
  for (const f of ['dist/cli/main.js', 'agent/build/libqosagent.so', 'native/build/peercred.node', 'native/build/rsvpio']) {
    if (!existsSync(join(root, f))) throw new QosError('QOS_ERR_ENVIRONMENT', `${join(root, f)} is missing: build first (npm run build)`);
  }
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const arch = debArch();
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  const date = o.date ?? (Number.isFinite(epoch) && epoch > 0 ? new Date(epoch * 1000) : new Date()).toISOString().slice(0, 10);
  const stage = mkdtempSync(join(tmpdir(), 'qosd-deb-'));
  try {
    const pkg = join(stage, 'debian', PACKAGE_NAME);
    o.progress?.(`staging ${root} in ${pkg}`);
    stageFiles(root, pkg, date);
    normaliseModes(pkg);
    const depends = [...DEPENDS, ...sharedLibraryDepends(stage, pkg)];
    const control = join(pkg, 'DEBIAN');
    mkdirSync(control, { mode: 0o755 });
    const sums = files(pkg).filter((f) => !f.startsWith('DEBIAN/')).map((f) => `${createHash('md5').update(readFileSync(join(pkg, f))).digest('hex')}  ${f}`);
    writeFileSync(join(control, 'md5sums'), sums.join('\n') + '\n', { mode: 0o644 });
    writeFileSync(join(control, 'control'), controlText({ version, arch, depends, size: installedSizeKiB(pkg) }), { mode: 0o644 });
    for (const s of ['postinst', 'prerm', 'postrm']) {
      copyFileSync(join(root, 'src/service/debian', s), join(control, s));
      chmodSync(join(control, s), 0o755);
    }
    mkdirSync(o.outDir, { recursive: true });
    const out = join(o.outDir, debFileName(version, arch));
    o.progress?.(`dpkg-deb --build → ${out}`);
    // gzip -9: 3.8 MB against xz's 2.6 MB (level 6) or 3.1 MB (level 2), in 1.4 s against 10 s
    // or 3.3 s on an idle machine here: the package test builds it every run
    tool(['dpkg-deb', '--root-owner-group', '-Zgzip', '-z9', '--build', pkg, out], 'dpkg');
    if (!lstatSync(out).isFile()) throw new QosError('QOS_ERR_INTERNAL', `dpkg-deb wrote no ${out}`);
    return out;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

// npm run deb: node dist/service/deb.js [OUT_DIR]
if (process.argv[1] && process.argv[1] === new URL(import.meta.url).pathname) {
  try {
    const out = buildDeb({ outDir: process.argv[2] ?? process.cwd(), progress: (m) => process.stderr.write(`${m}\n`) });
    process.stdout.write(`${out}\n`);
  } catch (e) {
    process.stderr.write(`deb: ${e instanceof QosError ? e.message : (e as Error).stack}\n`);
    process.exitCode = exitCodeFor(e);
  }
}
