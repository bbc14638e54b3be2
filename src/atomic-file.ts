/* Writing a file so that a reader (or a crash) sees the old content or the new, never half:
 * a temporary file beside it, fsync, rename over, fsync the directory. */

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  stageFile(path, data).commit();
}

/** A file written beside `path` and synced, not yet in place: `commit` renames it over
 * `path`, `discard` removes it. Lets slow work (an nft transaction) run while it is written. */
export interface StagedFile { commit(): void; discard(): void }

export function stageFile(path: string, data: string | Uint8Array): StagedFile {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  return {
    commit() {
      try {
        renameSync(tmp, path);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
      const dir = openSync(dirname(path), 'r');
      try { fsyncSync(dir); } finally { closeSync(dir); }
    },
    discard() { rmSync(tmp, { force: true }); },
  };
}
