/* Worker thread: hosts one JsSandbox and answers calls in order. It validates what a handler
 * returns against the rule action vocabulary, so the daemon's main thread only ever sees a
 * decision, nothing, or a fault. */

import { parentPort, workerData } from 'node:worker_threads';
import { niceThread } from '../daemon/identity.js';
import { actionDecision } from '../policy/engine.js';
import { ActionSchema } from '../policy/schema.js';
import type { Decision } from '../protocol/messages.js';
import { JsSandbox, type HandlerName, type SandboxLimits, type ScriptFault } from './js-sandbox.js';

export interface WorkerInit { source: string; file: string; limits: SandboxLimits; nice?: number }
export interface CallRequest { id: number; handler: HandlerName; json: string }
export type CallReply =
  | { id: number; ok: true; decision: Decision | null | undefined }
  | { id: number; ok: false; timedOut: boolean; fault: ScriptFault };
export type WorkerStatus = { ready: true; handlers: HandlerName[] } | { ready: false; fault: ScriptFault };

/** What a handler returned, as a decision: undefined = fall through to the rules. */
export function toDecision(json: string | undefined): { decision: Decision | null | undefined } | { fault: ScriptFault } {
  if (json === undefined) return { decision: undefined };
  let v: unknown;
  try { v = JSON.parse(json); } catch { return { fault: { message: 'returned something that is not a decision' } }; }
  const r = ActionSchema.safeParse(v);
  if (!r.success) return { fault: { message: `returned ${json.slice(0, 120)}: ${r.error.issues.map((i) => i.message).join('; ')}` } };
  return { decision: actionDecision(r.data) };
}

if (parentPort) {
  const port = parentPort;
  const init = workerData as WorkerInit;
  // Below the event loop: a script spinning to its deadline must not take the daemon's CPU.
  if (init.nice !== undefined) niceThread(init.nice);
  const sandbox = await JsSandbox.create(init.source, init.file, init.limits);
  if (!(sandbox instanceof JsSandbox)) {
    port.postMessage({ ready: false, fault: sandbox } satisfies WorkerStatus);
  } else {
    port.postMessage({ ready: true, handlers: sandbox.handlers } satisfies WorkerStatus);
    // Calls come in batches (one message per event-loop turn of the daemon); answers go back
    // the same way, in order.
    port.on('message', (batch: CallRequest[]) => {
      const replies: CallReply[] = [];
      for (const req of batch) {
        const r = sandbox.call(req.handler, req.json);
        if (!r.ok) replies.push({ id: req.id, ok: false, timedOut: r.timedOut, fault: r.fault });
        else {
          const d = toDecision(r.json);
          replies.push('fault' in d ? { id: req.id, ok: false, timedOut: false, fault: d.fault } : { id: req.id, ok: true, decision: d.decision });
        }
      }
      port.postMessage(replies);
    });
  }
}
