/* peercred.node (native/peercred.c), the one native module, loaded once: the daemon's identity
 * module reads peers and processes through it, and script worker threads set their nice value. */

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** The helper's functions, as peercred.c exports them. */
export const native = require('../native/build/peercred.node') as {
  peercred(fd: number): { pid: number; uid: number; gid: number; start: number } | null;
  peergroups(fd: number): number[] | null;
  credsOf(pid: number): { uid: number; gid: number; start: number } | null;
  raiseNofile(n: number): number;
  acceptPending(fd: number, max: number): number[];
  niceThread(n: number): boolean;
  /** a notification ring of bytes (a sealed memfd) mapped here: [fd, memory], or null */
  ringCreate(bytes: number): [number, ArrayBuffer] | null;
  /** unmaps a ring's memory (the buffer reads as empty after) */
  ringRelease(buf: ArrayBuffer): void;
  /** text on the connected socket sock, without waiting, with descriptor fd attached if given
   * (SCM_RIGHTS): bytes left unsent, or -errno if none went */
  sendText(sock: number, text: string, fd?: number): number;
};

/** Sets the calling thread's nice value (see native/peercred.c); false if not permitted. */
export function niceThread(n: number): boolean {
  return native.niceThread(n);
}
