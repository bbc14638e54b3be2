/* Fair shares of the agent socket between local users (uids), any of whom may be hostile: how
 * many connections each may hold, how many lines of theirs are handled per event-loop turn,
 * and how many bytes of theirs may wait in the daemon. One user past a bound only slows or
 * loses their own requests; the others' keep their share. Pure bookkeeping, no sockets: the
 * agent server (agents.ts) asks and tells. */

/** Lines one user may have handled per event-loop turn: a few ms of work at most, so another
 * user's question waits that long behind them. (128 cost a busy single user 15 % of its
 * decisions/s in `qos bench ab`: its own requests spilled into extra turns.) */
export const USER_TURN_LINES = 512;
/** Lines one connection may have handled per round of a background turn. */
export const CONN_TURN_LINES = 32;
/** Lines a background turn handles in all before it lets the event loop turn. */
export const TURN_LINES = 1024;

export interface AgentLimits {
  /** agent connections in all */
  connections: number;
  /** of those, how many only root may take (root's programs and the admin API keep working
   * while every other user is at their bound) */
  rootReserve: number;
  /** connections one user other than root may hold (a thread of a program holds one) */
  perUser: number;
  /** bytes of one user's lines the daemon holds unhandled; past it their connections are not
   * read until worked off (their agents' notifications are then dropped, never requests) */
  userBytes: number;
}

/** The bounds for a daemon with nofile descriptors: half of them for agents, a tenth of those
 * for root alone, a user at most a quarter (2,048 at most). */
export function limitsFor(nofile: number): AgentLimits {
  const connections = Math.max(64, Math.min(32_768, Math.floor(nofile / 2)));
  return {
    connections,
    rootReserve: Math.max(8, Math.floor(connections / 10)),
    perUser: Math.max(8, Math.min(2048, Math.floor(connections / 4))),
    userBytes: 1 << 20,
  };
}

export interface Share<C> {
  readonly uid: number;
  conns: number;
  /** lines handled in turn `turn` */
  used: number;
  turn: number;
  /** bytes waiting, over all the user's connections */
  bytes: number;
  /** connections waiting for a background turn whose lines include a request (an agent is
   * waiting for the answer), and those holding only notifications: served after them */
  readonly asks: C[];
  readonly tells: C[];
  /** connections not read because the user's bytes are at the bound */
  readonly paused: Set<C>;
}

export type Refusal = 'total' | 'reserved-for-root' | 'per-user';

export class Shares<C> {
  private readonly users = new Map<number, Share<C>>();
  private total = 0;
  /** the current event-loop turn, as counted by the background turns */
  turn = 0;
  constructor(readonly limits: AgentLimits) {}

  get connections(): number {
    return this.total;
  }

  /** Counts a new connection of uid, or says which bound refuses it. */
  admit(uid: number): Share<C> | Refusal {
    const l = this.limits;
    if (this.total >= l.connections) return 'total';
    if (uid !== 0 && this.total >= l.connections - l.rootReserve) return 'reserved-for-root';
    let s = this.users.get(uid);
    if (uid !== 0 && s && s.conns >= l.perUser) return 'per-user';
    if (!s) this.users.set(uid, (s = { uid, conns: 0, used: 0, turn: this.turn, bytes: 0, asks: [], tells: [], paused: new Set() }));
    s.conns++;
    this.total++;
    return s;
  }

  /** A connection of s closed. */
  leave(s: Share<C>): void {
    s.conns--;
    this.total--;
    if (s.conns === 0 && s.bytes === 0 && !s.asks.length && !s.tells.length) this.users.delete(s.uid);
  }

  /** Lines s may still have handled this turn. */
  room(s: Share<C>): number {
    if (s.turn !== this.turn) { s.turn = this.turn; s.used = 0; }
    return USER_TURN_LINES - s.used;
  }

  spend(s: Share<C>, lines: number): void {
    this.room(s);
    s.used += lines;
  }

  /** Whether s holds as many bytes as it may. */
  full(s: Share<C>): boolean {
    return s.bytes >= this.limits.userBytes;
  }

  /** Users with connections waiting for a turn, in no particular order. */
  waiting(): Share<C>[] {
    const out: Share<C>[] = [];
    for (const s of this.users.values()) {
      if (s.asks.length || s.tells.length) out.push(s);
      else if (s.conns === 0 && s.bytes === 0) this.users.delete(s.uid);
    }
    return out;
  }

  /** Connections held by each user, for status. */
  byUser(): Map<number, number> {
    return new Map([...this.users.values()].map((s) => [s.uid, s.conns]));
  }
}
