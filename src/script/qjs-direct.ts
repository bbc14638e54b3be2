/* The hot call into QuickJS without quickjs-emscripten's handle bookkeeping: one string in,
 * one string out, through the same FFI functions the library's own newString/callFunction/
 * getString use (QTS_NewString, QTS_Call, QTS_ResolveException, QTS_GetString). Per call
 * the library allocates a Lifetime per handle, a fresh argument array in the WebAssembly
 * heap and encodes the string in a JavaScript loop; this reuses one argument array and one
 * string buffer and encodes with TextEncoder.encodeInto: ~5 us less per call on this VM.
 *
 * These are internals of quickjs-emscripten-core, pinned at 0.32.0 in package.json. probe()
 * checks that each is there and returns null otherwise, so that the sandbox falls back to
 * the public API (tests run both paths). */

import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core';

interface Ffi {
  QTS_NewString(ctx: number, str: number): number;
  QTS_Call(ctx: number, fn: number, self: number, argc: number, argv: number): number;
  QTS_ResolveException(ctx: number, value: number): number;
  QTS_GetString(ctx: number, value: number): number;
  QTS_FreeCString(ctx: number, str: number): void;
  QTS_FreeValuePointer(ctx: number, value: number): void;
}
interface Module {
  _malloc(n: number): number;
  _free(p: number): void;
  HEAPU8: Uint8Array;
  UTF8ToString(p: number): string;
}
interface Internals {
  ffi: Ffi;
  module: Module;
  ctx: { value: number };
  memory: { heapValueHandle(p: number): QuickJSHandle };
}

/** What a direct call gives back: the result string, or the exception as a handle (the
 * caller disposes it). */
export type DirectResult = { value: string } | { error: QuickJSHandle };

const encoder = new TextEncoder();

export class DirectCall {
  private buf = 0;
  private cap = 0;
  private readonly argv: number;

  private constructor(private readonly q: Internals, private readonly undef: number) {
    this.argv = q.module._malloc(8);
  }

  /** A direct caller for ctx, or null if this quickjs-emscripten lacks the internals used. */
  static probe(ctx: QuickJSContext): DirectCall | null {
    const q = ctx as unknown as Partial<Internals>;
    const fns = ['QTS_NewString', 'QTS_Call', 'QTS_ResolveException', 'QTS_GetString', 'QTS_FreeCString', 'QTS_FreeValuePointer'] as const;
    if (!q.ffi || !fns.every((f) => typeof q.ffi![f] === 'function')) return null;
    const m = q.module;
    if (!m || typeof m._malloc !== 'function' || typeof m._free !== 'function' || !(m.HEAPU8 instanceof Uint8Array) || typeof m.UTF8ToString !== 'function') return null;
    if (typeof q.ctx?.value !== 'number' || typeof q.memory?.heapValueHandle !== 'function') return null;
    const undef = (ctx.undefined as unknown as { value?: unknown }).value;
    if (typeof undef !== 'number') return null;
    return new DirectCall(q as Internals, undef);
  }

  /** entry(fn, text), where entry returns a string. */
  call(entry: QuickJSHandle, fn: QuickJSHandle, text: string): DirectResult {
    const { ffi, module: m } = this.q;
    const c = this.q.ctx.value;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; grow the buffer when it may not fit.
    const need = text.length * 3 + 1;
    if (need > this.cap) {
      if (this.buf) m._free(this.buf);
      this.cap = Math.max(need, 4096);
      this.buf = m._malloc(this.cap);
      if (!this.buf) throw new Error('QuickJS heap exhausted');
    }
    const heap = m.HEAPU8; // after malloc: the heap may have grown
    const { written } = encoder.encodeInto(text, heap.subarray(this.buf, this.buf + this.cap - 1));
    heap[this.buf + written] = 0;
    const str = ffi.QTS_NewString(c, this.buf);
    const argv = new Int32Array(m.HEAPU8.buffer, this.argv, 2); // the heap may have grown again
    argv[0] = (fn as unknown as { value: number }).value;
    argv[1] = str;
    const res = ffi.QTS_Call(c, (entry as unknown as { value: number }).value, this.undef, 2, this.argv);
    ffi.QTS_FreeValuePointer(c, str);
    const err = ffi.QTS_ResolveException(c, res);
    if (err) {
      ffi.QTS_FreeValuePointer(c, res);
      return { error: this.q.memory.heapValueHandle(err) };
    }
    const cs = ffi.QTS_GetString(c, res);
    const value = m.UTF8ToString(cs);
    ffi.QTS_FreeCString(c, cs);
    ffi.QTS_FreeValuePointer(c, res);
    return { value };
  }

  dispose(): void {
    const m = this.q.module;
    if (this.buf) m._free(this.buf);
    m._free(this.argv);
  }
}
