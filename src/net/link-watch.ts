/* The daemon's one watcher of network interfaces (links) in its network namespace: a
 * long-running `ip -o monitor link` and a snapshot (`ip -j link show`) at start, turned into
 * typed events (link-events.ts) for any part that follows interfaces: traffic control puts
 * an interface's configuration back when it returns; others may attach to every new one.
 *
 * Nothing is lost between the snapshot and the monitor: the monitor starts first, the
 * snapshot is taken once its netlink socket has subscribed, and the lines read meanwhile are
 * applied after it (the last of each link: link-events.ts, lastOfEach). If the monitor dies it
 * is started again after a back-off (100 ms doubling to 5 s), and a fresh snapshot is diffed
 * against what was known, so a change made while it was away still becomes its event. The
 * monitor dies with the daemon (parent-death signal), a daemon killed with SIGKILL included.
 *
 * Subscribing (the whole API for a follower):
 *   const off = links.subscribe((e) => { if (e.kind === 'added') attach(e.link.name); });
 *   links.byName('eth0')?.index; links.all();   // what is there now
 *   off();                                        // stop following
 * Events come in the order the kernel made them, synchronously, after the table is updated;
 * a follower that throws is logged and the others still get the event. */

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../clock.js';
import type { Component } from '../component.js';
import { QosError } from '../errors.js';
import { run, start, type Child, type Exit } from '../exec.js';
import { applyEvent, diffLinks, eventsOf, lastOfEach, netlinkSubscribed, parseMonitorLine, parseSnapshot, type Link, type LinkEvent, type MonitorLine } from './link-events.js';

export type { Link, LinkEvent } from './link-events.js';

/** A running monitor: its lines go to the callback given to LinkSource.monitor. */
export interface Monitor {
  /** resolves once it listens (its netlink socket has subscribed), or once it has stopped trying */
  readonly ready: Promise<void>;
  /** resolves when it has ended */
  readonly exited: Promise<Exit>;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/** Where the watcher learns about links: iproute2 in the daemon's namespace, or a test's fake. */
export interface LinkSource {
  snapshot(): Promise<Link[]>;
  monitor(onLine: (line: string) => void): Monitor;
}

/** How long the monitor is given to subscribe before the snapshot is taken anyway. */
const SUBSCRIBE_WAIT_MS = 2000;

/** iproute2's `ip`, in the daemon's own network namespace. */
export function ipSource(clock: Clock = systemClock): LinkSource {
  return {
    async snapshot() {
      const r = await run(['ip', '-j', 'link', 'show'], { pkg: 'iproute2', timeoutMs: 30_000 });
      return parseSnapshot(r.stdout);
    },
    monitor(onLine) {
      // killed with the daemon (PR_SET_PDEATHSIG): a daemon killed with SIGKILL cannot stop it,
      // and an orphan would keep its network namespace alive, printing for nobody
      const child: Child = start(['setpriv', '--pdeathsig', 'KILL', '--', 'ip', '-o', 'monitor', 'link'], { pkg: 'util-linux and iproute2', name: 'ip monitor link' });
      let rest = '';
      child.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
        const lines = (rest + d).split('\n');
        rest = lines.pop()!;
        for (const l of lines) if (l) onLine(l);
      });
      const ready = (async () => {
        const pid = child.pid;
        if (pid === undefined) return;
        const until = clock.now() + SUBSCRIBE_WAIT_MS;
        while (child.running && clock.now() < until) {
          const table = await readFile(`/proc/${pid}/net/netlink`, 'utf8').catch(() => '');
          if (netlinkSubscribed(table, pid)) return;
          await new Promise<void>((r) => clock.after(5, r));
        }
      })();
      return { ready, exited: child.exited, pid: child.pid, stop: async () => { await child.stop('SIGTERM', 2000); } };
    },
  };
}

export interface LinkWatchOptions {
  log?: Logger;
  clock?: Clock;
  source?: LinkSource;
  /** the first wait before a dead monitor is started again, doubled up to maxBackoffMs */
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** A monitor that ran this long before it died was healthy: the back-off starts over. */
const HEALTHY_MS = 10_000;

export class LinkWatch implements Component {
  readonly name = 'links';
  private readonly links = new Map<number, Link>();
  private readonly followers = new Set<(e: LinkEvent) => void>();
  private readonly log: Logger | undefined;
  private readonly clock: Clock;
  private readonly source: LinkSource;
  private monitor: Monitor | null = null;
  private retry: Timer | null = null;
  private stopped = false;
  private backoff: number;
  /** how many times the monitor was started again, and when it last died */
  restarts = 0;
  lastExit: { at: string; how: string } | null = null;

  constructor(private readonly o: LinkWatchOptions = {}) {
    this.log = o.log;
    this.clock = o.clock ?? systemClock;
    this.source = o.source ?? ipSource(this.clock);
    this.backoff = o.backoffMs ?? 100;
  }

  /** Follows every link event from now on; returns the function that stops it. */
  subscribe(fn: (e: LinkEvent) => void): () => void {
    this.followers.add(fn);
    return () => { this.followers.delete(fn); };
  }

  /** The link of that name now, as far as the events read so far say. */
  byName(name: string): Link | undefined {
    for (const l of this.links.values()) if (l.name === name) return l;
    return undefined;
  }

  /** Every link now. */
  all(): Link[] {
    return [...this.links.values()];
  }

  /** Starts the monitor and takes the first snapshot (its links are given as `added`); throws
   * if ip cannot run (iproute2 missing). */
  async start(): Promise<void> {
    this.stopped = false;
    if (await this.open()) return;
    this.retry?.cancel();
    this.retry = null;
    throw new QosError('QOS_ERR_ENVIRONMENT', `ip monitor link ended at once${this.lastExit ? ` (${this.lastExit.how})` : ''}`);
  }

  /** Stops the monitor (and any restart to come). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.retry?.cancel();
    this.retry = null;
    const m = this.monitor;
    this.monitor = null;
    await m?.stop();
  }

  status(): Record<string, unknown> {
    return { links: { interfaces: this.links.size, monitor: this.monitor ? 'running' : this.stopped ? 'stopped' : 'restarting', monitor_pid: this.monitor?.pid ?? null, restarts: this.restarts, last_exit: this.lastExit } };
  }

  /** Whether the monitor it started is the one running now (it may have died meanwhile). */
  private async open(): Promise<boolean> {
    const early: string[] = [];
    // live once the snapshot is applied; gone once it ended (its last lines are for nobody)
    const run = { live: false, gone: false };
    const m = this.source.monitor((line) => {
      if (run.gone || this.stopped) return;
      if (run.live) this.line(line);
      else early.push(line);
    });
    this.monitor = m;
    const began = this.clock.now();
    void m.exited.then((e) => { run.gone = true; this.died(m, e, began); });
    try {
      await m.ready;
      const snap = await this.source.snapshot();
      if (this.monitor !== m) return false; // it died meanwhile: its restart takes a snapshot of its own
      this.emit(diffLinks(this.links, snap));
      const parsed = early.map((l) => parseMonitorLine(l, (i) => this.links.get(i)?.name)).filter((x): x is MonitorLine => x !== null);
      for (const p of lastOfEach(parsed)) this.emit(eventsOf(this.links, p));
      run.live = true;
      return true;
    } catch (e) {
      // the caller says what to do next (start: fail; a restart: try again later)
      this.retry?.cancel();
      this.retry = null;
      if (this.monitor === m) this.monitor = null;
      run.gone = true;
      void m.stop();
      throw e;
    }
  }

  private line(text: string): void {
    const p = parseMonitorLine(text, (i) => this.links.get(i)?.name);
    if (p) this.emit(eventsOf(this.links, p));
  }

  private emit(events: LinkEvent[]): void {
    for (const e of events) {
      applyEvent(this.links, e);
      this.log?.debug({ event: e.kind, ifindex: e.link.index, dev: e.link.name, ...(e.kind === 'renamed' ? { from: e.from } : {}) }, 'link event');
      for (const f of [...this.followers]) {
        try { f(e); } catch (err) { this.log?.error({ err, event: e.kind, dev: e.link.name }, 'a link-event follower failed'); }
      }
    }
  }

  private died(m: Monitor, e: Exit, began: number): void {
    if (this.monitor !== m || this.stopped) return;
    this.monitor = null;
    const how = e.signal ? `killed by ${e.signal}` : `exit ${e.code}`;
    this.lastExit = { at: new Date().toISOString(), how };
    if (this.clock.now() - began >= HEALTHY_MS) this.backoff = this.o.backoffMs ?? 100;
    this.log?.warn({ how, retry_ms: this.backoff }, 'the link monitor (ip monitor link) ended; starting it again');
    this.again();
  }

  private again(): void {
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.o.maxBackoffMs ?? 5000);
    this.retry = this.clock.after(wait, () => {
      this.retry = null;
      if (this.stopped) return;
      this.restarts++;
      this.open().then(
        (running) => running && this.log?.info({ restarts: this.restarts, interfaces: this.links.size }, 'link monitor running again; what changed meanwhile was taken from a fresh snapshot'),
        (err: unknown) => {
          this.log?.error({ err: (err as Error).message }, 'cannot start the link monitor again');
          if (!this.stopped && !this.monitor && !this.retry) this.again();
        },
      );
    });
  }
}
