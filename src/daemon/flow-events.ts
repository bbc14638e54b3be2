/* The flow-event hub: what happens to the flows the daemon knows, for any part that must
 * follow them (kernel traffic control, RSVP sessions, the dashboard, fleet reporting) without
 * being wired into the decision path. The flow table publishes; parts subscribe.
 *
 *   open     an entry was made for a process's socket (identity: pid, uid, user, exe; the
 *            five-tuple fills in as the socket binds and connects)
 *   decided  the policy decided for it (the decision, or null: nothing applies; the rule)
 *   closed   the entry left the table, and why
 *   reservation  a status notification (seed 002's FD_QOS codes) of the RSVP session the
 *            daemon signals for the socket (policy `reserve`)
 *
 * Delivery is synchronous and in order; with no subscriber a publish costs one comparison. A
 * subscriber that throws is reported to onError and does not stop the others, or the
 * decision being made. Entries the table could not keep (it was full) are not published. */

import type { Decision } from '../policy/engine.js';
import type { StatusEvent } from '../rsvp/status.js';
import type { Flow } from './flows.js';

export type CloseReason =
  /** the program closed the socket */
  | 'close'
  /** the process exited (Cleanup, or its last agent connection closed) */
  | 'exit'
  /** the sweep found the process gone */
  | 'gone'
  /** the descriptor number was given to a new socket */
  | 'replaced'
  /** the user's bound on entries took their oldest */
  | 'evicted';

export type FlowEvent =
  | { kind: 'open'; flow: Readonly<Flow> }
  | { kind: 'decided'; flow: Readonly<Flow>; decision: Decision | null; rule: string | null }
  | { kind: 'closed'; flow: Readonly<Flow>; why: CloseReason }
  /** a status notification of the RSVP session the daemon signals for it (rsvp/attach.ts) */
  | { kind: 'reservation'; flow: Readonly<Flow>; status: StatusEvent };

export type FlowListener = (e: FlowEvent) => void;

export class FlowEvents {
  private readonly listeners = new Set<FlowListener>();

  constructor(private readonly onError: (err: unknown, e: FlowEvent) => void = () => undefined) {}

  /** Calls fn with every event from now on; returns what stops it. */
  subscribe(fn: FlowListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get active(): boolean {
    return this.listeners.size > 0;
  }

  publish(e: FlowEvent): void {
    for (const fn of this.listeners) {
      try { fn(e); } catch (err) { this.onError(err, e); }
    }
  }
}
