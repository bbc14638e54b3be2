/* The daemon's side of JavaScript policies: a few worker threads, each running the script in
 * its own QuickJS runtime, so the event loop never runs policy code. Calls are routed by
 * user (uid), so module-level state keyed by user stays in one place. A worker that does not
 * answer long after its deadline (a built-in call the interrupt handler cannot stop) is
 * terminated and replaced; its calls in flight fall through to the rules. */

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import type { Decision } from '../protocol/messages.js';
import { DEFAULT_LIMITS, type HandlerName, type SandboxLimits, type ScriptFault } from './js-sandbox.js';
import type { CallReply, CallRequest, WorkerInit, WorkerStatus } from './js-worker.js';

export type ScriptStatus = 'decided' | 'fallthrough' | 'error' | 'timeout' | 'killed' | 'overloaded';

export interface ScriptOutcome {
  /** undefined: the rules decide */
  decision: Decision | null | undefined;
  status: ScriptStatus;
  fault?: ScriptFault;
  ms: number;
}

export interface PoolOptions {
  workers: number;
  limits: SandboxLimits;
  log?: Logger;
  /** called for every finished call (metrics) */
  onCall?: (handler: HandlerName, o: ScriptOutcome) => void;
  onRestart?: () => void;
}

/** Nice value of policy-script threads and processes. */
export const SCRIPT_NICE = 19;
/** Calls queued on one worker beyond which new ones fall through at once. */
const MAX_QUEUE = 1000;
/** How long past its deadline a call may run before its worker is replaced. */
const HANG_GRACE_MS = 250;

interface Pending { resolve: (o: ScriptOutcome) => void; handler: HandlerName; sent: number }

class Slot {
  worker!: Worker;
  readonly inflight = new Map<number, Pending>();
  /** when the call at the head of the queue started running */
  headStart = 0;
  /** a replacement worker is starting */
  restarting = false;
  /** calls not yet posted: sent together once per event-loop turn */
  private outbox: CallRequest[] = [];
  private flushing = false;
  constructor(private readonly pool: ScriptPool, readonly index: number) {}

  async spawn(init: WorkerInit): Promise<WorkerStatus> {
    const w = new Worker(new URL('./js-worker.js', import.meta.url), { workerData: init, resourceLimits: { maxOldGenerationSizeMb: 256 } });
    this.worker = w;
    const status = await new Promise<WorkerStatus>((resolve) => {
      w.once('message', (m: WorkerStatus) => resolve(m));
      w.once('error', (e) => resolve({ ready: false, fault: { message: `worker failed: ${e.message}` } }));
    });
    if (!status.ready) { await w.terminate(); return status; }
    w.on('message', (rs: CallReply[]) => { for (const r of rs) this.reply(r); });
    w.on('error', (e) => this.pool.lost(this, `worker error: ${e.message}`));
    w.on('exit', () => { if (this.worker === w) this.pool.lost(this, 'worker exited'); });
    this.headStart = Date.now();
    return status;
  }

  private reply(r: CallReply): void {
    const p = this.inflight.get(r.id);
    if (!p) return;
    this.inflight.delete(r.id);
    const now = Date.now();
    this.headStart = now;
    const ms = now - p.sent;
    if (r.ok) p.resolve({ decision: r.decision, status: r.decision === undefined ? 'fallthrough' : 'decided', ms });
    else p.resolve({ decision: undefined, status: r.timedOut ? 'timeout' : 'error', fault: r.fault, ms });
  }

  /** Queues a call; all calls of this event-loop turn go to the worker in one message (one
   * wake-up of the worker thread costs ~300 us on this VM; per call that capped throughput). */
  post(req: CallRequest): void {
    this.outbox.push(req);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      const batch = this.outbox;
      this.outbox = [];
      if (batch.length) this.worker.postMessage(batch);
    });
  }

  /** Ends every call in flight (the worker is gone): they fall through to the rules. */
  abandon(status: ScriptStatus): void {
    const now = Date.now();
    for (const p of this.inflight.values()) p.resolve({ decision: undefined, status, ms: now - p.sent });
    this.inflight.clear();
    this.outbox = [];
  }
}

export class ScriptPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private watchdog: NodeJS.Timeout | null = null;
  private closed = false;
  handlers: ReadonlySet<HandlerName> = new Set();

  private constructor(private readonly init: WorkerInit, private readonly o: PoolOptions) {}

  get file(): string {
    return this.init.file;
  }

  /** Starts the workers; throws QOS_ERR_POLICY_INVALID (with line and column) if the script
   * does not compile or its top level fails. */
  static async start(source: string, file: string, o: Partial<PoolOptions> = {}): Promise<ScriptPool> {
    const opts: PoolOptions = { workers: o.workers ?? 2, limits: o.limits ?? DEFAULT_LIMITS, log: o.log, onCall: o.onCall, onRestart: o.onRestart };
    // Workers run at the lowest priority: policy code only gets CPU nobody else wants, so a
    // script spinning to its deadline on every core does not slow the daemon or the programs.
    const pool = new ScriptPool({ source, file, limits: opts.limits, nice: SCRIPT_NICE }, opts);
    const statuses = await Promise.all(Array.from({ length: Math.max(1, opts.workers) }, (_, i) => {
      const s = new Slot(pool, i);
      pool.slots.push(s);
      return s.spawn(pool.init);
    }));
    const bad = statuses.find((s): s is Extract<WorkerStatus, { ready: false }> => !s.ready);
    if (bad) {
      await pool.close();
      throw new QosError('QOS_ERR_POLICY_INVALID', `${file}: ${bad.fault.message}`, [{ file, line: bad.fault.line, col: bad.fault.col, message: bad.fault.message }]);
    }
    pool.handlers = new Set((statuses[0] as { handlers: HandlerName[] }).handlers);
    pool.watchdog = setInterval(() => pool.watch(), 50);
    pool.watchdog.unref();
    return pool;
  }

  /** The daemon's entry (decide.ts ScriptHost): the handler's argument as JSON. */
  decide(handler: HandlerName, uid: number, req: { json(): string }): Promise<ScriptOutcome> {
    return this.call(handler, uid, req.json());
  }

  /** Runs handler for a caller (routed by uid); never rejects. */
  call(handler: HandlerName, uid: number, json: string): Promise<ScriptOutcome> {
    const slot = this.slots[uid % this.slots.length]!;
    if (this.closed || slot.inflight.size >= MAX_QUEUE) {
      const o: ScriptOutcome = { decision: undefined, status: 'overloaded', ms: 0 };
      this.o.onCall?.(handler, o);
      return Promise.resolve(o);
    }
    const id = this.nextId++;
    return new Promise<ScriptOutcome>((resolve) => {
      const sent = Date.now();
      if (slot.inflight.size === 0) slot.headStart = sent;
      slot.inflight.set(id, { resolve: (o) => { this.report(handler, o); resolve(o); }, handler, sent });
      slot.post({ id, handler, json });
    });
  }

  private report(handler: HandlerName, o: ScriptOutcome): void {
    this.o.onCall?.(handler, o);
    if (o.status === 'error' || o.status === 'timeout' || o.status === 'killed') {
      const where = o.fault?.line ? `${this.init.file}:${o.fault.line}:${o.fault.col ?? 0}` : this.init.file;
      this.o.log?.warn({ script: where, handler, status: o.status, ms: o.ms, error: o.fault?.message }, `policy script ${handler} ${o.status === 'error' ? 'failed' : o.status === 'timeout' ? 'overran its deadline' : 'hung: worker replaced'}; the rules decide`);
    }
  }

  /** Replaces workers whose head call runs far past its deadline. */
  private watch(): void {
    const limit = this.o.limits.deadlineMs + HANG_GRACE_MS;
    const now = Date.now();
    for (const s of this.slots) {
      if (!s.restarting && s.inflight.size && now - s.headStart > limit) void this.replace(s, 'killed');
    }
  }

  /** A worker died or hung: its calls fall through, a fresh one takes its place. */
  lost(s: Slot, why: string): void {
    if (this.closed || s.restarting) return;
    this.o.log?.error({ script: this.init.file, worker: s.index, why }, 'policy script worker lost; starting another');
    void this.replace(s, 'killed');
  }

  private async replace(s: Slot, status: ScriptStatus): Promise<void> {
    const old = s.worker;
    s.restarting = true;
    s.abandon(status);
    this.o.onRestart?.();
    const respawn = s.spawn(this.init);
    void old.terminate();
    const st = await respawn;
    s.restarting = false;
    if (!st.ready) this.o.log?.error({ script: this.init.file, error: st.fault.message }, 'policy script worker could not restart');
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    for (const s of this.slots) s.abandon('fallthrough');
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
  }
}
