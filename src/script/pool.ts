/* The daemon's side of JavaScript policies: a few worker threads, each running the script in
 * its own QuickJS runtime, so the event loop never runs policy code. Each worker is a lane of
 * host.ts: calls are routed by user (uid), so module-level state keyed by user stays in one
 * place, each user keeps to a budget, and a worker that does not answer long after its
 * deadline (a built-in call the interrupt handler cannot stop) is terminated and replaced;
 * the call it was running is blamed, its user moved to a worker of their own. */

import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { QosError } from '../errors.js';
import type { Decision } from '../policy/engine.js';
import { DEFAULT_LIMITS, HANDLERS, NO_STATE, type HandlerName, type ScriptFault, type StateSource } from './js-sandbox.js';
import { ReplyKind, STATE_ANSWERED, STATE_RUNNING, type StateAnswer, type StateQuestion, type WorkerInit, type WorkerLinks, type WorkerStatus } from './js-worker.js';
import { Ring } from './ring.js';
import { cpuMs, threadStat } from './cpu.js';
import { Lane, ScriptHostBase, type HostOptions, type ScriptOutcome } from './host.js';

export { HANG_GRACE_MS, type ScriptOutcome, type ScriptStatus } from './host.js';

export interface PoolOptions extends HostOptions {
  workers: number;
  /** false: workers call QuickJS through its public API only (tests) */
  direct?: boolean;
}

/** Request ring size (events are a few hundred bytes); replies are smaller. */
const RING_BYTES = 4 * 2 ** 20;
const REPLY_RING_BYTES = 2 * 2 ** 20;
/** Callers a worker keeps at most (a process's identity is renewed every few seconds). */
const MAX_CALLERS = 4096;
/** Event-loop turns the answer pump polls, finding nothing, before it sleeps (see pump). */
const POLL_TURNS = 8;
const nextTurn = () => new Promise<void>((r) => setImmediate(r));
const decisions = new Map<string, Decision | null>();
/** A worker's decision text as an object: the same few come back over and over, and
 * decisions are never modified once made, so each text is parsed once. */
function decisionOf(text: string): Decision | null {
  let d = decisions.get(text);
  if (d === undefined) {
    d = JSON.parse(text) as Decision | null;
    if (decisions.size >= 256) decisions.clear();
    decisions.set(text, d);
  }
  return d;
}

/** Who is calling, as the script sees it: sent to a worker once per key (an identity). */
export interface Caller { key: object; json(): string }

class Slot extends Lane {
  worker!: Worker;
  /** the pool closed: answers are no longer read */
  private stopped = false;
  private calls!: Ring;
  private replies!: Ring;
  /** callers this worker keeps (see eventOf in prelude.ts), by serial */
  private readonly callers = new Map<object, number>();
  private serial = 0;
  private statePort!: MessagePort;
  /** [STATE_ANSWERED]: a state answer was posted; [STATE_RUNNING]: the call the worker runs */
  private stateFlag!: Int32Array;
  /** the worker's thread, for its CPU time */
  private stat: string | null = null;
  constructor(private readonly pool: ScriptPool, index: number, movedOut: boolean) {
    super(index, movedOut);
  }

  async spawn(init: WorkerInit): Promise<WorkerStatus> {
    const calls = new Ring(RING_BYTES), replies = new Ring(REPLY_RING_BYTES);
    const previous = this.replies;
    this.callers.clear();
    this.calls = calls;
    this.replies = replies;
    const { port1, port2 } = new MessageChannel();
    this.statePort = port1;
    this.stateFlag = new Int32Array(new SharedArrayBuffer(8));
    const links: WorkerLinks = { calls: calls.sab, replies: replies.sab, statePort: port2, stateFlag: this.stateFlag.buffer as SharedArrayBuffer };
    const w = new Worker(new URL('./js-worker.js', import.meta.url), { workerData: { ...init, ...links }, transferList: [port2], resourceLimits: { maxOldGenerationSizeMb: 256 } });
    this.worker = w;
    previous?.wake(); // ends the replaced worker's pump
    const status = await new Promise<WorkerStatus>((resolve) => {
      w.once('message', (m: WorkerStatus) => resolve(m));
      w.once('error', (e) => resolve({ ready: false, fault: { message: `worker failed: ${e.message}` } }));
    });
    if (!status.ready) { await w.terminate(); port1.close(); return status; }
    this.stat = status.tid ? threadStat(status.tid) : null;
    w.on('message', (m: StateQuestion) => this.answerState(m.state, m.full));
    w.on('error', (e) => this.pool.lost(this, `worker error: ${e.message}`));
    w.on('exit', () => { if (this.worker === w) this.pool.lost(this, 'worker exited'); });
    this.inflight.restarted();
    void this.pump(w, replies);
    return status;
  }

  running(): number {
    return Atomics.load(this.stateFlag, STATE_RUNNING);
  }

  cpuMs(): number | null {
    return this.stat ? cpuMs(this.stat) : null;
  }

  /** Reads the worker's answers as they come, until the worker is replaced or closed. While
   * calls are in flight it looks at the ring once every event-loop turn (up to POLL_TURNS
   * turns finding nothing) instead of sleeping on it: a sleeping reader must be woken, which
   * costs the worker a system call and the loop a task of its own, and under load the loop
   * turns anyway. Measured with 32 scripted clients: 6-9 % more decisions per second, 4 us
   * less event-loop CPU per Socket+Connect pair (A/B, alternating windows). */
  private async pump(w: Worker, replies: Ring): Promise<void> {
    const take = (id: number, kind: number, text: string) => this.reply(id, kind, text);
    let empty = 0;
    while (this.worker === w && !this.stopped) {
      const seq = replies.seq;
      const n = replies.read(take);
      if (this.inflight.size > 0 && (n > 0 || empty < POLL_TURNS)) {
        empty = n > 0 ? 0 : empty + 1;
        await nextTurn();
        continue;
      }
      empty = 0;
      await replies.waitAsync(seq);
    }
  }

  /** Stops reading answers (the pool closes). */
  stop(): void {
    this.stopped = true;
    this.replies?.wake();
  }

  private reply(id: number, kind: number, text: string): void {
    if (kind === ReplyKind.Decided) {
      const decision = text === '' ? undefined : decisionOf(text);
      this.pool.answered(this, id, decision, decision === undefined ? 'fallthrough' : 'decided');
    } else if (kind === ReplyKind.Late) this.pool.answered(this, id, undefined, 'late');
    else this.pool.answered(this, id, undefined, kind === ReplyKind.TimedOut ? 'timeout' : 'error', JSON.parse(text) as ScriptFault);
  }

  /** A handler asked for its machine state. Its answers to earlier calls are read first,
   * and the state computed once their decisions are recorded (after the promise callbacks
   * they start), so it counts every decision made before this call. */
  private answerState(id: number, full: boolean): void {
    this.replies.read((i, kind, text) => this.reply(i, kind, text));
    setImmediate(() => {
      const p = this.inflight.get(id);
      // a daemon that cannot compute it says so: the handler's qos call throws, the rules
      // decide (an empty state would tell a quota script the user holds nothing)
      let a: StateAnswer;
      try { a = { id, json: (p?.state ?? NO_STATE)(full) }; } catch (e) { a = { id, error: `the daemon could not give the machine state: ${(e as Error).message}` }; }
      this.statePort.postMessage(a);
      Atomics.store(this.stateFlag, STATE_ANSWERED, 1);
      Atomics.notify(this.stateFlag, STATE_ANSWERED);
    });
  }

  /** Hands a call to the worker through the shared ring as a record [serial, caller, facts]
   * (eventOf in prelude.ts), tagged with the uid the worker takes turns by and the time its
   * answer time is up (by, 0 for none): a caller goes once, then by serial. False if the
   * ring is full. */
  post(id: number, handler: HandlerName, facts: string, caller: Caller | null, uid: number, by: number): boolean {
    const kind = HANDLERS.indexOf(handler);
    if (!caller) return this.calls.push(id, kind, `[0,null,${facts}]`, true, uid, by);
    const known = this.callers.get(caller.key);
    if (known !== undefined) return this.calls.push(id, kind, `[${known},null,${facts}]`, true, uid, by);
    let reset = false;
    if (this.callers.size >= MAX_CALLERS || this.serial >= 0x3fffffff) {
      this.callers.clear();
      this.serial = 0;
      reset = true;
    }
    const serial = ++this.serial;
    if (!this.calls.push(id, kind, `[${reset ? -serial : serial},${caller.json()},${facts}]`, true, uid, by)) return false;
    this.callers.set(caller.key, serial);
    return true;
  }
}

export class ScriptPool extends ScriptHostBase<Slot> {
  /** whether workers call QuickJS directly (qjs-direct.ts) */
  direct = false;

  private constructor(private readonly init: WorkerInit, o: PoolOptions) {
    super(init.file, o, 'worker replaced');
  }

  /** Starts the workers; throws QOS_ERR_POLICY_INVALID (with line and column) if the script
   * does not compile or its top level fails. */
  static async start(source: string, file: string, o: Partial<PoolOptions> = {}): Promise<ScriptPool> {
    const opts: PoolOptions = { workers: o.workers ?? 2, limits: o.limits ?? DEFAULT_LIMITS, direct: o.direct, log: o.log, onCall: o.onCall, onRestart: o.onRestart };
    const pool = new ScriptPool({ source, file, limits: opts.limits, direct: opts.direct }, opts);
    const statuses = await Promise.all(Array.from({ length: Math.max(1, opts.workers) }, (_, i) => {
      const s = new Slot(pool, i, false);
      pool.lanes.push(s);
      return s.spawn(pool.init);
    }));
    const bad = statuses.find((s): s is Extract<WorkerStatus, { ready: false }> => !s.ready);
    if (bad) {
      await pool.close();
      throw new QosError('QOS_ERR_POLICY_INVALID', `${file}: ${bad.fault.message}`, [{ file, line: bad.fault.line, col: bad.fault.col, message: bad.fault.message }]);
    }
    const ready = statuses[0] as Extract<WorkerStatus, { ready: true }>;
    pool.handlers = new Set(ready.handlers);
    pool.direct = ready.direct;
    return pool;
  }

  /** The daemon's entry (decide.ts ScriptHost): the call's facts and caller, and the machine
   * state should the handler read it. */
  decide(handler: HandlerName, uid: number, req: { facts(): string; state(full: boolean): string; caller: Caller }): Promise<ScriptOutcome> {
    return this.call(handler, uid, req.facts(), (full) => req.state(full), req.caller);
  }

  /** Runs handler for a caller (routed by uid) on facts: a JSON array in eventOf's order, or
   * the event as a JSON object. Never rejects. */
  call(handler: HandlerName, uid: number, facts: string, state: StateSource = NO_STATE, caller: Caller | null = null): Promise<ScriptOutcome> {
    return this.submit(handler, uid, state, (slot, id, by) => slot.post(id, handler, facts, caller, uid, by));
  }

  protected openLane(index: number): Slot {
    const s = new Slot(this, index, true);
    s.restarting = true;
    void s.spawn(this.init).then((st) => {
      s.restarting = false;
      if (!st.ready) this.o.log?.error({ script: this.init.file, error: st.fault.message }, 'policy script worker for users moved out could not start');
    });
    return s;
  }

  protected async replaceLane(s: Slot): Promise<void> {
    const old = s.worker;
    const respawn = s.spawn(this.init);
    void old.terminate();
    const st = await respawn;
    if (!st.ready) this.o.log?.error({ script: this.init.file, error: st.fault.message }, 'policy script worker could not restart');
  }

  protected async stopLane(s: Slot): Promise<void> {
    s.stop();
    await s.worker?.terminate();
  }
}
