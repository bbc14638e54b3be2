/* Loading a policy without stopping the daemon: the file is read, parsed, validated and
 * compiled in a worker thread with its own memory cap, and only the compiled engine (plain
 * data, PolicyEngine.snapshot) comes back to the event loop, which revives it. A policy that
 * takes long to parse (YAML: seconds for tens of thousands of rules here) or that tries to
 * exhaust memory costs the worker, not the agents waiting for answers. */

import { Worker } from 'node:worker_threads';
import { QosError, type ErrorCode, type Problem } from '../errors.js';
import { PolicyEngine, type CompiledPolicy } from './engine.js';
import type { PolicyScript } from './load.js';
import type { PolicyDoc } from './schema.js';

/** Heap a policy may take to load; past it the load fails as too large. */
export const LOAD_HEAP_MB = 1024;

export interface LoadedPolicy { doc: PolicyDoc; script: PolicyScript | null; engine: PolicyEngine }

/** What the worker posts back. */
export type LoadAnswer =
  | { ok: true; doc: PolicyDoc; script: PolicyScript | null; engine: CompiledPolicy }
  | { ok: false; code: ErrorCode; message: string; problems: Problem[] };

/** Reads, validates and compiles the policy at path in a worker; rejects with the QosError the
 * file deserves (invalid, unreadable, too large). */
export function loadPolicyOffLoop(path: string): Promise<LoadedPolicy> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./compile-worker.js', import.meta.url), { workerData: { path }, resourceLimits: { maxOldGenerationSizeMb: LOAD_HEAP_MB } });
    let settled = false;
    w.once('message', (a: LoadAnswer) => {
      settled = true;
      void w.terminate();
      if (a.ok) resolve({ doc: a.doc, script: a.script, engine: PolicyEngine.revive(a.engine) });
      else reject(new QosError(a.code, a.message, a.problems));
    });
    w.once('error', (e: Error & { code?: string }) => {
      if (settled) return;
      settled = true;
      reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new QosError('QOS_ERR_POLICY_INVALID', `${path}: the policy needs more than ${LOAD_HEAP_MB} MiB to load; refused`, [{ file: path, message: `needs more than ${LOAD_HEAP_MB} MiB to load` }])
        : new QosError('QOS_ERR_INTERNAL', `loading ${path}: ${e.message}`));
    });
    w.once('exit', (code) => {
      if (!settled) { settled = true; reject(new QosError('QOS_ERR_INTERNAL', `the policy loader exited (${code}) without an answer`)); }
    });
  });
}
