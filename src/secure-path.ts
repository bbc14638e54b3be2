/* Files the daemon trusts (its policy, the policy's script, the kernel rule store) and how
 * they are read: the daemon runs as root on what it reads, so it reads a file only if no user
 * but root or its own can have written it, replaced it, or pointed its name elsewhere
 * (issue 15). `qos policy check` reads any file, with the same size bound.
 *
 * Safe means, as OpenSSH's StrictModes and sudo judge it: the file is a regular file, not a
 * symbolic link, owned by root or the daemon's user, writable by no one else (mode & 022 = 0);
 * its directory likewise owned and writable by no one else (sticky or not: in a sticky
 * directory another user can still create names, e.g. the file before it exists); every
 * directory above (on the path as given and on the resolved one) owned by root or us and not
 * writable by others unless sticky (/tmp: a sticky directory's entries are renamed or removed
 * only by their owner). A link on the way is followed only if root or we own it. */

import { constants, lstatSync, readFileSync, realpathSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { idEntries } from './id-names.js';
import { QosError } from './errors.js';

/** Whether a file of this owner may be trusted: root's or the daemon's own user's. */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.();
}

function owner(uid: number): string {
  let name: string | undefined;
  try { name = idEntries(readFileSync('/etc/passwd', 'utf8')).find(([, id]) => id === uid)?.[0]; } catch { /* no names */ }
  return `uid ${uid}${name ? ` (${name})` : ''}`;
}

const octal = (st: Stats) => (st.mode & 0o7777).toString(8).padStart(4, '0');
const writers = (st: Stats) => ['group', 'others'].filter((_, i) => st.mode & (i ? 0o002 : 0o020)).join(' and ');

/** /a/b/c → ['/', '/a', '/a/b', '/a/b/c'] */
function prefixes(abs: string): string[] {
  const parts = abs.split(sep).filter(Boolean);
  return ['/', ...parts.map((_, i) => '/' + parts.slice(0, i + 1).join('/'))];
}

/** Why `dir` (the directory a trusted file is in, or will be made in) is not safe, or null. */
export function directoryProblem(dir: string): string | null {
  let at = resolve(dir);
  // a directory not made yet (the rule store's, made at the first save): where it will be made
  for (;;) {
    try { lstatSync(at); break; } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || at === '/') throw e;
      at = dirname(at);
    }
  }
  for (const chain of new Set([at, realpathSync(at)])) {
    const ps = prefixes(chain);
    for (const [i, p] of ps.entries()) {
      const st = lstatSync(p);
      const last = i === ps.length - 1;
      if (!trustedOwner(st.uid)) return `${p} belongs to ${owner(st.uid)}`;
      if (st.isSymbolicLink()) continue; // ours or root's; where it leads is checked on the resolved path
      if (!st.isDirectory()) return `${p} is not a directory`;
      if (st.mode & 0o022 && (last || !(st.mode & 0o1000))) return `${p} is writable by ${writers(st)} (mode ${octal(st)})${last ? '' : ' and not sticky'}`;
    }
  }
  return null;
}

function unsafe(what: string, path: string, why: string): QosError {
  const uid = process.geteuid?.() ?? 0;
  const who = uid ? `root or uid ${uid} (the daemon's)` : 'root';
  return new QosError('QOS_ERR_UNSAFE_PATH', `refusing ${what} ${path}: another user could change or replace it`,
    [{ file: path, message: `${why}; the daemon acts on this file, so it reads it only where no user but ${who} can write (chown root, chmod go-w)` }]);
}

/** Throws QOS_ERR_UNSAFE_PATH naming the path and why, unless `dir` is safe for a file the
 * daemon trusts (`what` names the file in the message: "the policy", "the kernel rule store"). */
export function checkDirectory(dir: string, what: string, file = dir): void {
  const why = directoryProblem(dir);
  if (why) throw unsafe(what, file, why);
}

/** Why a file the daemon trusts is not safe, from its lstat or fstat, or null. */
function fileProblem(path: string, st: Stats): string | null {
  if (st.isSymbolicLink()) return `${path} is a symbolic link`;
  if (!st.isFile()) return `${path} is not a regular file`;
  if (!trustedOwner(st.uid)) return `${path} belongs to ${owner(st.uid)}`;
  if (st.mode & 0o022) return `${path} is writable by ${writers(st)} (mode ${octal(st)})`;
  return null;
}

/** Throws QOS_ERR_UNSAFE_PATH unless `path` (which need not exist yet) is safe for a file the
 * daemon trusts: its directory, and the file if it is there. Reading it with readTextFile
 * checks again, on what is opened. */
export function checkTrustedPath(path: string, what: string): void {
  checkDirectory(dirname(path), what, path);
  let st: Stats;
  try { st = lstatSync(path); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const why = fileProblem(path, st);
  if (why) throw unsafe(what, path, why);
}

export interface ReadOptions {
  /** at most this many bytes are read; a larger file throws tooBig(its size), or for a pipe
   * or device tooBig(the bytes read, true) */
  maxBytes: number;
  tooBig: (bytes: number, atLeast?: boolean) => Error;
  /** set if the daemon must trust the file: names it in the message (see checkDirectory) */
  trustedAs?: string;
}

/** Reads a text file of at most maxBytes; with trustedAs, only a safe one (see the header),
 * opened without following a link so that what is checked is what is read. Errors of the
 * file system (ENOENT...) are thrown as they are. */
export async function readTextFile(path: string, o: ReadOptions): Promise<string> {
  if (o.trustedAs) checkDirectory(dirname(path), o.trustedAs, path);
  let fh;
  try {
    // O_NONBLOCK: a FIFO planted as the file must not hang the daemon in open()
    fh = await open(path, o.trustedAs ? constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK : constants.O_RDONLY);
  } catch (e) {
    if (o.trustedAs && (e as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(o.trustedAs, path, `${path} is a symbolic link`);
    throw e;
  }
  try {
    const st = await fh.stat();
    const why = o.trustedAs ? fileProblem(path, st) : null;
    if (why) throw unsafe(o.trustedAs!, path, why);
    if (st.isFile() && st.size > o.maxBytes) throw o.tooBig(st.size);
    // until the end, or one byte past the limit: a file that grows, a device or a pipe is
    // caught too
    const chunks: Buffer[] = [];
    let n = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1 << 20, o.maxBytes + 1 - n));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      n += bytesRead;
      if (n > o.maxBytes) throw o.tooBig(n, true);
    }
    return Buffer.concat(chunks, n).toString('utf8');
  } finally {
    await fh.close();
  }
}
