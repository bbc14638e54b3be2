/* `qos install` and `qos uninstall`: qosd as a system service without a package manager
 * (docs/install.md). Install plans every change from what is on disk and refuses, before
 * changing anything, if one of them cannot be made safely; then it applies them and records
 * what it did in /var/lib/qosd/install.json, which is what uninstall undoes, exactly. Files
 * are replaced whole (atomic-file.ts), never through a link, and only in directories that no
 * user but root can change. `root` stands for / (tests and images write into a directory). */

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, realpathSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { QosError } from '../errors.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { directoryProblem } from '../secure-path.js';
import { addPreload, checkPreloadable, PRELOAD_FILE, preloadNames, removePreload } from './preload.js';
import { HIDDEN_FROM_SERVICE, TMPFILES_NAME, TMPFILES_TEXT, UNIT_NAME, unitText } from './unit.js';

export const RECORD_FILE = '/var/lib/qosd/install.json';
export const POLICY_FILE = '/etc/qosd/policy.yaml';
/** Where the agent library is in a qosd installation (paths.ts AGENT_LIBRARY). */
export const AGENT_IN_PREFIX = 'agent/build/libqosagent.so';
const CLI_IN_PREFIX = 'dist/cli/main.js';
/** The administrator's unit and tmpfiles directories, and the package manager's. */
const UNIT_DIR = '/etc/systemd/system';
const VENDOR_UNIT_DIRS = ['/lib/systemd/system', '/usr/lib/systemd/system'];
const TMPFILES_DIR = '/etc/tmpfiles.d';
const VENDOR_TMPFILES_DIRS = ['/usr/lib/tmpfiles.d', '/lib/tmpfiles.d'];
/** Files qos install reads and replaces are small; anything larger is not what it expects. */
const MAX_BYTES = 1 << 20;

type Item = 'unit' | 'tmpfiles' | 'policy' | 'preload' | 'record';
type Result = 'written' | 'updated' | 'unchanged' | 'created' | 'kept' | 'skipped' | 'added' | 'removed' | 'absent';

/** One thing install or uninstall did (or, in a dry run, would do) and to which file. */
export interface Step { item: Item; path: string; result: Result; note?: string }

/** What `--json` prints (with ok: true; a refusal prints { ok: false, error }). */
export interface Report {
  action: 'install' | 'uninstall';
  root: string;
  prefix: string | null;
  dry_run: boolean;
  steps: Step[];
  /** what is left to the administrator */
  next: string[];
}

/** install.json: every file and directory qos install made, and its line in ld.so.preload. */
interface InstallRecord {
  qosd_install: 1;
  /** the qosd installation the unit runs and the preload line names */
  prefix: string;
  files: { item: 'unit' | 'tmpfiles' | 'policy'; path: string; sha256: string }[];
  preload: { path: string; line: string; created_file: boolean; added_newline: boolean } | null;
  /** directories it made, removed by uninstall if empty */
  dirs: string[];
}

/** A change to apply; paths are under root. */
type Op =
  | { op: 'mkdir'; path: string }
  | { op: 'write'; path: string; data: Buffer; mode: number }
  | { op: 'unlink'; path: string }
  | { op: 'rmdir'; path: string };

export interface InstallOptions {
  root: string;
  /** the qosd installation to run: holds dist/cli/main.js and agent/build/libqosagent.so */
  prefix: string;
  /** the Node.js the unit runs it with */
  node: string;
  preload: boolean;
  dryRun: boolean;
}

export interface UninstallOptions {
  root: string;
  /** undo only an install of this qosd installation (the Debian package's prerm) */
  prefix?: string;
  dryRun: boolean;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A system path under root. */
function under(root: string, p: string): string {
  return root === '/' ? p : join(root, p);
}

type Found = { kind: 'absent' } | { kind: 'file'; data: Buffer; mode: number } | { kind: 'other'; what: string };

/** What is at path, read without following a link (a link is reported, not read). */
function look(path: string): Found {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'absent' };
    if (code === 'ELOOP') return { kind: 'other', what: 'a symbolic link' };
    throw new QosError('QOS_ERR_ENVIRONMENT', `cannot read ${path}: ${(e as Error).message}`, [], { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { kind: 'other', what: st.isDirectory() ? 'a directory' : 'not a regular file' };
    if (st.size > MAX_BYTES) throw new QosError('QOS_ERR_CONFLICT', `${path} has ${st.size} bytes: more than qos install expects there (${MAX_BYTES}); left as it is`);
    const data = Buffer.alloc(st.size);
    for (let off = 0; off < data.length;) {
      const n = readSync(fd, data, off, data.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return { kind: 'file', data, mode: st.mode & 0o7777 };
  } finally {
    closeSync(fd);
  }
}

function checkRootDir(root: string): string {
  const abs = resolve(root);
  let st;
  try { st = statSync(abs); } catch { throw new QosError('QOS_ERR_USAGE', `--root ${root}: no such directory`); }
  if (!st.isDirectory()) throw new QosError('QOS_ERR_USAGE', `--root ${root} is not a directory`);
  if (abs === '/' && process.geteuid?.() !== 0) {
    throw new QosError('QOS_ERR_PRIVILEGE', 'this changes the system (/etc, /var/lib/qosd): run it as root, or give --root DIR to write into DIR as if it were /');
  }
  return abs;
}

/** The record of an earlier install, or null; throws if the file is not one. */
function readRecord(root: string): InstallRecord | null {
  const path = under(root, RECORD_FILE);
  const f = look(path);
  if (f.kind === 'absent') return null;
  if (f.kind === 'other') throw new QosError('QOS_ERR_UNSAFE_PATH', `${path} is ${f.what}, not the record qos install writes; left as it is`);
  let r: InstallRecord;
  try { r = JSON.parse(f.data.toString('utf8')) as InstallRecord; } catch (e) {
    throw new QosError('QOS_ERR_CONFLICT', `${path} is not the record qos install writes (${(e as Error).message}); move it away to start afresh`);
  }
  const ok = r && r.qosd_install === 1 && typeof r.prefix === 'string' && Array.isArray(r.files) && Array.isArray(r.dirs)
    && r.files.every((x) => typeof x?.path === 'string' && isAbsolute(x.path) && typeof x.sha256 === 'string' && ['unit', 'tmpfiles', 'policy'].includes(x.item))
    && r.dirs.every((d) => typeof d === 'string' && isAbsolute(d))
    && (r.preload === null || (typeof r.preload?.line === 'string' && r.preload.path === PRELOAD_FILE && typeof r.preload.created_file === 'boolean' && typeof r.preload.added_newline === 'boolean'));
  if (!ok) throw new QosError('QOS_ERR_CONFLICT', `${path} is not the record qos install writes; move it away to start afresh`);
  return r;
}

/** Throws unless no user but root (or us) can change the directory a file goes into. */
function checkWritable(root: string, file: string): void {
  const why = directoryProblem(dirname(under(root, file)));
  if (why) throw new QosError('QOS_ERR_UNSAFE_PATH', `refusing to write ${under(root, file)}: ${why}; qos install writes system files only where no other user can change them`);
}

/** The directories (system paths) to make so that file's directory exists, shallowest first. */
function missingDirs(root: string, file: string): string[] {
  const out: string[] = [];
  for (let d = dirname(file); d !== '/'; d = dirname(d)) {
    try { lstatSync(under(root, d)); break; } catch { out.unshift(d); }
  }
  return out;
}

function notHidden(path: string, what: string): void {
  const h = HIDDEN_FROM_SERVICE.find((d) => path === d || path.startsWith(`${d}/`));
  if (h) throw new QosError('QOS_ERR_USAGE', `${what} ${path} is under ${h}, which qosd.service hides from the daemon (ProtectHome=, PrivateTmp=): install qosd elsewhere (npm install -g, or the Debian package)`);
}

/** Plans `qos install`: the report of what it does and the changes that do it. Reads only. */
export function planInstall(o: InstallOptions): { report: Report; ops: Op[] } {
  const root = checkRootDir(o.root);
  let prefix: string;
  try { prefix = realpathSync(o.prefix); statSync(join(prefix, CLI_IN_PREFIX)); } catch {
    throw new QosError('QOS_ERR_USAGE', `--prefix ${o.prefix} is not a qosd installation (no ${CLI_IN_PREFIX} in it)`);
  }
  const old = readRecord(root);
  if (old && old.prefix !== prefix) {
    throw new QosError('QOS_ERR_CONFLICT', `qos install was run for the qosd in ${old.prefix} (${under(root, RECORD_FILE)}); run qos uninstall first to install this one (${prefix})`);
  }
  const rec: InstallRecord = old ? structuredClone(old) : { qosd_install: 1, prefix, files: [], preload: null, dirs: [] };
  const steps: Step[] = [];
  const writes: { path: string; data: Buffer; mode: number }[] = [];
  const dirs = new Set<string>();
  const write = (path: string, data: Buffer, mode: number) => {
    checkWritable(root, path);
    for (const d of missingDirs(root, path)) dirs.add(d);
    writes.push({ path, data, mode });
  };
  const recordFile = (item: 'unit' | 'tmpfiles' | 'policy', path: string, data: Buffer) => {
    const entry = { item, path, sha256: sha256(data) };
    const i = rec.files.findIndex((f) => f.path === path);
    if (i < 0) rec.files.push(entry);
    else rec.files[i] = entry;
  };

  const services = [
    { item: 'unit' as const, dir: UNIT_DIR, vendor: VENDOR_UNIT_DIRS, name: UNIT_NAME, text: () => unitFor(prefix, o.node) },
    { item: 'tmpfiles' as const, dir: TMPFILES_DIR, vendor: VENDOR_TMPFILES_DIRS, name: TMPFILES_NAME, text: () => TMPFILES_TEXT },
  ];
  for (const s of services) {
    const path = join(s.dir, s.name);
    const mine = rec.files.find((f) => f.path === path);
    const vendor = s.vendor.map((d) => join(d, s.name)).find((p) => look(under(root, p)).kind !== 'absent');
    if (vendor && !mine) {
      steps.push({ item: s.item, path: vendor, result: 'skipped', note: `a package installed it; qos install does not shadow it with ${path}` });
      continue;
    }
    const data = Buffer.from(s.text());
    const cur = look(under(root, path));
    if (cur.kind === 'other') throw new QosError('QOS_ERR_UNSAFE_PATH', `${under(root, path)} is ${cur.what}: qos install writes only a regular file there, never through a link; left as it is`);
    if (cur.kind === 'absent') {
      write(path, data, 0o644);
      recordFile(s.item, path, data);
      steps.push({ item: s.item, path, result: 'written' });
    } else if (cur.data.equals(data)) {
      recordFile(s.item, path, data);
      steps.push({ item: s.item, path, result: 'unchanged' });
    } else if (mine && sha256(cur.data) === mine.sha256) {
      write(path, data, 0o644);
      recordFile(s.item, path, data);
      steps.push({ item: s.item, path, result: 'updated', note: 'qos install had written an older one' });
    } else if (mine) {
      steps.push({ item: s.item, path, result: 'kept', note: 'edited since qos install wrote it: left as it is (remove it and install again for the new one)' });
    } else {
      throw new QosError('QOS_ERR_CONFLICT', `${under(root, path)} is already there and qos install did not write it: left as it is; remove it or rename it to install qosd's`);
    }
  }

  const policy = look(under(root, POLICY_FILE));
  const policyRec = rec.files.find((f) => f.path === POLICY_FILE);
  if (policy.kind === 'absent') {
    const data = Buffer.from(DEFAULT_POLICY_TEXT);
    write(POLICY_FILE, data, 0o644);
    recordFile('policy', POLICY_FILE, data);
    steps.push({ item: 'policy', path: POLICY_FILE, result: 'created', note: 'the built-in policy, to edit' });
  } else if (policy.kind === 'file' && policyRec && sha256(policy.data) === policyRec.sha256) {
    steps.push({ item: 'policy', path: POLICY_FILE, result: 'unchanged' });
  } else {
    const what = policy.kind === 'other' ? `; it is ${policy.what}, which the daemon refuses` : '';
    steps.push({ item: 'policy', path: POLICY_FILE, result: 'kept', note: `there already: never overwritten${what}` });
  }

  if (o.preload) {
    const line = checkPreloadable(join(prefix, AGENT_IN_PREFIX));
    const cur = look(under(root, PRELOAD_FILE));
    if (cur.kind === 'other') throw new QosError('QOS_ERR_UNSAFE_PATH', `${under(root, PRELOAD_FILE)} is ${cur.what}: qos install edits only a regular file, never through a link; left as it is`);
    const text = cur.kind === 'file' ? cur.data.toString('latin1') : '';
    const added = addPreload(text, line);
    if (added.changed) {
      write(PRELOAD_FILE, Buffer.from(added.text, 'latin1'), cur.kind === 'file' ? cur.mode : 0o644);
      rec.preload = { path: PRELOAD_FILE, line, created_file: cur.kind === 'absent' || (rec.preload?.created_file ?? false), added_newline: added.addedNewline };
      steps.push({ item: 'preload', path: PRELOAD_FILE, result: 'added', note: line });
    } else if (rec.preload?.line === line) {
      steps.push({ item: 'preload', path: PRELOAD_FILE, result: 'unchanged', note: line });
    } else {
      steps.push({ item: 'preload', path: PRELOAD_FILE, result: 'kept', note: `names ${line} already, not by qos install: qos uninstall will leave it` });
    }
  } else if (rec.preload) {
    steps.push({ item: 'preload', path: PRELOAD_FILE, result: 'kept', note: `${rec.preload.line}, added by an earlier qos install --preload` });
  }

  for (const d of missingDirs(root, RECORD_FILE)) dirs.add(d);
  rec.dirs = [...new Set([...rec.dirs, ...dirs])];
  const recData = Buffer.from(JSON.stringify(rec, null, 2) + '\n');
  const curRec = look(under(root, RECORD_FILE));
  const recordChanged = !(curRec.kind === 'file' && curRec.data.equals(recData));
  if (recordChanged) checkWritable(root, RECORD_FILE);
  steps.push({ item: 'record', path: RECORD_FILE, result: recordChanged ? 'written' : 'unchanged', note: 'what qos uninstall undoes' });

  // the record first: a failure after it leaves nothing unrecorded (uninstall skips what is
  // absent); ld.so.preload last, once everything else is in place
  const ops: Op[] = [
    ...[...dirs].sort((a, b) => a.length - b.length).map((d) => ({ op: 'mkdir' as const, path: under(root, d) })),
    ...(recordChanged ? [{ op: 'write' as const, path: under(root, RECORD_FILE), data: recData, mode: 0o644 }] : []),
    ...writes.sort((a, b) => Number(a.path === PRELOAD_FILE) - Number(b.path === PRELOAD_FILE)).map((w) => ({ op: 'write' as const, ...w, path: under(root, w.path) })),
  ];
  return { report: { action: 'install', root, prefix, dry_run: o.dryRun, steps, next: installNext(root, steps) }, ops };
}

/** The unit `qos install` writes: this Node.js running this installation's CLI. */
function unitFor(prefix: string, node: string): string {
  if (!isAbsolute(node)) throw new QosError('QOS_ERR_USAGE', `the unit needs Node.js by an absolute path, not ${node}`);
  notHidden(prefix, 'qosd');
  notHidden(node, 'Node.js');
  return unitText({ execStart: [node, join(prefix, CLI_IN_PREFIX), 'daemon'], documentation: [`file://${join(prefix, 'docs/install.md')}`] });
}

function systemdRuns(root: string): boolean {
  if (root !== '/') return false;
  try { return lstatSync('/run/systemd/system').isDirectory(); } catch { return false; }
}

function installNext(root: string, steps: Step[]): string[] {
  const next: string[] = [];
  const unit = steps.find((s) => s.item === 'unit');
  if (root !== '/') next.push(`the files are under ${root}, as if it were /`);
  else if (unit && ['written', 'updated'].includes(unit.result)) {
    next.push(systemdRuns(root)
      ? 'start the daemon at boot and now: systemctl daemon-reload && systemctl enable --now qosd'
      : 'systemd is not running here (no /run/systemd/system): run qos daemon yourself, or on a machine booted with systemd: systemctl daemon-reload && systemctl enable --now qosd');
  }
  if (steps.some((s) => s.item === 'preload' && s.result === 'added')) next.push('programs started from now on load the agent (running ones do not); qos uninstall removes the line');
  return next;
}

/** Plans `qos uninstall`: undoes what the record says qos install did. Reads only. */
export function planUninstall(o: UninstallOptions): { report: Report; ops: Op[] } {
  const root = checkRootDir(o.root);
  const rec = readRecord(root);
  const report: Report = { action: 'uninstall', root, prefix: rec?.prefix ?? null, dry_run: o.dryRun, steps: [], next: [] };
  if (!rec) {
    report.next.push(`nothing to undo: qos install has not been run here (no ${under(root, RECORD_FILE)})`);
    return { report, ops: [] };
  }
  if (o.prefix !== undefined && resolvePrefix(o.prefix) !== rec.prefix) {
    report.next.push(`nothing to undo for ${o.prefix}: qos install was run for the qosd in ${rec.prefix}`);
    return { report, ops: [] };
  }
  const ops: Op[] = [];
  for (const f of rec.files) {
    const cur = look(under(root, f.path));
    if (cur.kind === 'absent') report.steps.push({ item: f.item, path: f.path, result: 'absent', note: 'gone already' });
    else if (cur.kind === 'other') report.steps.push({ item: f.item, path: f.path, result: 'kept', note: `now ${cur.what}, not what qos install wrote: left as it is` });
    else if (f.item === 'policy' && sha256(cur.data) !== f.sha256) report.steps.push({ item: f.item, path: f.path, result: 'kept', note: 'edited since qos install created it: yours, left as it is' });
    else {
      ops.push({ op: 'unlink', path: under(root, f.path) });
      report.steps.push({ item: f.item, path: f.path, result: 'removed' });
    }
  }
  if (rec.preload) {
    const p = rec.preload;
    const cur = look(under(root, p.path));
    if (cur.kind === 'other') throw new QosError('QOS_ERR_UNSAFE_PATH', `${under(root, p.path)} is ${cur.what}: qos uninstall edits only a regular file, never through a link; nothing was changed`);
    if (cur.kind === 'absent') report.steps.push({ item: 'preload', path: p.path, result: 'absent', note: 'the file is gone already' });
    else {
      const r = removePreload(cur.data.toString('latin1'), p.line, p.added_newline);
      const still = preloadNames(r.text).includes(p.line) ? `; ${p.line} is still named on a line qos install did not write: left` : '';
      if (!r.removed) report.steps.push({ item: 'preload', path: p.path, result: 'absent', note: `the line is gone already${still}` });
      else if (p.created_file && r.text === '') {
        ops.push({ op: 'unlink', path: under(root, p.path) });
        report.steps.push({ item: 'preload', path: p.path, result: 'removed', note: `${p.line}, and the file: qos install had created it` });
      } else {
        checkWritable(root, p.path);
        ops.push({ op: 'write', path: under(root, p.path), data: Buffer.from(r.text, 'latin1'), mode: cur.mode });
        report.steps.push({ item: 'preload', path: p.path, result: 'removed', note: `${p.line}${still}` });
      }
    }
  }
  ops.push({ op: 'unlink', path: under(root, RECORD_FILE) });
  report.steps.push({ item: 'record', path: RECORD_FILE, result: 'removed' });
  for (const d of [...rec.dirs].sort((a, b) => b.length - a.length)) ops.push({ op: 'rmdir', path: under(root, d) });
  if (report.steps.some((s) => s.item === 'unit' && s.result === 'removed') && root === '/') {
    report.next.push('qos uninstall does not stop a running daemon: if it ran as a service, systemctl stop qosd; then systemctl daemon-reload');
  }
  return { report, ops };
}

function resolvePrefix(p: string): string {
  try { return realpathSync(p); } catch { return resolve(p); }
}

/** Applies planned changes in order. A directory is removed only if empty (others' files in
 * it stay, and so does it). */
export function apply(ops: Op[]): void {
  for (const o of ops) {
    if (o.op === 'mkdir') {
      mkdirSync(o.path);
      chmodSync(o.path, 0o755); // whatever the umask: the daemon and every user's programs look in
    }
    else if (o.op === 'write') writeFileAtomic(o.path, o.data, { mode: o.mode });
    else if (o.op === 'unlink') {
      try { unlinkSync(o.path); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
    } else {
      try { rmdirSync(o.path); } catch (e) { if (!['ENOENT', 'ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e; }
    }
  }
}

/** The report for a person: one line per step, then what is left to do. */
export function formatReport(r: Report): string {
  const head = r.dry_run ? [`qos ${r.action} --dry-run: nothing was changed; it would do:`] : [];
  const lines = r.steps.map((s) => `${s.item.padEnd(9)} ${r.root === '/' ? s.path : join(r.root, s.path)}: ${s.result}${s.note ? ` (${s.note})` : ''}`);
  return [...head, ...lines, ...r.next.map((n) => `next: ${n}`)].join('\n');
}
