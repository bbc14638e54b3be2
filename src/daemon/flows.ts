/* The daemon's flow table: one entry per (process, descriptor) the agents told us about, with
 * the decision and the rule that made it. Entries leave on Close/Cleanup, and a sweep removes
 * those of processes that are gone (the clock is injectable for tests).
 *
 * Hostile users: a process is its pid *and* its start time, so a process that inherited a
 * connection of a dead parent cannot close the flows of an unrelated process that was given
 * the same pid; each user (uid) holds at most maxPerUser entries, and past that loses its own
 * oldest, never another user's; per-user counts by class are kept as decisions change, so a
 * policy script can ask "how many EF flows has this user" at a cost that does not grow with
 * the user's flows.
 *
 * Every entry made, decided and removed is published on `events` (flow-events.ts). */

import { dscpName } from '../policy/dscp.js';
import type { Decision } from '../policy/engine.js';
import { FlowEvents, type CloseReason } from './flow-events.js';

export interface Endpoint { address: string; port: number }

export interface Flow {
  pid: number;
  fd: number;
  uid: number;
  family: 'inet' | 'inet6' | null;
  type: 'stream' | 'dgram' | 'raw' | null;
  proto: 'tcp' | 'udp' | null;
  protocol: number;
  local: Endpoint | null;
  remote: Endpoint | null;
  /** distinct destinations seen through SendTo */
  destinations: number;
  decision: Decision | null;
  /** decisionClass(decision), kept with it */
  class: string;
  rule: string | null;
  appTos: number | null;
  appPriority: number | null;
  exe: string;
  user: string;
  created: number;
  updated: number;
}

export type FlowInit = Pick<Flow, 'pid' | 'fd' | 'uid' | 'family' | 'type' | 'proto' | 'protocol' | 'exe' | 'user'> & {
  /** the process's start time (identity.ts startTime); absent: unknown, taken as the same process */
  start?: number;
};

/** The class a decision puts traffic in, for logs, metrics and scripts. */
export function decisionClass(d: Decision | null): string {
  if (!d) return 'none';
  if (d.deny) return 'deny';
  if (d.tos !== undefined) return dscpName(d.tos >> 2);
  if (d.dscp !== undefined) return dscpName(d.dscp);
  return d.priority !== undefined ? 'priority' : 'none'; // (a decision of a flow alone marks nothing itself)
}

/** A stored flow, its place in its user's list, that user and the count of its class there
 * (kept here, so a verdict or a removal finds them without a lookup); flow null: the
 * descriptor's flow was removed and the entry waits for the next one on the same descriptor
 * (below). */
interface Entry { flow: Flow | null; prev: Entry | null; next: Entry | null; user: UserFlows | null; cell: Cell | null }
/** A class's count for one user. */
interface Cell { n: number }
/** A process's entries by descriptor. A removed flow leaves its entry in the map, vacant, for
 * the next flow on that descriptor: a program whose one socket comes and goes made V8 shrink
 * and regrow the map at every connect. Vacant entries past VACANT_MAX, and past the live
 * ones, are dropped at once. */
interface Proc { start: number | undefined; fds: Map<number, Entry>; vacant: number }
const VACANT_MAX = 64;
/** A user's entries in the order they were opened (a list through the entries: linking and
 * unlinking one is a few stores, where adding to and deleting from a Set rehashed it as a
 * program's one flow came and went), and how many are in each class: a cell per class,
 * bumped in place and kept at 0 (there are a few dozen classes; `none`, every new flow's, is
 * also kept at hand). */
interface UserFlows { first: Entry | null; last: Entry | null; size: number; classes: Map<string, Cell>; none: Cell }

/** Entries one user may hold; past it the user's oldest entry goes. */
export const MAX_FLOWS_PER_USER = 65_536;
const NO_CLASSES: ReadonlyMap<string, number> = new Map();

export class FlowTable {
  private readonly procs = new Map<number, Proc>();
  private readonly users = new Map<number, UserFlows>();
  private count = 0;
  /** entries a user lost to their own bound, in all */
  evicted = 0;
  constructor(private readonly now: () => number = Date.now, private readonly max = 1_000_000, private readonly maxPerUser = MAX_FLOWS_PER_USER, readonly events = new FlowEvents()) {}

  get size(): number {
    return this.count;
  }

  get(pid: number, fd: number): Flow | undefined {
    return this.procs.get(pid)?.fds.get(fd)?.flow ?? undefined;
  }

  /** f's entry, if f is in the table: a flow not remembered (the table was full), or
   * removed, is not, and its changes count nowhere. A stored flow is always the one at its
   * pid/fd (open removes the one it replaces), so this is two lookups by number: a WeakSet of
   * stored flows cost ~1 us per open under load (its add, most of all). */
  private entryOf(f: Flow): Entry | undefined {
    const e = this.procs.get(f.pid)?.fds.get(f.fd);
    return e && e.flow === f ? e : undefined;
  }

  /** Creates (or replaces: the descriptor number was reused) the entry for pid/fd. The
   * entries of an earlier process with the same pid (another start time) go first. */
  open(init: FlowInit): Flow {
    const t = this.now();
    const f: Flow = {
      pid: init.pid, fd: init.fd, uid: init.uid, family: init.family, type: init.type, proto: init.proto, protocol: init.protocol,
      local: null, remote: null, destinations: 0, decision: null, class: 'none', rule: null, appTos: null, appPriority: null,
      exe: init.exe, user: init.user, created: t, updated: t,
    };
    let p = this.procs.get(init.pid);
    if (p && init.start !== undefined && p.start !== undefined && p.start !== init.start) {
      this.closePid(init.pid, undefined, 'gone');
      p = undefined;
    }
    let e = p?.fds.get(init.fd);
    let u = this.users.get(init.uid);
    // (the usual case removes nothing: the descriptor's entry is vacant, the user below the bound)
    let removed = false;
    if (e?.flow) { this.remove(e.flow, 'replaced'); removed = true; }
    if (u?.first && u.size >= this.maxPerUser) {
      this.remove(u.first.flow!, 'evicted'); // (an entry in a user's list is never vacant)
      this.evicted++;
      removed = true;
    }
    if (this.count >= this.max) return f; // full: decide, don't remember
    if (!p) this.procs.set(init.pid, (p = { start: init.start, fds: new Map(), vacant: 0 }));
    else if (p.start === undefined) p.start = init.start;
    if (!u) {
      const none = { n: 0 };
      this.users.set(init.uid, (u = { first: null, last: null, size: 0, classes: new Map([['none', none]]), none }));
    }
    if (removed) e = p.fds.get(init.fd); // a removal may have dropped the vacant entries
    if (e) {
      // (vacant: its flow was removed above or before)
      e.flow = f;
      e.prev = u.last;
      e.user = u;
      p.vacant--;
    } else p.fds.set(init.fd, (e = { flow: f, prev: u.last, next: null, user: u, cell: null }));
    if (u.last) u.last.next = e;
    else u.first = e;
    u.last = e;
    u.size++;
    // (a new flow's class is none)
    e.cell = u.none;
    u.none.n++;
    this.count++;
    if (this.events.active) this.events.publish({ kind: 'open', flow: f });
    return f;
  }

  /** Records a flow's decision and the rule that made it, keeping the class counts. */
  setVerdict(f: Flow, decision: Decision | null, rule: string | null): void {
    const cls = decisionClass(decision);
    if (cls !== f.class) {
      const e = this.entryOf(f);
      if (e) {
        e.cell!.n--;
        e.cell = cellOf(e.user!, cls);
        e.cell.n++;
      }
    }
    f.decision = decision;
    f.class = cls;
    f.rule = rule;
    if (this.events.active && this.entryOf(f)) this.events.publish({ kind: 'decided', flow: f, decision, rule });
  }

  touch(f: Flow): void {
    f.updated = this.now();
  }

  /** The flows of one user (what a policy script may read). */
  ofUser(uid: number): Flow[] {
    const out: Flow[] = [];
    for (let e = this.users.get(uid)?.first; e; e = e.next) out.push(e.flow!);
    return out;
  }

  /** How many flows a user has, in all and by class (none, deny, priority, or a DSCP name). */
  userCounts(uid: number): { flows: number; classes: ReadonlyMap<string, number> } {
    const u = this.users.get(uid);
    if (!u) return { flows: 0, classes: NO_CLASSES };
    const classes = new Map<string, number>();
    for (const [cls, c] of u.classes) if (c.n > 0) classes.set(cls, c.n);
    return { flows: u.size, classes };
  }

  private remove(f: Flow, why: CloseReason): void {
    const p = this.procs.get(f.pid);
    const e = p?.fds.get(f.fd);
    if (p && e && e.flow === f) this.removeEntry(p, e, f, why);
  }

  private removeEntry(p: Proc, e: Entry, f: Flow, why: CloseReason): void {
    // A process's and a user's entries stay when their last flow goes (a program that
    // connects and closes over and over would make them anew each time: maps and sets, a
    // third of the table's cost per flow): closePid and the sweep drop them.
    const u = e.user!;
    if (e.prev) e.prev.next = e.next;
    else u.first = e.next;
    if (e.next) e.next.prev = e.prev;
    else u.last = e.prev;
    u.size--;
    e.cell!.n--;
    e.flow = e.prev = e.next = null;
    e.user = e.cell = null;
    if (++p.vacant > VACANT_MAX && p.vacant * 2 > p.fds.size) {
      for (const [fd, v] of p.fds) if (!v.flow) p.fds.delete(fd);
      p.vacant = 0;
    }
    this.count--;
    if (this.events.active) this.events.publish({ kind: 'closed', flow: f, why });
  }

  /** Removes pid/fd's flow; returns it (undefined: there was none). */
  close(pid: number, fd: number): Flow | undefined {
    const p = this.procs.get(pid);
    const e = p?.fds.get(fd);
    const f = e?.flow;
    if (!f) return undefined;
    this.removeEntry(p!, e!, f, 'close');
    return f;
  }

  /** Removes every entry of a process; returns how many. With start, only if the entries
   * are that process's (not those of a later process given the same pid). */
  closePid(pid: number, start?: number, why: CloseReason = 'exit'): number {
    const p = this.procs.get(pid);
    if (!p) return 0;
    if (start !== undefined && p.start !== undefined && p.start !== start) return 0;
    const flows: Flow[] = [];
    for (const e of p.fds.values()) if (e.flow) flows.push(e.flow);
    for (const f of flows) this.remove(f, why);
    if (this.procs.get(pid) === p) this.procs.delete(pid);
    return flows.length;
  }

  /** The start time recorded for a pid's entries. */
  startOf(pid: number): number | undefined {
    return this.procs.get(pid)?.start;
  }

  pids(): number[] {
    return [...this.procs.keys()];
  }

  list(): Flow[] {
    const out: Flow[] = [];
    for (const p of this.procs.values()) for (const e of p.fds.values()) if (e.flow) out.push(e.flow);
    return out;
  }

  /** Removes the entries of processes for which alive(pid, start) is false. */
  sweep(alive: (pid: number, start: number | undefined) => boolean): number {
    let n = 0;
    for (const [pid, p] of [...this.procs]) if (!alive(pid, p.start)) n += this.closePid(pid, undefined, 'gone');
    for (const [uid, u] of this.users) if (!u.size) this.users.delete(uid);
    return n;
  }
}

function cellOf(u: UserFlows, cls: string): Cell {
  if (cls === 'none') return u.none;
  let c = u.classes.get(cls);
  if (!c) u.classes.set(cls, (c = { n: 0 }));
  return c;
}
