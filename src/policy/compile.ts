/* Loading a policy without stopping the daemon: the file is read, parsed, validated and
 * compiled in a worker thread with its own memory cap, and only the compiled engine (plain
 * data, PolicyEngine.snapshot) comes back to the event loop, which revives it. A policy that
 * takes long to parse (YAML: seconds for tens of thousands of rules here) or that tries to
 * exhaust memory costs the worker, not the agents waiting for answers. Checking a policy's
 * text (the admin API's /v1/policy/check and apply) runs there too, for the same reason. */

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

function runJob<A extends { ok: true }>(job: PolicyJob): Promise<A> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./compile-worker.js', import.meta.url), { workerData: job, resourceLimits: { maxOldGenerationSizeMb: LOAD_HEAP_MB } });
    let settled = false;
    w.once('message', (a: A | Failure) => {
      settled = true;
      void w.terminate();
      if (a.ok) resolve(a);
      else reject(new QosError(a.code, a.message, a.problems));
    });
    w.once('error', (e: Error & { code?: string }) => {
      if (settled) return;
      settled = true;
      reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new QosError('QOS_ERR_POLICY_INVALID', `${job.path}: the policy needs more than ${LOAD_HEAP_MB} MiB to load; refused`, [{ file: job.path, message: `needs more than ${LOAD_HEAP_MB} MiB to load` }])
        : new QosError('QOS_ERR_INTERNAL', `loading ${job.path}: ${e.message}`));
    });
    w.once('exit', (code) => {
      if (!settled) { settled = true; reject(new QosError('QOS_ERR_INTERNAL', `the policy loader exited (${code}) without an answer`)); }
    });
  });
}

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
