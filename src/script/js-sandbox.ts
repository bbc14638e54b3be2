/* One JavaScript policy script in its own QuickJS runtime (WebAssembly): no file, network,
 * process or timer access exists in it, memory and stack are capped, and every call runs
 * under a deadline enforced by the interrupt handler. Used inside a worker thread (pool.ts)
 * and by `qos policy check` to compile a script. */

import { newQuickJSWASMModuleFromVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSSyncVariant, type QuickJSWASMModule } from 'quickjs-emscripten-core';
import variant from '@jitl/quickjs-wasmfile-release-sync';
import { PRELUDE } from './prelude.js';
import { DirectCall } from './qjs-direct.js';

/** The handlers a script may export, named after the agent's messages. */
export const HANDLERS = ['Socket', 'Connect', 'Bind', 'Listen', 'Accept', 'SendTo', 'Close', 'Shutdown', 'Startup', 'Cleanup'] as const;
export type HandlerName = (typeof HANDLERS)[number];

export interface SandboxLimits {
  /** per call */
  deadlineMs: number;
  memoryBytes: number;
  stackBytes: number;
  /** How long a handler may wait for the machine state (qos.flows()); not counted against
   * its deadline, which is for its own work. */
  stateWaitMs: number;
  /** The daemon's side: how long a program's request waits for the script, queueing
   * included, before the rules answer it (`late`); below the agent's 50 ms timeout. */
  answerMs: number;
  /** Nice value of the script's threads and processes (null: the daemon's own). 19 by
   * default: policy code only gets CPU nobody else wants, so a script spinning to its
   * deadline on every core does not slow the daemon or the programs. */
  nice: number | null;
}

export const DEFAULT_LIMITS: SandboxLimits = { deadlineMs: 10, memoryBytes: 32 * 2 ** 20, stackBytes: 512 * 1024, stateWaitMs: 200, answerMs: 30, nice: 19 };

/** A script error with its place in the script, from QuickJS's stack ("at f (policy.js:3:7)"). */
export interface ScriptFault {
  message: string;
  line?: number;
  col?: number;
}

export type CallResult =
  | { ok: true; json: string | undefined }
  | { ok: false; timedOut: boolean; fault: ScriptFault };

/** The machine state of a caller as JSON, asked for only when a handler reads it: with full,
 * the caller's flows (`{"flows":[...]}`: qos.flows()); without, how many they have, in all
 * and by class, and the load averages (`{"count":n,"classes":{...},"loadavg":[...]}`:
 * qos.count(), qos.classes(), qos.loadavg()). It may throw (the daemon did not answer in
 * time, or could not). */
export type StateSource = (full: boolean) => string;
export const NO_STATE: StateSource = (full) => (full ? '{"flows":[]}' : '{"count":0,"classes":{},"loadavg":[0,0,0]}');

let engine: Promise<QuickJSWASMModule> | null = null;
function quickjs(): Promise<QuickJSWASMModule> {
  // The package's CommonJS typings describe its default export as the module namespace.
  return (engine ??= newQuickJSWASMModuleFromVariant(variant as unknown as QuickJSSyncVariant));
}

function fault(ctx: QuickJSContext, h: QuickJSHandle, file: string): ScriptFault {
  const e = ctx.dump(h) as { name?: string; message?: string; stack?: string; lineNumber?: number } | string;
  h.dispose();
  if (typeof e !== 'object' || e === null) return { message: `threw ${JSON.stringify(e)}` };
  const message = `${e.name ?? 'Error'}: ${e.message ?? ''}`;
  const at = new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+):(\\d+)`).exec(e.stack ?? '');
  if (at) return { message, line: Number(at[1]), col: Number(at[2]) };
  return e.lineNumber !== undefined ? { message, line: e.lineNumber } : { message };
}

export class JsSandbox {
  private deadline = 0;
  /** Moves the running call's deadline by ms (time it spent waiting for the daemon). */
  extendDeadline(ms: number): void {
    this.deadline += ms;
  }
  /** the running call's machine state (see StateSource) */
  state: StateSource = NO_STATE;
  private constructor(
    private readonly rt: QuickJSRuntime,
    private readonly ctx: QuickJSContext,
    private readonly fns: Map<HandlerName, QuickJSHandle>,
    private readonly entry: QuickJSHandle,
    readonly file: string,
    private readonly limits: SandboxLimits,
    private readonly direct: DirectCall | null,
  ) {
    rt.setInterruptHandler(() => Date.now() > this.deadline);
  }

  /** Compiles and runs the module (its top level under a deadline of its own). */
  static async create(source: string, file: string, limits: SandboxLimits = DEFAULT_LIMITS, opts: { direct?: boolean } = {}): Promise<JsSandbox | ScriptFault> {
    const rt = (await quickjs()).newRuntime();
    rt.setMemoryLimit(limits.memoryBytes);
    rt.setMaxStackSize(limits.stackBytes);
    const ctx = rt.newContext();
    const fail = (f: ScriptFault) => { ctx.dispose(); rt.dispose(); return f; };
    // The prelude's only way out of the sandbox: the running call's machine state, as text.
    let self: JsSandbox | null = null;
    const stateFn = ctx.newFunction('__qos_state', (full) => ctx.newString((self?.state ?? NO_STATE)(ctx.dump(full) === true)));
    ctx.setProp(ctx.global, '__qos_state', stateFn);
    stateFn.dispose();
    // The prelude and the module's top level run once: they get a second (wall time; the
    // worker runs at a low priority and may wait for the CPU).
    const INIT_MS = Math.max(limits.deadlineMs, 1000);
    let deadline = Date.now() + INIT_MS;
    rt.setInterruptHandler(() => Date.now() > deadline);
    const pre = ctx.evalCode(PRELUDE, '<qos prelude>');
    if (pre.error) return fail(fault(ctx, pre.error, '<qos prelude>'));
    pre.value.dispose();
    deadline = Date.now() + INIT_MS;
    const mod = ctx.evalCode(source, file, { type: 'module' });
    if (mod.error) return fail(fault(ctx, mod.error, file));
    const fns = new Map<HandlerName, QuickJSHandle>();
    for (const name of HANDLERS) {
      const f = ctx.getProp(mod.value, name);
      if (ctx.typeof(f) === 'function') fns.set(name, f);
      else f.dispose();
    }
    mod.value.dispose();
    const entry = ctx.getProp(ctx.global, '__qos_call');
    self = new JsSandbox(rt, ctx, fns, entry, file, limits, opts.direct === false ? null : DirectCall.probe(ctx));
    return self;
  }

  get handlers(): HandlerName[] {
    return [...this.fns.keys()];
  }

  /** Whether calls take the direct path into QuickJS (qjs-direct.ts). */
  get directCalls(): boolean {
    return this.direct !== null;
  }

  /** Calls a handler with a call record (JSON text: see eventOf in prelude.ts); state is asked
   * for only if the handler reads the machine state. Returns the handler's result as JSON
   * (undefined: it returned nothing). */
  call(name: HandlerName, record: string, state: StateSource = NO_STATE): CallResult {
    const fn = this.fns.get(name);
    if (!fn) return { ok: true, json: undefined };
    const { ctx } = this;
    this.state = state;
    this.deadline = Date.now() + this.limits.deadlineMs;
    let out: { value: string } | { error: QuickJSHandle };
    if (this.direct) out = this.direct.call(this.entry, fn, record);
    else {
      const arg = ctx.newString(record);
      const r = ctx.callFunction(this.entry, ctx.undefined, fn, arg);
      arg.dispose();
      if (r.error) out = { error: r.error };
      else {
        out = { value: ctx.typeof(r.value) === 'string' ? ctx.getString(r.value) : '' };
        r.value.dispose();
      }
    }
    this.state = NO_STATE;
    const late = Date.now() > this.deadline;
    if ('error' in out) {
      const f = fault(ctx, out.error, this.file);
      return { ok: false, timedOut: late && /interrupted/.test(f.message), fault: f };
    }
    return { ok: true, json: out.value === '' ? undefined : out.value };
  }

  dispose(): void {
    this.direct?.dispose();
    for (const f of this.fns.values()) f.dispose();
    this.entry.dispose();
    this.ctx.dispose();
    this.rt.dispose();
  }
}
