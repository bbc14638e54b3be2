/* Loading a policy without stopping the daemon: the file is read, parsed, validated and
 * compiled in a worker thread with its own memory cap, and only the compiled engine (plain
 * data, PolicyEngine.snapshot) comes back to the event loop, which revives it. A policy that
 * takes long to parse (YAML: seconds for tens of thousands of rules here) or that tries to
 * exhaust memory costs the worker, not the agents waiting for answers. Checking a policy's
 * text (the admin API's /v1/policy/check and apply) runs there too, for the same reason. The
 * worker serves one job at a time and is kept a while for the next (Loader). */

import { Worker } from 'node:worker_threads';
import { QosError, type ErrorCode, type Problem } from '../errors.js';
import type { HandlerName } from '../script/js-sandbox.js';
import { PolicyEngine, type CompiledPolicy } from './engine.js';
import type { PolicyScript } from './load.js';
import type { PolicyDoc } from './schema.js';

/** Heap a policy may take to load; past it the load fails as too large. */
export const LOAD_HEAP_MB = 1024;

export interface LoadedPolicy { doc: PolicyDoc; script: PolicyScript | null; engine: PolicyEngine; text: string }

/** What the worker is asked: load the file at path, or check text as if it were that file. */
export type PolicyJob = { kind: 'load'; path: string } | { kind: 'check'; path: string; text: string };

type Failure = { ok: false; code: ErrorCode; message: string; problems: Problem[] };
/** What the worker posts back for a load. */
export type LoadAnswer = { ok: true; doc: PolicyDoc; script: PolicyScript | null; text: string; engine: CompiledPolicy } | Failure;
/** What the worker posts back for a check. */
export type CheckAnswer = { ok: true; rules: number; handlers: HandlerName[] } | Failure;

/** How long the worker is kept after its last job: a burst of jobs (an apply checks, then
 * loads; a fleet's pushes) pays for one worker's start, not one each (measured: starting one
 * and importing the loader cost more CPU than checking and loading a 100-rule policy). */
const IDLE_MS = 30_000;

/** The worker and the jobs waiting for it: one job at a time, in order. A worker that fails
 * (out of memory, a crash) is replaced by the next job. */
class Loader {
  private worker: Worker | null = null;
  private idle: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  run<A extends { ok: true }>(job: PolicyJob): Promise<A> {
    const next = this.queue.then(() => this.runNow<A>(job), () => this.runNow<A>(job));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private take(): Worker {
    if (this.idle) { clearTimeout(this.idle); this.idle = null; }
    if (this.worker) { this.worker.ref(); return this.worker; }
    const w = new Worker(new URL('./compile-worker.js', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: LOAD_HEAP_MB } });
    w.on('exit', () => { if (this.worker === w) this.worker = null; });
    return (this.worker = w);
  }

  private release(w: Worker): void {
    if (this.worker !== w) return;
    // an idle worker does not keep the process alive
    w.unref();
    this.idle = setTimeout(() => { this.idle = null; if (this.worker === w) { this.worker = null; void w.terminate(); } }, IDLE_MS);
    this.idle.unref();
  }

  private runNow<A extends { ok: true }>(job: PolicyJob): Promise<A> {
    const w = this.take();
    return new Promise<A>((resolve, reject) => {
      const done = () => { w.off('message', onMessage); w.off('error', onError); w.off('exit', onExit); };
      const onMessage = (a: A | Failure) => {
        done();
        this.release(w);
        if (a.ok) resolve(a);
        else reject(new QosError(a.code, a.message, a.problems));
      };
      const onError = (e: Error & { code?: string }) => {
        done();
        if (this.worker === w) this.worker = null;
        void w.terminate();
        reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new QosError('QOS_ERR_POLICY_INVALID', `${job.path}: the policy needs more than ${LOAD_HEAP_MB} MiB to load; refused`, [{ file: job.path, message: `needs more than ${LOAD_HEAP_MB} MiB to load` }])
          : new QosError('QOS_ERR_INTERNAL', `loading ${job.path}: ${e.message}`));
      };
      const onExit = (code: number) => { done(); reject(new QosError('QOS_ERR_INTERNAL', `the policy loader exited (${code}) without an answer`)); };
      w.on('message', onMessage);
      w.once('error', onError);
      w.once('exit', onExit);
      w.postMessage(job);
    });
  }
}

const loader = new Loader();
const runJob = <A extends { ok: true }>(job: PolicyJob): Promise<A> => loader.run<A>(job);

/** Reads, validates and compiles the policy at path in a worker; rejects with the QosError the
 * file deserves (invalid, unreadable, too large). */
export async function loadPolicyOffLoop(path: string): Promise<LoadedPolicy> {
  const a = await runJob<Extract<LoadAnswer, { ok: true }>>({ kind: 'load', path });
  return { doc: a.doc, script: a.script, text: a.text, engine: PolicyEngine.revive(a.engine) };
}

/** Checks policy text as the file at path (policy/check.ts: the checker of `qos policy check`,
 * the script read only where the daemon trusts it) in a worker; rejects with
 * QOS_ERR_POLICY_INVALID and every problem. */
export function checkPolicyOffLoop(text: string, path: string): Promise<{ rules: number; handlers: HandlerName[] }> {
  return runJob<Extract<CheckAnswer, { ok: true }>>({ kind: 'check', path, text });
}
