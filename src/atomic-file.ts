/* Writing a file so that a reader (or a crash) sees the old content or the new, never half:
 * a temporary file beside it, fsync, rename over, fsync the directory.
 *
 * Another user who can write in the directory must not be able to turn the write against us
 * (issue 15): the temporary file has an unpredictable name and is created new, never opened
 * through a link (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 until it is complete); and a symbolic
 * link at the target itself is refused, not written through and not silently replaced. In a
 * directory where others can write, they can still delete or swap our file (the directory is
 * theirs too); that is why the daemon keeps its files only in directories no one else can
 * write (secure-path.ts). */

import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, fsyncSync, lstatSync, openSync, readdirSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { QosError } from './errors.js';

export interface WriteOptions {
  /** permissions of the file once in place (default: the replaced file's, or 0644) */
  mode?: number;
  /** give the new file the replaced file's owner and group (default: the writer's) */
  keepOwner?: boolean;
}

export function writeFileAtomic(path: string, data: string | Uint8Array, o: WriteOptions = {}): void {
  stageFile(path, data, o).commit();
}

/** A file written beside `path` and synced, not yet in place: `commit` renames it over
 * `path`, `discard` removes it. Lets slow work (an nft transaction) run while it is written. */
export interface StagedFile { commit(): void; discard(): void }

/** The temporary names stageFile uses beside `path` (16 random base64url characters), and the
 * ones it used before (the writer's pid): what removeStaleTemps may remove. */
function tempPattern(path: string): RegExp {
  const name = basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.${name}\\.(?:[0-9]+|[A-Za-z0-9_-]{16})\\.tmp$`);
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(12).toString('base64url')}.tmp`);
}

/** The mode of the regular file at `path`; null if there is none; throws if it is a link. */
function targetMode(path: string): number | null {
  return targetStat(path)?.mode ?? null;
}

/** The mode and owner of the regular file at `path`; null if there is none; throws if it is a link. */
function targetStat(path: string): { mode: number; uid: number; gid: number } | null {
  let st;
  try { st = lstatSync(path); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  if (st.isSymbolicLink()) {
    throw new QosError('QOS_ERR_UNSAFE_PATH', `${path} is a symbolic link: qos replaces a file by renaming a new one over it, so it will neither write through the link nor replace it; give the path the link points to`);
  }
  return st.isFile() ? { mode: st.mode & 0o777, uid: st.uid, gid: st.gid } : null;
}

export function stageFile(path: string, data: string | Uint8Array, o: WriteOptions = {}): StagedFile {
  const target = targetStat(path);
  const mode = o.mode ?? target?.mode ?? 0o644;
  const tmp = tempName(path);
  // O_EXCL: a name someone planted (file or link) fails instead of being written through
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let ino: number;
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    if (o.keepOwner && target) fchownSync(fd, target.uid, target.gid);
    fchmodSync(fd, mode);
    fsyncSync(fd);
    ino = fstatSync(fd).ino;
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  return {
    commit() {
      try {
        targetMode(path);
        // the name must still be our file: in a directory others can write, they could have
        // put something else there since
        if (lstatSync(tmp).ino !== ino) throw new QosError('QOS_ERR_UNSAFE_PATH', `${tmp} was replaced by someone else while it was written; ${path} is left as it was`);
        renameSync(tmp, path);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
      const dir = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
      try { fsyncSync(dir); } finally { closeSync(dir); }
    },
    discard() { rmSync(tmp, { force: true }); },
  };
}

/** Removes the temporary files a killed writer left beside `path` (names as stageFile makes
 * them, or made them before: `.<name>.<pid>.tmp`) and returns their names. Only entries of
 * that directory with such a name; a link is removed itself, never what it points to; a
 * directory of that name is left. Only for a file one process writes (the daemon's store):
 * another writer's file in flight would be removed too. */
export function removeStaleTemps(path: string): string[] {
  const dir = dirname(path);
  const re = tempPattern(path);
  const removed: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!re.test(e.name) || e.isDirectory()) continue;
    try {
      unlinkSync(join(dir, e.name));
      removed.push(e.name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}
