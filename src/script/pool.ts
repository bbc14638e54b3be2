/* The daemon's side of JavaScript policies: a few worker threads, each running the script in
 * its own QuickJS runtime, so the event loop never runs policy code. Calls are routed by
 * user (uid), so module-level state keyed by user stays in one place. A worker that does not
 * answer long after its deadline (a built-in call the interrupt handler cannot stop) is
 * terminated and replaced; its calls in flight fall through to the rules. */

import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import type { Decision } from '../protocol/messages.js';
import { DEFAULT_LIMITS, HANDLERS, type HandlerName, type SandboxLimits, type ScriptFault } from './js-sandbox.js';
import { RECORD_HEADER, RING_HEADER, type CallReply, type CallRequest, type WorkerInit, type WorkerStatus } from './js-worker.js';

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
/** The shared request ring of one worker: calls are written here and the worker is woken
 * with Atomics.notify (a postMessage round trip cost ~140 us on this VM, an Atomics one ~20).
 * Layout: Int32 seq (bumped per write: the worker waits on it), head (bytes written, by us),
 * tail (bytes consumed, by the worker), then the data; each record is id (u32, never 0),
 * handler index (u8), length (u32) and the JSON. A record never wraps: an id of 0, or too
 * little room for a header, sends the reader back to the start. */
export class RequestRing {
  readonly sab: SharedArrayBuffer;
  private readonly hdr: Int32Array;
  private readonly data: Buffer;
  private readonly size: number;
  constructor(size: number) {
    this.size = size; // a power of two
    this.sab = new SharedArrayBuffer(RING_HEADER + size);
    this.hdr = new Int32Array(this.sab, 0, 4);
    this.data = Buffer.from(this.sab, RING_HEADER, size);
  }

  push(req: CallRequest): boolean {
    const len = Buffer.byteLength(req.json);
    const need = RECORD_HEADER + len;
    let head = this.hdr[1]!;
    const used = (head - Atomics.load(this.hdr, 2)) | 0;
    let pos = head & (this.size - 1);
    const skip = this.size - pos < need ? this.size - pos : 0;
    if (used + skip + need > this.size) return false;
    if (skip) {
      if (skip >= RECORD_HEADER) this.data.writeUInt32LE(0, pos);
      head = (head + skip) | 0;
      pos = 0;
    }
    this.data.writeUInt32LE(req.id, pos);
    this.data[pos + 4] = HANDLERS.indexOf(req.handler);
    this.data.writeUInt32LE(len, pos + 5);
    this.data.write(req.json, pos + RECORD_HEADER, 'utf8');
    Atomics.store(this.hdr, 1, (head + need) | 0);
    Atomics.add(this.hdr, 0, 1);
    Atomics.notify(this.hdr, 0, 1);
    return true;
  }
}

const RING_BYTES = 4 * 2 ** 20;
/** Calls queued on one worker (or the Tcl child) beyond which new ones fall through at once. */
export const MAX_QUEUE = 1000;
/** How long past its deadline a call may run before its worker is replaced. */
export const HANG_GRACE_MS = 250;

/** Logs a call that faulted, overran or was cut off (both script hosts). */
export function logFault(log: Logger | undefined, where: string, handler: HandlerName, o: ScriptOutcome, cutOff: string): void {
  if (o.status !== 'error' && o.status !== 'timeout' && o.status !== 'killed') return;
  const what = o.status === 'error' ? 'failed' : o.status === 'timeout' ? 'overran its deadline' : `hung: ${cutOff}`;
  log?.warn({ script: where, handler, status: o.status, ms: o.ms, error: o.fault?.message }, `policy script ${handler} ${what}; the rules decide`);
}

interface Pending { resolve: (o: ScriptOutcome) => void; handler: HandlerName; sent: number }

class Slot {
  worker!: Worker;
  readonly inflight = new Map<number, Pending>();
  /** when the call at the head of the queue started running */
  headStart = 0;
  /** a replacement worker is starting */
  restarting = false;
  private ring!: RequestRing;
  constructor(private readonly pool: ScriptPool, readonly index: number) {}

  async spawn(init: WorkerInit): Promise<WorkerStatus> {
    this.ring = new RequestRing(RING_BYTES);
    const w = new Worker(new URL('./js-worker.js', import.meta.url), { workerData: { ...init, ring: this.ring.sab }, resourceLimits: { maxOldGenerationSizeMb: 256 } });
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

  /** Hands a call to the worker through the shared ring; false if the ring is full. */
  post(req: CallRequest): boolean {
    return this.ring.push(req);
  }

  /** Ends every call in flight (the worker is gone): they fall through to the rules. */
  abandon(status: ScriptStatus): void {
    const now = Date.now();
    for (const p of this.inflight.values()) p.resolve({ decision: undefined, status, ms: now - p.sent });
    this.inflight.clear();
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
    const id = this.nextId;
    this.nextId = (this.nextId % 0xfffffffe) + 1; // never 0: the ring's wrap marker
    return new Promise<ScriptOutcome>((resolve) => {
      const sent = Date.now();
      if (slot.inflight.size === 0) slot.headStart = sent;
      const done = (o: ScriptOutcome) => { this.report(handler, o); resolve(o); };
      if (!slot.post({ id, handler, json })) { done({ decision: undefined, status: 'overloaded', ms: 0 }); return; }
      slot.inflight.set(id, { resolve: done, handler, sent });
    });
  }

  private report(handler: HandlerName, o: ScriptOutcome): void {
    this.o.onCall?.(handler, o);
    const where = o.fault?.line ? `${this.init.file}:${o.fault.line}:${o.fault.col ?? 0}` : this.init.file;
    logFault(this.o.log, where, handler, o, 'worker replaced');
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
