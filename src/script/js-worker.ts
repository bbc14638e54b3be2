/* Worker thread: hosts one JsSandbox and answers calls in order. It validates what a handler
 * returns against the rule action vocabulary, so the daemon's main thread only ever sees a
 * decision, nothing, or a fault. */

import { parentPort, workerData } from 'node:worker_threads';
import { niceThread } from '../daemon/identity.js';
import { actionDecision } from '../policy/engine.js';
import { ActionSchema } from '../policy/schema.js';
import type { Decision } from '../protocol/messages.js';
import { HANDLERS, JsSandbox, type HandlerName, type SandboxLimits, type ScriptFault } from './js-sandbox.js';

/** Bytes before the ring's data (seq, head, tail), and before each record's JSON (id, handler, length). */
export const RING_HEADER = 16;
export const RECORD_HEADER = 9;

export interface WorkerInit { source: string; file: string; limits: SandboxLimits; nice?: number; ring?: SharedArrayBuffer }
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
    const answer = (id: number, handler: HandlerName, json: string): CallReply => {
      const r = sandbox.call(handler, json);
      if (!r.ok) return { id, ok: false, timedOut: r.timedOut, fault: r.fault };
      const d = toDecision(r.json);
      return 'fault' in d ? { id, ok: false, timedOut: false, fault: d.fault } : { id, ok: true, decision: d.decision };
    };
    if (init.ring) serveRing(init.ring, answer, (replies) => port.postMessage(replies));
    // Without a ring (tests): calls come in batches by message; answers go back the same way.
    port.on('message', (batch: CallRequest[]) => port.postMessage(batch.map((req) => answer(req.id, req.handler, req.json))));
  }
}

/** Serves calls from the shared request ring (see RequestRing in pool.ts) forever: waits with
 * Atomics.wait, answers everything queued, posts the answers in one message. */
function serveRing(sab: SharedArrayBuffer, answer: (id: number, h: HandlerName, json: string) => CallReply, post: (r: CallReply[]) => void): never {
  const hdr = new Int32Array(sab, 0, 4);
  const size = sab.byteLength - RING_HEADER;
  const data = Buffer.from(sab, RING_HEADER, size);
  for (;;) {
    const seq = Atomics.load(hdr, 0);
    const head = Atomics.load(hdr, 1);
    let tail = Atomics.load(hdr, 2);
    const replies: CallReply[] = [];
    while (tail !== head) {
      const pos = tail & (size - 1);
      if (size - pos < RECORD_HEADER) { tail = (tail + size - pos) | 0; continue; }
      const id = data.readUInt32LE(pos);
      if (id === 0) { tail = (tail + size - pos) | 0; continue; } // wrap marker
      const handler = HANDLERS[data[pos + 4]!]!;
      const len = data.readUInt32LE(pos + 5);
      const json = data.toString('utf8', pos + RECORD_HEADER, pos + RECORD_HEADER + len);
      tail = (tail + RECORD_HEADER + len) | 0;
      Atomics.store(hdr, 2, tail);
      replies.push(answer(id, handler, json));
    }
    if (replies.length) post(replies);
    Atomics.wait(hdr, 0, seq);
  }
}
