/* Traffic control that follows interfaces (docs/traffic-control.md, "Interfaces that come and
 * go"): the daemon's link watcher (net/link-watch.ts) says when an interface goes, comes,
 * is renamed or comes up, and this turns each event into control.ts's transition, at once
 * (no periodic rescan), one event after another in the kernel's order:
 *   removed  the configuration waits (its nftables part leaves the kernel; the kernel took
 *            the qdisc, classes, tagger and egress map with the device);
 *   added    a configuration waiting for that name is installed again whole, unless a root
 *            qdisc not ours is on the new device (refused, said in the log and qos status);
 *   renamed  the configuration moves to the new name (the kernel keeps qdisc and classes
 *            through a rename; the lookups naming the interface are written again); a rename
 *            onto a waiting name installs that name's configuration as `added` would;
 *   up       the kernel keeps qdiscs through down and up: ours is checked, and installed
 *            again if someone removed it meanwhile.
 * What happened is logged and counted for `qos status`. */

import type { Logger } from 'pino';
import type { LinkEvent } from '../net/link-events.js';
import type { TrafficControl } from './control.js';

/** The log's messages when an interface under control goes and when it is installed again
 * (`qos bench tc` times the return by them). */
export const GONE_MSG = 'interface gone: its traffic control (rate, marks, flows, filters) waits for an interface of that name';
export const RESTORED_MSG = 'interface back: its traffic control is installed again';

/** What the follower needs of the watcher: subscribing. */
export interface LinkEvents { subscribe(fn: (e: LinkEvent) => void): () => void }

/** One thing that happened to an interface under traffic control, for `qos status`. */
export interface LinkNote { at: string; dev: string; what: 'gone' | 'restored' | 'renamed' | 'refused' | 'reinstalled'; from?: string; why?: string }

export class TcLinks {
  private off: (() => void) | null = null;
  /** the events not handled yet run one after another, in order */
  private chain: Promise<void> = Promise.resolve();
  readonly counts = { gone: 0, restored: 0, renamed: 0, refused: 0 };
  /** link events handled, of any interface */
  handled = 0;
  last: LinkNote | null = null;

  constructor(private readonly tc: TrafficControl, private readonly links: LinkEvents, private readonly log?: Logger) {}

  /** Follows the watcher's events from now on. */
  start(): void {
    this.off ??= this.links.subscribe((e) => { this.chain = this.chain.then(() => this.handle(e)); });
  }

  /** Stops following, once the events already come are handled. */
  async stop(): Promise<void> {
    this.off?.();
    this.off = null;
    await this.chain;
  }

  /** Resolves once every event so far is handled (tests). */
  settled(): Promise<void> {
    return this.chain;
  }

  status(): Record<string, unknown> {
    return { link_events: { handled: this.handled, ...this.counts }, last_link_event: this.last };
  }

  private note(n: Omit<LinkNote, 'at'>): void {
    this.last = { at: new Date().toISOString(), ...n };
  }

  private async handle(e: LinkEvent): Promise<void> {
    const { name: dev, index } = e.link;
    try {
      await this.follow(e, dev, index);
    } catch (err) {
      // a change the kernel refused: control.ts put the last state back; the next event tries again
      this.log?.error({ dev, event: e.kind, err: (err as Error).message }, 'cannot follow an interface change in traffic control');
    } finally {
      this.handled++;
    }
  }

  private async follow(e: LinkEvent, dev: string, index: number): Promise<void> {
    if (e.kind === 'removed') {
      if (!(await this.tc.interfaceGone(dev, index, 'gone'))) return;
      this.counts.gone++;
      this.note({ dev, what: 'gone' });
      this.log?.warn({ dev, ifindex: index, flows: this.flowsOn(dev) }, GONE_MSG);
    } else if (e.kind === 'added') {
      await this.back(dev, index);
    } else if (e.kind === 'renamed') {
      const moved = await this.tc.interfaceRenamed(index, e.from, dev);
      if (!moved) { await this.back(dev, index); return; }
      this.counts.renamed++;
      this.note({ dev, from: e.from, what: 'renamed' });
      this.log?.info({ dev, from: e.from, ifindex: index }, 'interface renamed: its traffic control follows it');
      if (moved.dropped) this.log?.warn({ dev, ...moved.dropped }, `the configuration that waited for ${dev} is dropped: ${e.from}, renamed ${dev}, took its name with its own`);
    } else if (e.kind === 'up') {
      const r = await this.tc.interfaceUp(dev, index);
      if (r === 'restored') {
        this.counts.restored++;
        this.note({ dev, what: 'reinstalled', why: 'its root qdisc was gone when it came up' });
        this.log?.warn({ dev }, 'interface up without our root qdisc (removed meanwhile): its traffic control is installed again');
      }
      if (r === 'refused') this.refused(dev, 'another root qdisc replaced ours');
    }
  }

  private async back(dev: string, index: number): Promise<void> {
    const r = await this.tc.interfaceBack(dev, index);
    if (!r) return;
    if (r.done === 'refused') { this.refused(dev, r.why!); return; }
    this.counts.restored++;
    this.note({ dev, what: 'restored' });
    this.log?.info({ dev, ifindex: index, flows: this.flowsOn(dev) }, RESTORED_MSG);
  }

  private refused(dev: string, why: string): void {
    this.counts.refused++;
    this.note({ dev, what: 'refused', why });
    this.log?.warn({ dev, why }, 'interface back, but its traffic control is not installed: it waits');
  }

  private flowsOn(dev: string): number {
    let n = 0;
    for (const f of this.tc.current.flows.values()) if (f.dev === dev) n++;
    return n;
  }
}
