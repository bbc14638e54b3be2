/* Traffic control calls, one key at a time: TrafficInstaller.update and remove are async, and
 * two calls for one key must land in the order the engine made them (an update then a remove
 * must not leave the class installed). Each key has a chain of its pending calls; the chain is
 * dropped when it drains, so 10,000 quiet sessions hold no promises. */

import type { Reservation, TrafficInstaller } from './types.js';

export class TrafficQueue {
  private readonly chains = new Map<string, { tail: Promise<void>; n: number }>();

  constructor(private readonly t: TrafficInstaller | undefined) {}

  /** Calls pending or running. */
  get pending(): number {
    let n = 0;
    for (const c of this.chains.values()) n += c.n;
    return n;
  }

  update(r: Reservation, onReject: (e: unknown) => void): void {
    const t = this.t;
    if (t) this.enqueue(r.key, () => t.update(r), onReject);
  }

  remove(key: string): void {
    const t = this.t;
    // a failed remove leaves nothing for the engine to undo: the state is gone either way
    if (t) this.enqueue(key, () => t.remove(key), () => {});
  }

  private enqueue(key: string, op: () => Promise<void>, onReject: (e: unknown) => void): void {
    let c = this.chains.get(key);
    if (!c) { c = { tail: Promise.resolve(), n: 0 }; this.chains.set(key, c); }
    const chain = c;
    // the first call for a key starts at once (tests and the router see it made in order);
    // later ones wait for the one before
    const started = chain.n++ === 0 ? call(op) : chain.tail.then(op);
    chain.tail = started.then(() => {}, onReject).finally(() => {
      if (--chain.n === 0 && this.chains.get(key) === chain) this.chains.delete(key);
    });
  }
}

function call(op: () => Promise<void>): Promise<void> {
  try { return op(); } catch (e) { return Promise.reject(e); }
}
