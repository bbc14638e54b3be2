/* One JavaScript policy script in its own QuickJS runtime (WebAssembly): no file, network,
 * process or timer access exists in it, memory and stack are capped, and every call runs
 * under a deadline enforced by the interrupt handler. Used inside a worker thread (pool.ts)
 * and by `qos policy check` to compile a script. */

import { newQuickJSWASMModuleFromVariant, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSSyncVariant, type QuickJSWASMModule } from 'quickjs-emscripten-core';
import variant from '@jitl/quickjs-wasmfile-release-sync';
import { PRELUDE } from './prelude.js';

/** The handlers a script may export, named after the agent's messages. */
export const HANDLERS = ['Socket', 'Connect', 'Bind', 'Listen', 'Accept', 'SendTo', 'Close', 'Shutdown', 'Startup', 'Cleanup'] as const;
export type HandlerName = (typeof HANDLERS)[number];

export interface SandboxLimits {
  /** per call */
  deadlineMs: number;
  memoryBytes: number;
  stackBytes: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { deadlineMs: 10, memoryBytes: 32 * 2 ** 20, stackBytes: 512 * 1024 };

/** A script error with its place in the script, from QuickJS's stack ("at f (policy.js:3:7)"). */
export interface ScriptFault {
  message: string;
  line?: number;
  col?: number;
}

export type CallResult =
  | { ok: true; json: string | undefined }
  | { ok: false; timedOut: boolean; fault: ScriptFault };

const NO_STATE = '{"flows":[],"loadavg":[0,0,0]}';

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
  private constructor(
    private readonly rt: QuickJSRuntime,
    private readonly ctx: QuickJSContext,
    private readonly fns: Map<HandlerName, QuickJSHandle>,
    private readonly entry: QuickJSHandle,
    readonly file: string,
    private readonly limits: SandboxLimits,
  ) {
    rt.setInterruptHandler(() => Date.now() > this.deadline);
  }

  /** Compiles and runs the module (its top level under a deadline of its own). */
  static async create(source: string, file: string, limits: SandboxLimits = DEFAULT_LIMITS): Promise<JsSandbox | ScriptFault> {
    const rt = (await quickjs()).newRuntime();
    rt.setMemoryLimit(limits.memoryBytes);
    rt.setMaxStackSize(limits.stackBytes);
    const ctx = rt.newContext();
    const fail = (f: ScriptFault) => { ctx.dispose(); rt.dispose(); return f; };
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
    return new JsSandbox(rt, ctx, fns, entry, file, limits);
  }

  get handlers(): HandlerName[] {
    return [...this.fns.keys()];
  }

  /** Calls a handler; json is the event's JSON, a newline, and the machine state's JSON.
   * Returns the handler's result as JSON. */
  call(name: HandlerName, json: string): CallResult {
    const fn = this.fns.get(name);
    if (!fn) return { ok: true, json: undefined };
    const { ctx } = this;
    const nl = json.indexOf('\n');
    const ev = ctx.newString(nl < 0 ? json : json.slice(0, nl));
    const st = ctx.newString(nl < 0 ? NO_STATE : json.slice(nl + 1));
    this.deadline = Date.now() + this.limits.deadlineMs;
    const r = ctx.callFunction(this.entry, ctx.undefined, fn, ev, st);
    ev.dispose();
    st.dispose();
    const late = Date.now() > this.deadline;
    if (r.error) {
      const f = fault(ctx, r.error, this.file);
      return { ok: false, timedOut: late && /interrupted/.test(f.message), fault: f };
    }
    const v = ctx.typeof(r.value) === 'string' ? ctx.getString(r.value) : undefined;
    r.value.dispose();
    return { ok: true, json: v };
  }

  dispose(): void {
    for (const f of this.fns.values()) f.dispose();
    this.entry.dispose();
    this.ctx.dispose();
    this.rt.dispose();
  }
}
