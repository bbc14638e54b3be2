/* Earlier versions of the running policy, kept when the admin API replaces it (apply, restore):
 * one file per version in `policy-versions/` beside the kernel rule store, so `qos policy
 * restore N` and the dashboard can put one back. The directory is 0700 and each file 0600,
 * written atomically (policy texts may name hosts and programs); a symbolic link or another
 * user's file there is refused, never followed. At most MAX_VERSIONS are kept, the oldest
 * dropped. A file is one JSON line of what it is (VersionMeta) and then the text as it was. */

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { removeStaleTemps, stageFile } from '../atomic-file.js';
import { QosError } from '../errors.js';
import { checkDirectory, directoryProblem, readTextFile } from '../secure-path.js';

/** Versions kept; past it the oldest goes. */
export const MAX_VERSIONS = 50;

export interface VersionMeta {
  version: number;
  saved_at: string;
  sha256: string;
  /** bytes of the text */
  size: number;
  /** what saved it: `api` (apply or restore through the admin API or the dashboard) */
  by: string;
  /** the uid of the admin API's caller (the dashboard's requests are root's) */
  uid: number;
  /** the policy file it ran from */
  source: string;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

const NAME = /^(\d{6,})\.policy$/;
const TEMP = /^\.\d{6,}\.policy\.[A-Za-z0-9_-]{16}\.tmp$/;
const fileName = (n: number) => `${String(n).padStart(6, '0')}.policy`;
/** The first line (the metadata) is read alone when listing; it is far shorter than this. */
const HEAD_BYTES = 8192;

export class PolicyVersions {
  /** by version number; read from the directory at first use, then kept up to date */
  private index: Map<number, VersionMeta> | null = null;

  constructor(readonly dir: string, private readonly max = MAX_VERSIONS) {}

  /** The directory, made 0700 if absent; throws QOS_ERR_UNSAFE_PATH if it is a link, not a
   * directory, or another user could change it (or any directory above it). */
  private ensureDir(): void {
    const dir = this.dir;
    checkDirectory(dirname(dir), 'the policy versions', dir);
    let st;
    try { st = lstatSync(dir); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
      mkdirSync(dir, { mode: 0o700 });
      st = lstatSync(dir);
    }
    const unsafe = (why: string) => new QosError('QOS_ERR_UNSAFE_PATH', `refusing the policy versions ${dir}: ${why}`, [{ file: dir, message: `${why}; the daemon keeps earlier policies only in a directory of its own (remove it: the daemon makes it again, mode 0700)` }]);
    if (st.isSymbolicLink()) throw unsafe(`${dir} is a symbolic link`);
    if (!st.isDirectory()) throw unsafe(`${dir} is not a directory`);
    const why = directoryProblem(dir);
    if (why) throw unsafe(why);
    if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  }

  private load(): Map<number, VersionMeta> {
    this.ensureDir();
    if (this.index) return this.index;
    const index = new Map<number, VersionMeta>();
    for (const name of readdirSync(this.dir)) {
      // what a killed daemon left of a save (atomic-file.ts names its temporary files so)
      if (TEMP.test(name)) { removeStaleTemps(join(this.dir, name.slice(1, name.indexOf('.policy.') + 7))); continue; }
      const m = NAME.exec(name);
      if (!m) continue;
      const meta = this.readHead(join(this.dir, name));
      if (meta && meta.version === Number(m[1])) index.set(meta.version, meta);
    }
    return (this.index = index);
  }

  /** A file's first line, or null if it is not a version this daemon wrote (a link, not a
   * regular file, not JSON). */
  private readHead(path: string): VersionMeta | null {
    let fd;
    try { fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK); } catch { return null; }
    try {
      const buf = Buffer.alloc(HEAD_BYTES);
      const n = readSync(fd, buf, 0, HEAD_BYTES, 0);
      const nl = buf.subarray(0, n).indexOf(10);
      if (nl < 0) return null;
      const meta = JSON.parse(buf.subarray(0, nl).toString('utf8')) as VersionMeta;
      return Number.isSafeInteger(meta.version) && typeof meta.sha256 === 'string' ? meta : null;
    } catch { return null; } finally { closeSync(fd); }
  }

  /** Every version kept, newest first, without texts. */
  list(): VersionMeta[] {
    return [...this.load().values()].sort((a, b) => b.version - a.version);
  }

  /** Version n with its text; QOS_ERR_NOT_FOUND if it is not kept. */
  async get(n: number): Promise<VersionMeta & { text: string }> {
    const meta = this.load().get(n);
    if (!meta) throw new QosError('QOS_ERR_NOT_FOUND', `no policy version ${n}: the versions kept are ${this.list().map((v) => v.version).join(', ') || 'none'} (qos policy versions)`);
    const path = join(this.dir, fileName(n));
    const raw = await readTextFile(path, {
      maxBytes: HEAD_BYTES + meta.size,
      tooBig: () => new QosError('QOS_ERR_INTERNAL', `${path} is longer than the version it says it holds`),
      trustedAs: 'a policy version',
    });
    const text = raw.slice(raw.indexOf('\n') + 1);
    if (sha256(text) !== meta.sha256) throw new QosError('QOS_ERR_INTERNAL', `${path}: its text does not have the sha256 it was saved with`);
    return { ...meta, text };
  }

  /** Writes `text` as the next version, not yet in place: `commit` puts it there (and drops the
   * oldest past the bound), `discard` forgets it. The newest version is reused, not doubled,
   * if it holds the same text. */
  stage(text: string, o: { by: string; uid: number; source: string }): { version: number; commit(): void; discard(): void } {
    const index = this.load();
    const hash = sha256(text);
    const newest = this.list()[0];
    if (newest && newest.sha256 === hash) return { version: newest.version, commit: () => undefined, discard: () => undefined };
    const version = (newest?.version ?? 0) + 1;
    const meta: VersionMeta = { version, saved_at: new Date().toISOString(), sha256: hash, size: Buffer.byteLength(text), by: o.by, uid: o.uid, source: o.source };
    const staged = stageFile(join(this.dir, fileName(version)), `${JSON.stringify(meta)}\n${text}`, { mode: 0o600 });
    return {
      version,
      commit: () => {
        staged.commit();
        index.set(version, meta);
        for (const old of this.list().slice(this.max)) {
          try { unlinkSync(join(this.dir, fileName(old.version))); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
          index.delete(old.version);
        }
      },
      discard: () => staged.discard(),
    };
  }
}
