/* The recent decisions and their followers: GET /v1/decisions[?limit=N][&follow=1] as
 * newline-delimited JSON (`qos decisions [--follow]`), and `decisions_total` in the status. */

import type { Component, Route } from '../component.js';
import { decisionJson, type DecisionRecord } from './decide.js';
import { followStream } from './follow.js';

/** Decisions kept for GET /v1/decisions. */
export const DECISION_LOG = 1000;

export class DecisionLog implements Component {
  readonly name = 'decisions';
  /** the last DECISION_LOG decisions, a ring: decision number i (from 0) is at i % DECISION_LOG */
  private readonly recent: DecisionRecord[] = [];
  private readonly followers = new Set<(r: DecisionRecord) => void>();
  private count = 0;

  /** onDropped: decisions dropped for a follower that fell behind */
  constructor(private readonly o: { onDropped(n: number): void; debug?(r: DecisionRecord): void }) {}

  record(r: DecisionRecord): void {
    this.recent[this.count % DECISION_LOG] = r;
    this.count++;
    // (no iterator made for no follower: the usual case, per decision)
    if (this.followers.size) for (const f of this.followers) f(r);
    this.o.debug?.(r);
  }

  /** Calls fn with every decision from now on; returns what stops it. */
  follow(fn: (r: DecisionRecord) => void): () => void {
    this.followers.add(fn);
    return () => this.followers.delete(fn);
  }

  /** The last n decisions kept, oldest first. */
  last(n: number): DecisionRecord[] {
    const k = Math.min(n, this.recent.length);
    const out: DecisionRecord[] = [];
    for (let i = this.count - k; i < this.count; i++) out.push(this.recent[i % DECISION_LOG]!);
    return out;
  }

  /** Decisions recorded since start. */
  get total(): number {
    return this.count;
  }

  status(): Record<string, unknown> {
    return { decisions_total: this.count };
  }

  readonly routes: readonly Route[] = [{
    method: 'GET', path: '/v1/decisions',
    handle: ({ url }) => ({
      stream: (req, res) => {
        // limit=0: none of the recent ones (a follower that wants only what comes next)
        const asked = Number(url.searchParams.get('limit') ?? 100);
        const limit = Number.isInteger(asked) && asked >= 0 ? Math.min(asked, 10000) : 100;
        followStream(req, res, {
          first: this.last(limit), render: decisionJson, follow: url.searchParams.get('follow') === '1', what: 'decisions', onDropped: (n) => this.o.onDropped(n),
          subscribe: (push) => this.follow(push),
        });
      },
    }),
  }];
}
