/* Worker thread: hosts one JsSandbox and runs the calls it is given, one at a time, taking
 * users in turn (round-robin.ts): each call is tagged with its caller's uid, and a user with
 * a backlog gets one call run, then waits behind every other user with calls waiting. It
 * validates what a handler returns against the rule action vocabulary, so the daemon's main
 * thread only ever sees a decision, nothing, or a fault. */

import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { niceThread } from '../native.js';
import { actionDecision, type Decision } from '../policy/engine.js';
import { ActionSchema } from '../policy/schema.js';
import { HANDLERS, JsSandbox, type HandlerName, type SandboxLimits, type ScriptFault } from './js-sandbox.js';
import { Ring } from './ring.js';
import { ownTid } from './cpu.js';
import { RoundRobin } from './round-robin.js';

export interface WorkerInit {
  source: string; file: string; limits: SandboxLimits;
  /** false: call QuickJS through its public API only (tests compare both paths) */
  direct?: boolean;
}
/** What the pool adds for each worker: its rings (calls in: kind = handler index, tag = uid,
 * text = the event's JSON; answers out: kind = ReplyKind, text below), the channel on which
 * the daemon answers a handler's question for its machine state (port, and
 * flag[STATE_ANSWERED] set to 1 with Atomics.notify when an answer was posted), and
 * flag[STATE_RUNNING]: the id of the call the worker runs now (the watchdog blames it). */
export interface WorkerLinks { calls: SharedArrayBuffer; replies: SharedArrayBuffer; statePort: MessagePort; stateFlag: SharedArrayBuffer }
export const STATE_ANSWERED = 0, STATE_RUNNING = 1;
/** An answer's kind in the reply ring; its text is the decision's JSON ('' for none: the
 * rules decide) or the fault's; Late: not run, its answer time was up before its turn. */
export const ReplyKind = { Decided: 0, Failed: 1, TimedOut: 2, Late: 3 } as const;
export type ReplyKind = (typeof ReplyKind)[keyof typeof ReplyKind];
/** A call this long wakes the daemon's reader when it ends (see the loop at the end). */
const SLOW_MS = 1;
/** Longest fault message carried back (a script's own error text can be any length). */
const MAX_FAULT = 500;
/** worker -> pool: the machine state for call id, please (full: with every flow) */
export interface StateQuestion { state: number; full: boolean }
/** pool -> worker, on statePort: the state, or why there is none */
export type StateAnswer = { id: number; json: string; error?: undefined } | { id: number; error: string; json?: undefined };
/** ready: the handlers the script exports, whether calls go direct, and the worker's thread
 * id (for its CPU time: cpu.ts) */
export type WorkerStatus = { ready: true; handlers: HandlerName[]; direct: boolean; tid: number } | { ready: false; fault: ScriptFault };

/** What a handler returned, as a decision: undefined = fall through to the rules. */
export function toDecision(json: string | undefined): { decision: Decision | null | undefined } | { fault: ScriptFault } {
  if (json === undefined) return { decision: undefined };
  let v: unknown;
  try { v = JSON.parse(json); } catch { return { fault: { message: 'returned something that is not a decision' } }; }
  const r = ActionSchema.safeParse(v);
  if (!r.success) return { fault: { message: `returned ${json.slice(0, 120)}: ${r.error.issues.map((i) => i.message).join('; ')}` } };
  if (r.data.limit) return { fault: { message: 'returned a limit: a limit is a rule\'s action (its rates are set up when the policy loads), not a script\'s' } };
  return { decision: actionDecision(r.data) };
}

if (parentPort) {
  const port = parentPort;
  const init = workerData as WorkerInit & WorkerLinks;
  const sandbox = await JsSandbox.create(init.source, init.file, init.limits, { direct: init.direct });
  if (!(sandbox instanceof JsSandbox)) {
    port.postMessage({ ready: false, fault: sandbox } satisfies WorkerStatus);
  } else {
    // The validator compiles itself on first use (a few ms): not in a program's first call.
    toDecision('{"dscp":0}');
    // Below the event loop from now on: a script spinning to its deadline must not take the
    // daemon's CPU. Not before: a worker replacing a hung one, started at nice 19 on a busy
    // machine, took seconds to compile the script while every call waited for it.
    if (init.limits.nice !== null) niceThread(init.limits.nice);
    port.postMessage({ ready: true, handlers: sandbox.handlers, direct: sandbox.directCalls, tid: ownTid() } satisfies WorkerStatus);
    const flag = new Int32Array(init.stateFlag);
    const calls = new Ring(init.calls);
    const replies = new Ring(init.replies);
    const reply = (id: number, kind: ReplyKind, text: string) => {
      // The pool keeps at most MAX_QUEUE calls in flight and a record is small: never full.
      if (!replies.push(id, kind, text, false)) throw new Error('reply ring full');
    };
    const faultText = (f: ScriptFault) => JSON.stringify(f.message.length > MAX_FAULT ? { ...f, message: `${f.message.slice(0, MAX_FAULT)}...` } : f);
    const fault = (id: number, kind: ReplyKind, f: ScriptFault) => reply(id, kind, faultText(f));
    /** What a handler's result (JSON) means, by its text: a script returns the same few
     * decisions over and over, and validating one takes microseconds. */
    const outcomes = new Map<string, [ReplyKind, string]>();
    const outcomeOf = (json: string): [ReplyKind, string] => {
      let o = outcomes.get(json);
      if (o) return o;
      const d = toDecision(json);
      o = 'fault' in d ? [ReplyKind.Failed, faultText(d.fault)] : [ReplyKind.Decided, d.decision === undefined ? '' : JSON.stringify(d.decision)];
      if (json.length <= 256) {
        if (outcomes.size >= 256) outcomes.clear();
        outcomes.set(json, o);
      }
      return o;
    };
    /** Asks the daemon for call id's machine state and waits for it (limits.stateWaitMs at
     * most; the wait does not count against the call's deadline). The daemon reads the
     * answers to earlier calls first, so the state already counts their decisions. */
    const stateOf = (id: number) => (full: boolean): string => {
      const t0 = Date.now(); // before asking: asking may hand the CPU to the daemon at once
      const until = t0 + init.limits.stateWaitMs;
      replies.wakeReader();
      port.postMessage({ state: id, full } satisfies StateQuestion);
      try {
        for (;;) {
          Atomics.wait(flag, STATE_ANSWERED, 0, Math.max(0, until - Date.now()));
          Atomics.store(flag, STATE_ANSWERED, 0);
          let answer: StateAnswer | undefined;
          for (let m = receiveMessageOnPort(init.statePort); m && answer === undefined; m = receiveMessageOnPort(init.statePort)) {
            const a = m.message as StateAnswer;
            if (a.id === id) answer = a;
          }
          // Judged after reading: an answer in hand only after the wait is up is not used.
          if (Date.now() > until) throw new Error(`the daemon did not send the machine state within ${init.limits.stateWaitMs} ms`);
          if (answer?.error !== undefined) throw new Error(answer.error);
          if (answer) return answer.json;
        }
      } finally {
        sandbox.extendDeadline(Date.now() - t0);
      }
    };
    const answer = (id: number, handler: number, json: string): void => {
      const r = sandbox.call(HANDLERS[handler]!, json, stateOf(id));
      if (!r.ok) return fault(id, r.timedOut ? ReplyKind.TimedOut : ReplyKind.Failed, r.fault);
      if (r.json === undefined) return reply(id, ReplyKind.Decided, '');
      const [kind, text] = outcomeOf(r.json);
      reply(id, kind, text);
    };
    // Calls wait here by user and run one at a time, users in turn. A record that makes the
    // worker forget the callers it keeps (a negative serial: see eventOf in prelude.ts) must
    // run after every record before it and before every record after it, whoever's turn it
    // is: it and what follows it are held until the users' queues are empty.
    interface Queued { id: number; kind: number; text: string; uid: number; by: number }
    const queued = new RoundRobin<Queued>();
    const held: Queued[] = [];
    const resets = (q: Queued) => q.text.startsWith('[-');
    const take = (id: number, kind: number, text: string, uid: number, by: number) => {
      const q = { id, kind, text, uid, by };
      if (held.length || resets(q)) held.push(q);
      else queued.push(uid, q);
    };
    const next = (): Queued | undefined => {
      const q = queued.shift();
      if (q || !held.length) return q;
      const reset = held.shift()!;
      while (held.length && !resets(held[0]!)) { const h = held.shift()!; queued.push(h.uid, h); }
      return reset;
    };
    // Serve calls forever, looking for new ones after each (a user who just came gets the next
    // turn), and sleep when there are none. The daemon's reader is woken (if it sleeps) once a
    // round of calls is answered, a round being the calls there were when it began, as when
    // the worker answered everything it had read in one go: waking it per answer cost more
    // than the answers (a wake is a task of its own on the event loop, which then finds the
    // next answer not there yet and sleeps again), and so did waking it every millisecond
    // (A/B: 20 % fewer decisions/s). After a slow call too, so that the answers before it
    // do not wait for the rest of the round.
    let left = 0;
    for (;;) {
      const seq = calls.seq;
      calls.read(take);
      const q = next();
      if (!q) {
        calls.wait(seq); // (the last round's end woke the reader)
        continue;
      }
      if (left === 0) left = queued.size + 1;
      Atomics.store(flag, STATE_RUNNING, q.id);
      const t0 = performance.now();
      // A request whose answer time is up has had the rules' answer: it is not run (a
      // backlog behind a slow call, or of a worker short of CPU, is dropped, not worked off).
      if (q.by !== 0 && ((Date.now() >>> 0) - q.by | 0) > 0) reply(q.id, ReplyKind.Late, '');
      else answer(q.id, q.kind, q.text);
      if (--left === 0 || performance.now() - t0 >= SLOW_MS) replies.wakeReader();
    }
  }
}
