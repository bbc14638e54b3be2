/* The recent decisions and their followers: GET /v1/decisions[?limit=N][&follow=1] as
 * newline-delimited JSON (`qos decisions [--follow]`), and `decisions_total` in the status. */

import type { Component, Route } from '../component.js';
import { decisionJson, type DecisionRecord } from './decide.js';

/** Decisions kept for GET /v1/decisions. */
export const DECISION_LOG = 1000;
/** Decisions a follower has not read yet, in bytes; past it new ones are dropped, counted,
 * and the follower told how many when it catches up. */
export const FOLLOW_BUFFER = 1 << 20;

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
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.flushHeaders(); // a follower of a quiet daemon learns at once that it is following
        for (const r of this.last(limit)) res.write(decisionJson(r) + '\n');
        if (url.searchParams.get('follow') !== '1') { res.end(); return; }
        // A follower that does not read must not make the daemon keep what it has not read.
        let dropped = 0;
        const notice = () => {
          if (!dropped) return;
          res.write(JSON.stringify({ dropped, message: `${dropped} decisions dropped: this reader fell behind` }) + '\n');
          dropped = 0;
        };
        const follow = (r: DecisionRecord) => {
          if (res.writableLength > FOLLOW_BUFFER) { dropped++; this.o.onDropped(1); return; }
          notice();
          res.write(decisionJson(r) + '\n');
        };
        const stop = this.follow(follow);
        res.on('drain', notice);
        req.on('close', stop);
      },
    }),
  }];
}
