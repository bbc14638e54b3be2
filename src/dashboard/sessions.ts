/* Dashboard sessions: who has logged in with the token. A session is a random id (the cookie)
 * and a random CSRF token the page sends back in X-CSRF-Token on every state-changing request.
 * Bounded: at most `max` sessions (a new login drops the least recently used) and each expires
 * after `idleMs` unused, on the injectable clock. */

import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';

export interface Session { id: string; csrf: string; used: number }

/** Sessions kept at once; a new login past it drops the least recently used. */
export const MAX_SESSIONS = 64;
/** A session unused this long is gone. */
export const SESSION_IDLE_MS = 12 * 3600_000;

export class Sessions {
  /** by id, least recently used first (a use moves a session to the end) */
  private readonly byId = new Map<string, Session>();

  constructor(private readonly clock: Pick<Clock, 'now'>, private readonly max = MAX_SESSIONS, private readonly idleMs = SESSION_IDLE_MS) {}

  /** A new session; the least recently used goes if there are `max` already. */
  create(): Session {
    this.expire();
    while (this.byId.size >= this.max) this.byId.delete(this.byId.keys().next().value!);
    const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), used: this.clock.now() };
    this.byId.set(s.id, s);
    return s;
  }

  /** The live session of this id, marked used; undefined if there is none or it expired. */
  use(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const s = this.byId.get(id);
    if (!s) return undefined;
    this.byId.delete(id);
    const now = this.clock.now();
    if (now - s.used > this.idleMs) return undefined;
    s.used = now;
    this.byId.set(id, s);
    return s;
  }

  drop(id: string): void {
    this.byId.delete(id);
  }

  get size(): number {
    this.expire();
    return this.byId.size;
  }

  /** Drops the expired: they are the least recently used, at the front. */
  private expire(): void {
    const now = this.clock.now();
    for (const [id, s] of this.byId) {
      if (now - s.used <= this.idleMs) break;
      this.byId.delete(id);
    }
  }
}
