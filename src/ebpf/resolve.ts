/* The files a policy's exe patterns name, as the kernel identifies an executable (device and
 * inode): the eBPF programs match files, the agent matches the path /proc/PID/exe shows (the
 * real path, links resolved). So a pattern is tested against real paths, as the agent tests it:
 * - a literal path: that file, if it is a regular file and not a symbolic link (the agent
 *   would see the link's target, and so must the rule: the status says which file to name);
 * - a glob with a directory before its first wildcard (`/opt/zoom/*`): the files under that
 *   directory, to a bounded depth and count;
 * - a glob or /regex/ without one (`* /zoom`): the files in the usual program directories and
 *   the executables of the processes running now.
 * A file replaced (a package upgrade renames a new file over it) is a new inode: the daemon
 * resolves again every rescan interval and on every policy reload. */

import { lstatSync, readdirSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { compilePattern, isLiteral } from '../policy/glob.js';
import { kernelDev, type FileId } from './encode.js';

/** Where a pattern without a directory looks (besides the running processes' executables). */
export const PROGRAM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/libexec', '/usr/lib/qosd'];
/** How far a directory pattern is walked. */
export const WALK_DEPTH = 4, WALK_FILES = 20_000;

export interface ResolvedFile extends FileId { path: string }
export interface Resolution { files: ResolvedFile[]; notes: string[] }

/** The files each pattern names now. */
export function resolvePatterns(patterns: readonly string[]): Map<string, Resolution> {
  const out = new Map<string, Resolution>();
  let everywhere: ResolvedFile[] | null = null;
  const walked = new Map<string, ResolvedFile[]>();
  for (const p of patterns) {
    if (out.has(p)) continue;
    if (isLiteral(p)) { out.set(p, literal(p)); continue; }
    const re = compilePattern(p);
    const dir = fixedDir(p);
    let candidates: ResolvedFile[];
    if (dir) {
      if (!walked.has(dir)) walked.set(dir, walk(dir));
      candidates = walked.get(dir)!;
    } else candidates = everywhere ??= [...PROGRAM_DIRS.flatMap((d) => walk(d, 1)), ...runningExes()];
    const seen = new Set<string>();
    const files = candidates.filter((f) => re.test(f.path) && !seen.has(`${f.dev}:${f.ino}`) && seen.add(`${f.dev}:${f.ino}`));
    out.set(p, { files, notes: files.length ? [] : [`no executable file matches ${p} now`] });
  }
  return out;
}

function fileId(path: string, st: BigIntStats): ResolvedFile {
  return { path, dev: kernelDev(st.dev), ino: st.ino };
}

function literal(p: string): Resolution {
  try {
    const l = lstatSync(p, { bigint: true });
    if (l.isSymbolicLink()) {
      let target = '';
      try { target = readlinkSync(p); } catch { /* raced */ }
      return { files: [], notes: [`${p} is a symbolic link${target ? ` to ${target}` : ''}: a process shows (and the rule must name) the file it leads to`] };
    }
    if (!l.isFile()) return { files: [], notes: [`${p} is not a regular file`] };
    return { files: [fileId(p, l)], notes: [] };
  } catch (e) {
    return { files: [], notes: [`${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`] };
  }
}

/** The directory before a glob's first wildcard ('/opt/zoom' of '/opt/zoom/*'), or null when
 * there is none (a pattern starting with a wildcard, or a /regex/). */
function fixedDir(p: string): string | null {
  if (/^\/.*\/[imsu]*$/s.test(p)) return null;
  const first = p.search(/[*?[]/);
  const slash = p.lastIndexOf('/', first);
  if (slash <= 0) return null;
  return p.slice(0, slash);
}

/** Regular files with an execute bit under dir, not following links, to depth and WALK_FILES. */
function walk(dir: string, depth = WALK_DEPTH): ResolvedFile[] {
  const out: ResolvedFile[] = [];
  const visit = (d: string, left: number): void => {
    let names: string[];
    try { names = readdirSync(d); } catch { return; }
    for (const n of names) {
      if (out.length >= WALK_FILES) return;
      const path = join(d, n);
      let st: BigIntStats;
      try { st = lstatSync(path, { bigint: true }); } catch { continue; }
      if (st.isFile() && (st.mode & 0o111n) !== 0n) out.push(fileId(path, st));
      else if (st.isDirectory() && left > 1) visit(path, left - 1);
    }
  };
  visit(dir, depth);
  return out;
}

/** The executables of the processes running now (their real paths). */
function runningExes(): ResolvedFile[] {
  const out: ResolvedFile[] = [];
  let pids: string[];
  try { pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)); } catch { return out; }
  for (const pid of pids) {
    try {
      const path = readlinkSync(`/proc/${pid}/exe`);
      if (path.endsWith(' (deleted)')) continue;
      out.push(fileId(path, statSync(`/proc/${pid}/exe`, { bigint: true })));
    } catch { /* gone, or a kernel thread */ }
  }
  return out;
}
