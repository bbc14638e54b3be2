/* Worker thread: hosts one JsSandbox and answers calls in order. It validates what a handler
 * returns against the rule action vocabulary, so the daemon's main thread only ever sees a
 * decision, nothing, or a fault. */

import { parentPort, workerData } from 'node:worker_threads';
import { actionDecision } from '../policy/engine.js';
import { ActionSchema } from '../policy/schema.js';
import type { Decision } from '../protocol/messages.js';
import { JsSandbox, type HandlerName, type SandboxLimits, type ScriptFault } from './js-sandbox.js';

export interface WorkerInit { source: string; file: string; limits: SandboxLimits }
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
  const sandbox = await JsSandbox.create(init.source, init.file, init.limits);
  if (!(sandbox instanceof JsSandbox)) {
    port.postMessage({ ready: false, fault: sandbox } satisfies WorkerStatus);
  } else {
    port.postMessage({ ready: true, handlers: sandbox.handlers } satisfies WorkerStatus);
    port.on('message', (req: CallRequest) => {
      const r = sandbox.call(req.handler, req.json);
      let reply: CallReply;
      if (!r.ok) reply = { id: req.id, ok: false, timedOut: r.timedOut, fault: r.fault };
      else {
        const d = toDecision(r.json);
        reply = 'fault' in d ? { id: req.id, ok: false, timedOut: false, fault: d.fault } : { id: req.id, ok: true, decision: d.decision };
      }
      port.postMessage(reply);
    });
  }
}
