/* The daemon's flow table: one entry per (pid, descriptor) the agents told us about, with the
 * decision and the rule that made it. Entries leave on Close/Cleanup, and a sweep removes
 * those of processes that are gone (the clock is injectable for tests). */

import type { Decision } from '../protocol/messages.js';

export interface Endpoint { address: string; port: number }

export interface Flow {
  pid: number;
  fd: number;
  family: 'inet' | 'inet6' | null;
  type: 'stream' | 'dgram' | 'raw' | null;
  proto: 'tcp' | 'udp' | null;
  protocol: number;
  local: Endpoint | null;
  remote: Endpoint | null;
  /** distinct destinations seen through SendTo */
  destinations: number;
  decision: Decision | null;
  rule: string | null;
  appTos: number | null;
  appPriority: number | null;
  exe: string;
  user: string;
  created: number;
  updated: number;
}

export type FlowInit = Pick<Flow, 'pid' | 'fd' | 'family' | 'type' | 'proto' | 'protocol' | 'exe' | 'user'>;

export class FlowTable {
  private readonly flows = new Map<string, Flow>();
  private readonly byPid = new Map<number, Set<number>>();
  private readonly byUser = new Map<string, Set<Flow>>();
  constructor(private readonly now: () => number = Date.now, private readonly max = 1_000_000) {}

  get size(): number {
    return this.flows.size;
  }

  get(pid: number, fd: number): Flow | undefined {
    return this.flows.get(`${pid}/${fd}`);
  }

  /** Creates (or replaces: the descriptor number was reused) the entry for pid/fd. */
  open(init: FlowInit): Flow {
    const t = this.now();
    const f: Flow = {
      pid: init.pid, fd: init.fd, family: init.family, type: init.type, proto: init.proto, protocol: init.protocol,
      local: null, remote: null, destinations: 0, decision: null, rule: null, appTos: null, appPriority: null,
      exe: init.exe, user: init.user, created: t, updated: t,
    };
    if (this.flows.size >= this.max && !this.flows.has(`${init.pid}/${init.fd}`)) return f; // full: decide, don't remember
    const key = `${init.pid}/${init.fd}`;
    const old = this.flows.get(key);
    if (old) this.unindexUser(old);
    this.flows.set(key, f);
    let u = this.byUser.get(f.user);
    if (!u) this.byUser.set(f.user, (u = new Set()));
    u.add(f);
    let s = this.byPid.get(init.pid);
    if (!s) this.byPid.set(init.pid, (s = new Set()));
    s.add(init.fd);
    return f;
  }

  touch(f: Flow): void {
    f.updated = this.now();
  }

  /** The flows of one user (what a policy script may read). */
  ofUser(user: string): Flow[] {
    const u = this.byUser.get(user);
    return u ? [...u] : [];
  }

  private unindexUser(f: Flow): void {
    const u = this.byUser.get(f.user);
    if (u) { u.delete(f); if (!u.size) this.byUser.delete(f.user); }
  }

  close(pid: number, fd: number): boolean {
    const key = `${pid}/${fd}`;
    const f = this.flows.get(key);
    if (f) this.unindexUser(f);
    const ok = this.flows.delete(key);
    const s = this.byPid.get(pid);
    if (s) { s.delete(fd); if (!s.size) this.byPid.delete(pid); }
    return ok;
  }

  /** Removes every entry of a process; returns how many. */
  closePid(pid: number): number {
    const s = this.byPid.get(pid);
    if (!s) return 0;
    for (const fd of s) {
      const f = this.flows.get(`${pid}/${fd}`);
      if (f) this.unindexUser(f);
      this.flows.delete(`${pid}/${fd}`);
    }
    this.byPid.delete(pid);
    return s.size;
  }

  pids(): number[] {
    return [...this.byPid.keys()];
  }

  list(): Flow[] {
    return [...this.flows.values()];
  }

  /** Removes the entries of processes for which alive(pid) is false. */
  sweep(alive: (pid: number) => boolean): number {
    let n = 0;
    for (const pid of this.pids()) if (!alive(pid)) n += this.closePid(pid);
    return n;
  }
}
