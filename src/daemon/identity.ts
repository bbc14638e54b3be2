/* Who is on the other end of an agent connection, from the kernel only: SO_PEERCRED for
 * pid/uid/gid, /proc for exe, command line and cgroup, /etc/passwd and /etc/group for names.
 * What the agent writes in its messages never overrides these (paper section 6). */

import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { idEntries } from '../id-names.js';
import { native } from '../native.js';
import type { Identity } from '../policy/engine.js';

/** Who connected: pid, effective uid and gid at connect (SO_PEERCRED), and the start time of
 * that very process (-1: it is gone), which tells it from a later process given its pid. */
export interface Cred { pid: number; uid: number; gid: number; start: number }

/** Credentials of the peer of a connected Unix socket descriptor, or null. */
export function peerCred(fd: number): Cred | null {
  return native.peercred(fd);
}

/** The supplementary groups of the peer of a connected Unix socket (SO_PEERGROUPS), or null. */
export function peerGroups(fd: number): number[] | null {
  return native.peergroups(fd);
}

/** A process's effective uid and gid now, and its start time; null if it is gone. */
export function credsOf(pid: number): { uid: number; gid: number; start: number } | null {
  return native.credsOf(pid);
}

/** Raises this process's descriptor limit towards n; returns the limit now. */
export function raiseNofile(n: number): number {
  return native.raiseNofile(n);
}

/** Accepts the connections queued on a listening socket (see native/peercred.c for why). */
export function acceptPending(listenFd: number, max: number): number[] {
  return native.acceptPending(listenFd, max);
}

function readText(path: string): string | undefined {
  try { return readFileSync(path, 'latin1'); } catch { return undefined; }
}

/** Process start time in clock ticks since boot (field 22 of /proc/PID/stat); tells pid reuse. */
export function startTime(pid: number): number | undefined {
  const s = readText(`/proc/${pid}/stat`);
  if (!s) return undefined;
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const v = Number(fields[19]);
  return Number.isFinite(v) ? v : undefined;
}

/** /proc/PID/cmdline with NULs as single spaces and no trailing space (docs/protocol.md). */
export function cmdlineOf(pid: number): string {
  const raw = readText(`/proc/${pid}/cmdline`) ?? '';
  return raw.replace(/\0+$/, '').replace(/\0/g, ' ');
}

/** The cgroup path (v2 unified, or the systemd v1 hierarchy) and its systemd unit. */
export function cgroupOf(pid: number): { cgroup: string; unit: string } {
  const text = readText(`/proc/${pid}/cgroup`) ?? '';
  let path = '';
  for (const line of text.split('\n')) {
    const [, ctrl, p] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (p === undefined) continue;
    if (ctrl === '') { path = p; break; }
    if (ctrl === 'name=systemd') path = p;
  }
  const unit = path.split('/').reverse().find((c) => /\.(service|scope)$/.test(c)) ?? path.split('/').pop() ?? '';
  return { cgroup: path, unit };
}

export class NameTable {
  private names = new Map<number, string>();
  private mtime = -1;
  private checked = 0;
  constructor(private readonly file: string) {}
  get(id: number, now: number): string {
    if (now - this.checked > 5000) {
      this.checked = now;
      let m = -1;
      try { m = statSync(this.file).mtimeMs; } catch { /* no file: numbers only */ }
      if (m !== this.mtime) {
        this.mtime = m;
        this.names.clear();
        for (const [name, id] of idEntries(readText(this.file) ?? '')) if (!this.names.has(id)) this.names.set(id, name);
      }
    }
    return this.names.get(id) ?? String(id);
  }
}

/** How long a resolved identity serves further connections of the same process unread. */
const REUSE_MS = 2000;

/** Identities by pid. A process's first connection carries its Startup message (a new
 * process, a forked child, or a new program after exec): that one is resolved from /proc
 * afresh (fresh = true). Its other threads' connections reuse it for REUSE_MS without
 * reading /proc again: a burst of 64 new threads costs one resolution, not 64. */
export class IdentityResolver {
  private readonly cache = new Map<number, Identity & { start: number; at: number }>();
  private readonly users = new NameTable('/etc/passwd');
  private readonly groups = new NameTable('/etc/group');
  /** identities read from /proc since start */
  reads = 0;
  constructor(private readonly max = 8192, private readonly now: () => number = Date.now) {}

  /** The identity of the process that connected with cred, or null if that process is gone
   * (/proc shows another start time: the pid now names someone else). The /proc reads are
   * taken between two readings of the start time, so they are all of that one process. */
  resolve(cred: Cred, fresh = false): Identity | null {
    const { pid } = cred;
    const now = this.now();
    const hit = this.cache.get(pid);
    if (!fresh && hit && hit.start === cred.start && hit.uid === cred.uid && hit.gid === cred.gid && now - hit.at < REUSE_MS) return hit;
    this.reads++;
    if (cred.start < 0 || startTime(pid) !== cred.start) return null;
    let exe = '';
    try { exe = readlinkSync(`/proc/${pid}/exe`); } catch { /* gone or not permitted */ }
    const cmdline = cmdlineOf(pid);
    const { cgroup, unit } = cgroupOf(pid);
    if (startTime(pid) !== cred.start) return null;
    const start = cred.start;
    if (hit && hit.start === start && hit.exe === exe && hit.cmdline === cmdline && hit.uid === cred.uid && hit.gid === cred.gid && hit.cgroup === cgroup) {
      hit.at = now;
      return hit;
    }
    const id = {
      pid, uid: cred.uid, gid: cred.gid, user: this.users.get(cred.uid, now), group: this.groups.get(cred.gid, now),
      exe, cmdline, cgroup, unit, start, at: now,
    };
    if (this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(pid, id);
    return id;
  }

  forget(pid: number): void {
    this.cache.delete(pid);
  }
}
