/* What the two kinds of policy script host share: JavaScript worker threads (pool.ts) and
 * tclsh children (tcl-host.ts) are lanes, each running one call at a time and taking users in
 * turn. This part routes each call to a lane by user, keeps each user to their budget
 * (budget.ts), answers requests the script has not answered in time with the rules
 * (answer-time.ts), and replaces a lane that hangs or dies, blaming only the call it was
 * running.
 *
 * Routing: a user's calls go to lane uid % n, so module state keyed by user stays in one
 * place; a user moved out (a hang, or a second trip of a breaker) goes to one more lane, made
 * when first needed, shared only by users moved out. */

import type { Logger } from 'pino';
import type { Decision } from '../policy/engine.js';
import type { HandlerName, SandboxLimits, ScriptFault, StateSource } from './js-sandbox.js';
import { AnswerClock } from './answer-time.js';
import { UserBudget, type CallEnd } from './budget.js';
import { InFlight } from './inflight.js';

export type ScriptStatus = CallEnd;

export interface ScriptOutcome {
  /** undefined: the rules decide */
  decision: Decision | null | undefined;
  status: ScriptStatus;
  fault?: ScriptFault;
  ms: number;
}

export interface HostOptions {
  limits: SandboxLimits;
  log?: Logger;
  /** called once for every call, with how it ended for the program (metrics) */
  onCall?: (handler: HandlerName, o: ScriptOutcome) => void;
  onRestart?: () => void;
}

/** How long past its deadline a call may run before its host is replaced: CPU time the host
 * spent on it, not time on the clock (see cpu.ts). A call cannot use more CPU than time
 * passes, so one that has used its deadline and this much more of it is running past its
 * deadline whatever the machine's load: a built-in the interrupt cannot stop. */
export const HANG_GRACE_MS = 100;
/** The same on the clock, for a host whose CPU time cannot be read. */
const HANG_GRACE_CLOCK_MS = 250;
/** How long a host may hold calls without answering and without using the CPU to run them
 * (starved, stopped) before it is replaced anyway, blaming no one. */
export const STARVED_MS = 30_000;
/** How often the watchdog looks. */
const WATCH_MS = 50;
/** Handlers the agent expects no answer from: no answer time applies. */
const NOTIFICATIONS: ReadonlySet<HandlerName> = new Set(['Close', 'Shutdown', 'Startup', 'Cleanup']);

/** One call given to a lane. */
export interface Call {
  id: number;
  uid: number;
  handler: HandlerName;
  sent: number;
  /** the program waits for it (not a notification): it has an answer time */
  request: boolean;
  /** the program has its answer (from the host, or the rules once late) */
  settled: boolean;
  resolve: (o: ScriptOutcome) => void;
  state: StateSource;
}

/** One host of the script: a worker thread or a tclsh child. */
export abstract class Lane {
  readonly inflight = new InFlight<Call>();
  /** a replacement is starting */
  restarting = false;
  /** the watchdog's note: the host's CPU time (ms) when it first saw the host's last answer */
  mark: { since: number; cpu: number | null } = { since: -1, cpu: null };
  constructor(readonly index: number, readonly movedOut: boolean) {}
  /** The id of the call the host is running now, 0 if unknown. */
  abstract running(): number;
  /** The CPU time the host has used, in ms, or null if unknown. */
  abstract cpuMs(): number | null;
}

/** Logs a call that faulted, overran or was cut off. */
function logFault(log: Logger | undefined, where: string, handler: HandlerName, o: ScriptOutcome, cutOff: string): void {
  if (o.status !== 'error' && o.status !== 'timeout' && o.status !== 'killed') return;
  const what = o.status === 'error' ? 'failed' : o.status === 'timeout' ? 'overran its deadline' : `hung: ${cutOff}`;
  log?.warn({ script: where, handler, status: o.status, ms: o.ms, error: o.fault?.message }, `policy script ${handler} ${what}; the rules decide`);
}

export abstract class ScriptHostBase<L extends Lane> {
  handlers: ReadonlySet<HandlerName> = new Set();
  protected readonly lanes: L[] = [];
  /** the lane of users moved out, once one was */
  private moved: L | null = null;
  protected closed = false;
  private nextId = 1;
  private readonly budget: UserBudget;
  private readonly clock: AnswerClock;
  private readonly watchdog: NodeJS.Timeout;

  /** cutOff: what happens to a hung lane, for the log ("worker replaced") */
  protected constructor(readonly file: string, readonly o: HostOptions, private readonly cutOff: string) {
    this.budget = new UserBudget(file, o.log);
    this.clock = new AnswerClock(o.limits.answerMs, (now) => this.sweep(now));
    this.watchdog = setInterval(() => this.watch(), WATCH_MS);
    this.watchdog.unref();
  }

  /** A lane for users moved out, starting (restarting set until it has started). */
  protected abstract openLane(index: number): L;
  /** Replaces a lane's host with a fresh one (its calls are already ended). */
  protected abstract replaceLane(lane: L): Promise<void>;
  protected abstract stopLane(lane: L): Promise<void>;

  /** Calls given to the hosts and not answered by them yet (answered late or not). */
  get busy(): number {
    let n = 0;
    for (const l of this.allLanes()) n += l.inflight.size;
    return n;
  }

  /** Whether uid's calls of handler go straight to the rules now (its breaker). */
  suspended(uid: number, handler: HandlerName): boolean {
    return this.budget.isSuspended(uid, handler);
  }

  private allLanes(): L[] {
    return this.moved ? [...this.lanes, this.moved] : this.lanes;
  }

  /** Gives uid's call of handler to its lane with post (false: the lane has no room); by is
   * when a request's answer time is up, in ms since the epoch (0: a notification), so that a
   * host does not run a request that has had the rules' answer. Never rejects. */
  protected submit(handler: HandlerName, uid: number, state: StateSource, post: (lane: L, id: number, by: number) => boolean): Promise<ScriptOutcome> {
    const refused = this.closed ? 'overloaded' : this.budget.admit(uid, handler);
    if (refused) return this.refuse(handler, refused);
    const lane = this.budget.movedOut(uid) ? (this.moved ??= this.openLane(this.lanes.length)) : this.lanes[uid % this.lanes.length]!;
    if (lane.inflight.full) {
      this.budget.release(uid);
      return this.refuse(handler, 'overloaded');
    }
    const id = this.nextId;
    this.nextId = (this.nextId % 0xfffffffe) + 1; // never 0: the ring's wrap marker
    const sent = Date.now(), request = !NOTIFICATIONS.has(handler);
    if (!post(lane, id, request ? sent + this.clock.ms : 0)) {
      this.budget.release(uid);
      return this.refuse(handler, 'overloaded');
    }
    return new Promise<ScriptOutcome>((resolve) => {
      const c: Call = { id, uid, handler, sent, request, settled: false, resolve, state };
      lane.inflight.add(id, c);
      if (c.request) this.clock.started(c.sent);
    });
  }

  private refuse(handler: HandlerName, status: 'overloaded' | 'suspended'): Promise<ScriptOutcome> {
    const o: ScriptOutcome = { decision: undefined, status, ms: 0 };
    this.o.onCall?.(handler, o);
    return Promise.resolve(o);
  }

  /** Answers with the rules the requests whose answer time is up (`late`); returns when the
   * oldest request still waiting was made, or null. Each lane's calls are in the order they
   * were made: its walk stops at the first request still in its time. */
  private sweep(now: number): number | null {
    let oldest: number | null = null;
    for (const l of this.allLanes()) {
      for (let k = 0; k < l.inflight.size; k++) {
        const c = l.inflight.at(k)!;
        if (!c.request || c.settled) continue;
        if (now - c.sent < this.clock.ms) {
          if (oldest === null || c.sent < oldest) oldest = c.sent;
          break;
        }
        this.settle(c, { decision: undefined, status: 'late', ms: now - c.sent });
      }
    }
    return oldest;
  }

  /** A lane's host answered call id. */
  answered(lane: L, id: number, decision: ScriptOutcome['decision'], status: ScriptStatus, fault?: ScriptFault): void {
    const t = lane.inflight.take(id);
    if (t) this.end(t.p, { decision, status, fault, ms: t.ms }, true);
  }

  /** The call's end: it leaves its user's budget, the user's breaker learns how it went if the
   * call is to blame for it, and the program gets the outcome unless it had its answer. */
  private end(c: Call, o: ScriptOutcome, blame: boolean): void {
    this.budget.release(c.uid);
    if (blame) {
      this.budget.record(c.uid, c.handler, o.status);
      const where = o.fault?.line ? `${this.file}:${o.fault.line}:${o.fault.col ?? 0}` : this.file;
      logFault(this.o.log, where, c.handler, o, this.cutOff);
    }
    this.settle(c, o);
  }

  private settle(c: Call, o: ScriptOutcome): void {
    if (c.settled) return;
    c.settled = true;
    this.o.onCall?.(c.handler, o);
    c.resolve(o);
  }

  /** Replaces lanes that hold calls and have not answered for longer than a call may run
   * while using the CPU all that time: one call is stuck (a built-in the deadline cannot
   * interrupt). A lane that has not answered but has hardly run meanwhile is waiting for a
   * CPU (the machine is busy, the hosts are at nice 19): its requests get the rules' answer
   * when their answer time is up, and it is replaced only after STARVED_MS, blaming no one. */
  protected watch(now = Date.now()): void {
    const limit = this.o.limits.deadlineMs + HANG_GRACE_MS;
    for (const l of this.allLanes()) {
      if (l.restarting || l.inflight.size === 0) continue;
      const since = l.inflight.since;
      if (l.mark.since !== since) {
        l.mark = { since, cpu: l.cpuMs() };
        continue;
      }
      if (!l.inflight.overdue(limit, now)) continue;
      const cpu = l.cpuMs();
      // (the mark is taken up to WATCH_MS after the last answer: the call may have used more)
      if (cpu !== null && l.mark.cpu !== null ? cpu - l.mark.cpu >= limit : l.inflight.overdue(this.o.limits.deadlineMs + HANG_GRACE_CLOCK_MS, now)) void this.hung(l, true);
      else if (l.inflight.overdue(STARVED_MS, now)) {
        this.o.log?.warn({ script: this.file, lane: l.index, ms: now - since }, 'policy script host has not run for long; starting another');
        void this.hung(l, false);
      }
    }
  }

  /** A lane's host died (the call it ran is to blame). */
  lost(lane: L, why: string): void {
    if (this.closed || lane.restarting) return;
    this.o.log?.error({ script: this.file, lane: lane.index, why }, 'policy script host lost; starting another');
    void this.hung(lane, true);
  }

  /** Ends the lane's calls and replaces its host. If blame, the call it was running is to
   * blame (`killed`: its user's breaker trips and the user is moved out); the others never
   * ran: they end `killed` too, but count against no one. */
  private async hung(lane: L, blame: boolean): Promise<void> {
    lane.restarting = true;
    const running = lane.running();
    const calls = lane.inflight.drain();
    const culprit = blame ? calls.find((c) => c.id === running) ?? calls[0] : undefined;
    const now = Date.now();
    for (const c of calls) this.end(c, { decision: undefined, status: 'killed', ms: now - c.sent }, c === culprit);
    this.o.onRestart?.();
    await this.replaceLane(lane);
    lane.restarting = false;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    this.clock.stop();
    const lanes = this.allLanes();
    for (const l of lanes) for (const c of l.inflight.drain()) this.settle(c, { decision: undefined, status: 'fallthrough', ms: 0 });
    await Promise.all(lanes.map((l) => this.stopLane(l)));
  }
}
