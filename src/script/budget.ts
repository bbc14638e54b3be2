/* Each user's share of a policy script host (JavaScript workers or the tclsh child), so that
 * one user's slow or hostile calls cannot take the script from the others:
 *
 * - A user has at most MAX_USER_CALLS calls given to the hosts and not answered; beyond that
 *   their calls go to the rules (`overloaded`), other users' calls are not affected.
 * - A breaker per user and handler: a handler whose calls from one user overrun their deadline
 *   TRIP_AFTER times in a row, or hang the host once (`killed`: it had to be replaced), is not
 *   called for that user for a while: their calls go straight to the rules (`suspended`).
 *   Each new trip doubles the pause (1 s up to 60 s); one call that ends in time (with a
 *   decision, nothing, or even an exception: those are quick) closes it. Without a breaker a
 *   script that loops on every call keeps a core busy for as long as calls come, which slowed
 *   rules-only clients by ~20 % here even with the workers at nice 19 (docs/performance.md).
 * - A user whose call hung the host, or who trips a breaker a second time, is moved out: from
 *   then on (until the policy is reloaded) their calls go to a host of their own kind, not the
 *   one they share with well-behaved users, so a hang there costs no one else's calls or
 *   module state. */

import type { Logger } from 'pino';
import type { HandlerName } from './js-sandbox.js';

export const TRIP_AFTER = 3;
export const FIRST_PAUSE_MS = 1000;
export const MAX_PAUSE_MS = 60_000;
/** Calls of one user in the hosts at once. */
export const MAX_USER_CALLS = 128;
/** Trips of a user's breakers (any handler) after which they are moved out. */
const MOVE_AFTER_TRIPS = 2;
/** Users remembered while they have nothing in flight and nothing held against them. */
const KEEP_IDLE = 4096;

/** How a call ended: what the host did (decided, fallthrough, error, timeout, killed) or why
 * it was not made or not waited for (overloaded, suspended, late). */
export type CallEnd = 'decided' | 'fallthrough' | 'error' | 'timeout' | 'killed' | 'overloaded' | 'suspended' | 'late';

interface Pause { overruns: number; until: number; pause: number }
interface User { calls: number; pauses: Map<HandlerName, Pause> | null; trips: number; movedOut: boolean }

export class UserBudget {
  private readonly users = new Map<number, User>();
  constructor(private readonly where: string, private readonly log?: Logger, private readonly now: () => number = Date.now) {}

  /** Why uid's call of handler is not made now, if it is not; otherwise it is counted as in
   * flight until release(). */
  admit(uid: number, handler: HandlerName): 'overloaded' | 'suspended' | null {
    let u = this.users.get(uid);
    if (u) {
      if (u.pauses && this.suspended(u, handler)) return 'suspended';
      if (u.calls >= MAX_USER_CALLS) return 'overloaded';
    } else {
      if (this.users.size >= KEEP_IDLE) this.forgetIdle();
      this.users.set(uid, (u = { calls: 0, pauses: null, trips: 0, movedOut: false }));
    }
    u.calls++;
    return null;
  }

  /** An admitted call of uid has ended (or was never given to a host). */
  release(uid: number): void {
    const u = this.users.get(uid);
    if (u && u.calls > 0) u.calls--;
  }

  /** Whether handler is suspended for uid now. */
  isSuspended(uid: number, handler: HandlerName): boolean {
    const u = this.users.get(uid);
    return u?.pauses ? this.suspended(u, handler) : false;
  }

  /** Whether uid's calls go to the hosts for users moved out. */
  movedOut(uid: number): boolean {
    return this.users.get(uid)?.movedOut === true;
  }

  private suspended(u: User, handler: HandlerName): boolean {
    const p = u.pauses!.get(handler);
    return p !== undefined && this.now() < p.until;
  }

  /** Records how a call of uid's that a host ran ended. */
  record(uid: number, handler: HandlerName, end: CallEnd): void {
    const u = this.users.get(uid);
    if (!u) return;
    if (end === 'timeout' || end === 'killed') {
      u.pauses ??= new Map();
      let p = u.pauses.get(handler);
      if (!p) u.pauses.set(handler, (p = { overruns: 0, until: 0, pause: 0 }));
      // a hang trips at once: it cost every call the host held
      if (end === 'timeout' && ++p.overruns < TRIP_AFTER) return;
      p.pause = p.pause ? Math.min(p.pause * 2, MAX_PAUSE_MS) : FIRST_PAUSE_MS;
      p.until = this.now() + p.pause;
      p.overruns = TRIP_AFTER - 1; // the first call after the pause decides: one more overrun trips again
      u.trips++;
      const why = end === 'killed' ? 'hung its host' : `overran its deadline ${TRIP_AFTER} times in a row`;
      this.log?.warn({ script: this.where, handler, uid, pause_ms: p.pause }, `policy script ${handler} ${why} for uid ${uid}; suspended for that user for ${p.pause / 1000} s, the rules decide`);
      if (!u.movedOut && (end === 'killed' || u.trips >= MOVE_AFTER_TRIPS)) {
        u.movedOut = true;
        this.log?.warn({ script: this.where, uid }, `uid ${uid}'s script calls move to a host of their own until the policy is reloaded (their module state there starts afresh)`);
      }
    } else if (end === 'decided' || end === 'fallthrough' || end === 'error') {
      const p = u.pauses?.get(handler);
      if (!p) return;
      u.pauses!.delete(handler);
      if (!u.pauses!.size) u.pauses = null;
      if (p.pause) this.log?.info({ script: this.where, handler, uid }, `policy script ${handler} answers uid ${uid} in time again`);
    }
  }

  /** Drops users with nothing in flight and nothing held against them. */
  private forgetIdle(): void {
    for (const [uid, u] of this.users) if (u.calls === 0 && !u.pauses && !u.movedOut) this.users.delete(uid);
  }
}
